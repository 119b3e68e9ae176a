"""The status page catalog: which pages and components exist, and how each page is structured.

It answers ListStatusPages, ShowStatusPage, ShowStatusPageStructure and the component endpoints, and
lets other read models look pages up by slug and components up by id. A page's structure is stored
normalised, as the ids-only `items` of its last `StructureReplaced` event; component names are joined
in when it is read, so a component rename shows on every page without rewriting any structure.
Every column comes from an event (positions and event timestamps, never `now()`), so a rebuild is
byte-identical.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from domain.component import Component
from domain.status_page import StatusPage
from domain.structure import StructureItem, component_ids, parse_structure
from infra.db import Fetcher
from infra.event_store import RecordedEvent
from infra.ids import is_ulid, uuid_to_ulid

PAGES = "status_page_catalog_pages"
COMPONENTS = "status_page_catalog_components"

SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS {PAGES} (
    id                  text        PRIMARY KEY,
    position            bigint      NOT NULL UNIQUE,
    name                text        NOT NULL,
    slug                text        NOT NULL UNIQUE,
    description         text,
    public_url          text,
    widget_api_enabled  boolean     NOT NULL,
    display_uptime_mode text        NOT NULL,
    items               jsonb       NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    public_site_enabled boolean     NOT NULL,
    time_zone           text        NOT NULL,
    custom_domain       text,
    automatic_maintenance_notifications text NOT NULL
);
-- Tables made before the page settings: the rows take what the upcast events say (the widget switch for
-- the public site, the defaults for the rest), so a rebuild from the log would write the same values.
ALTER TABLE {PAGES} ADD COLUMN IF NOT EXISTS public_site_enabled boolean;
UPDATE {PAGES} SET public_site_enabled = widget_api_enabled WHERE public_site_enabled IS NULL;
ALTER TABLE {PAGES} ALTER COLUMN public_site_enabled SET NOT NULL;
ALTER TABLE {PAGES} ADD COLUMN IF NOT EXISTS time_zone text NOT NULL DEFAULT 'UTC';
ALTER TABLE {PAGES} ALTER COLUMN time_zone DROP DEFAULT;
ALTER TABLE {PAGES} ADD COLUMN IF NOT EXISTS custom_domain text;
-- Not UNIQUE: the reservation keeps domains unique (domain/custom_domain.py); a fold must never fail on it.
CREATE INDEX IF NOT EXISTS {PAGES}_custom_domain ON {PAGES} (custom_domain) WHERE custom_domain IS NOT NULL;
ALTER TABLE {PAGES} ADD COLUMN IF NOT EXISTS automatic_maintenance_notifications text NOT NULL DEFAULT 'inherit';
ALTER TABLE {PAGES} ALTER COLUMN automatic_maintenance_notifications DROP DEFAULT;
CREATE TABLE IF NOT EXISTS {COMPONENTS} (
    id          text        PRIMARY KEY,
    position    bigint      NOT NULL UNIQUE,
    name        text        NOT NULL,
    description text,
    archived    boolean     NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
"""


@dataclass(frozen=True)
class PageRow:
    """A status page as the catalog holds it (`id` is the wire ULID)."""

    id: str
    name: str
    slug: str
    description: str | None
    public_url: str | None
    widget_api_enabled: bool
    created_at: datetime
    public_site_enabled: bool = True
    time_zone: str = "UTC"
    custom_domain: str | None = None
    automatic_maintenance_notifications: str = "inherit"


@dataclass(frozen=True)
class ComponentRow:
    """A component as the catalog holds it, archived ones included."""

    id: str
    name: str
    description: str | None
    archived: bool
    created_at: datetime


@dataclass(frozen=True)
class PageStructure:
    """A page's current structure (ids only) and its uptime display mode."""

    items: tuple[StructureItem, ...]
    display_uptime_mode: str


# Folding events into the tables. Each handler gets the row and the decoded event.

Handler = Callable[[asyncpg.Connection, RecordedEvent, Any], Awaitable[None]]


async def _page_created(conn: asyncpg.Connection, record: RecordedEvent, event: StatusPage.Created) -> None:
    await conn.execute(
        f"INSERT INTO {PAGES} (id, position, name, slug, description, public_url, widget_api_enabled,"
        " display_uptime_mode, items, created_at, updated_at, public_site_enabled, time_zone, custom_domain,"
        " automatic_maintenance_notifications)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '[]'::jsonb, $9, $9, $10, $11, $12, $13)",
        uuid_to_ulid(record.stream_id),
        record.position,
        event.name,
        event.slug,
        event.description,
        event.public_url,
        event.widget_api_enabled,
        event.display_uptime_mode,
        event.timestamp,
        event.public_site_enabled,
        event.time_zone,
        event.custom_domain,
        event.automatic_maintenance_notifications,
    )


async def _page_updated(conn: asyncpg.Connection, record: RecordedEvent, event: StatusPage.Updated) -> None:
    await conn.execute(
        f"UPDATE {PAGES} SET name = $2, description = $3, public_url = $4, widget_api_enabled = $5,"
        " updated_at = $6, public_site_enabled = $7, time_zone = $8, custom_domain = $9,"
        " automatic_maintenance_notifications = $10 WHERE id = $1",
        uuid_to_ulid(record.stream_id),
        event.name,
        event.description,
        event.public_url,
        event.widget_api_enabled,
        event.timestamp,
        event.public_site_enabled,
        event.time_zone,
        event.custom_domain,
        event.automatic_maintenance_notifications,
    )


async def _structure_replaced(
    conn: asyncpg.Connection, record: RecordedEvent, event: StatusPage.StructureReplaced
) -> None:
    await conn.execute(
        f"UPDATE {PAGES} SET items = $2::jsonb, display_uptime_mode = $3, updated_at = $4 WHERE id = $1",
        uuid_to_ulid(record.stream_id),
        msgspec.json.encode(event.items).decode(),
        event.display_uptime_mode,
        event.timestamp,
    )


async def _component_created(conn: asyncpg.Connection, record: RecordedEvent, event: Component.Created) -> None:
    await conn.execute(
        f"INSERT INTO {COMPONENTS} (id, position, name, description, archived, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, false, $5, $5)",
        uuid_to_ulid(record.stream_id),
        record.position,
        event.name,
        event.description,
        event.timestamp,
    )


async def _component_updated(conn: asyncpg.Connection, record: RecordedEvent, event: Component.Updated) -> None:
    await conn.execute(
        f"UPDATE {COMPONENTS} SET name = $2, description = $3, updated_at = $4 WHERE id = $1",
        uuid_to_ulid(record.stream_id),
        event.name,
        event.description,
        event.timestamp,
    )


async def _component_archived(conn: asyncpg.Connection, record: RecordedEvent, event: Component.Archived) -> None:
    await conn.execute(
        f"UPDATE {COMPONENTS} SET archived = true, updated_at = $2 WHERE id = $1",
        uuid_to_ulid(record.stream_id),
        event.timestamp,
    )


HANDLERS: dict[str, Handler] = {
    StatusPage.Created.TOPIC: _page_created,
    StatusPage.Updated.TOPIC: _page_updated,
    StatusPage.StructureReplaced.TOPIC: _structure_replaced,
    Component.Created.TOPIC: _component_created,
    Component.Updated.TOPIC: _component_updated,
    Component.Archived.TOPIC: _component_archived,
}


class StatusPageCatalog:
    """The `status_page_catalog` projection."""

    name: str = "status_page_catalog"
    version = 1  # bump when what it stores changes: the new version is built beside the old (projections/versions.py)
    writes_wait = True  # pages and components are read back right after the write that changed them
    tables: tuple[str, ...] = (PAGES, COMPONENTS)
    schema_sql: str = SCHEMA_SQL

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for record in events:
            handler = HANDLERS.get(record.topic)
            if handler is not None:  # other aggregates' events only advance the checkpoint
                await handler(conn, record, record.decode())


# Queries. `db` is a pool or a connection: anything with asyncpg's fetch methods.


def _page(row: Any) -> PageRow:
    return PageRow(
        id=row["id"],
        name=row["name"],
        slug=row["slug"],
        description=row["description"],
        public_url=row["public_url"],
        widget_api_enabled=row["widget_api_enabled"],
        created_at=row["created_at"],
        public_site_enabled=row["public_site_enabled"],
        time_zone=row["time_zone"],
        custom_domain=row["custom_domain"],
        automatic_maintenance_notifications=row["automatic_maintenance_notifications"],
    )


def _component(row: Any) -> ComponentRow:
    return ComponentRow(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        archived=row["archived"],
        created_at=row["created_at"],
    )


_PAGE_COLUMNS = (
    "id, name, slug, description, public_url, widget_api_enabled, created_at, public_site_enabled, time_zone,"
    " custom_domain, automatic_maintenance_notifications"
)
_COMPONENT_COLUMNS = "id, name, description, archived, created_at"


async def list_pages(db: Fetcher, *, limit: int, after: str | None = None) -> list[PageRow] | None:
    """Up to `limit` pages in creation order, after the page `after` if given; None when `after` names
    no page (the caller answers that as a bad cursor)."""
    position = 0
    if after is not None:
        found = await db.fetchval(f"SELECT position FROM {PAGES} WHERE id = $1", after)
        if found is None:
            return None
        position = found
    rows = await db.fetch(
        f"SELECT {_PAGE_COLUMNS} FROM {PAGES} WHERE position > $1 ORDER BY position LIMIT $2", position, limit
    )
    return [_page(row) for row in rows]


async def get_page(db: Fetcher, page_id: str) -> PageRow | None:
    if not is_ulid(page_id):
        return None
    row = await db.fetchrow(f"SELECT {_PAGE_COLUMNS} FROM {PAGES} WHERE id = $1", page_id)
    return _page(row) if row else None


async def get_page_by_slug(db: Fetcher, slug: str) -> PageRow | None:
    row = await db.fetchrow(f"SELECT {_PAGE_COLUMNS} FROM {PAGES} WHERE slug = $1", slug)
    return _page(row) if row else None


async def get_page_by_custom_domain(db: Fetcher, host: str) -> PageRow | None:
    """The page whose custom domain is `host` (already normalised: lower case, no port, no trailing dot)."""
    row = await db.fetchrow(
        f"SELECT {_PAGE_COLUMNS} FROM {PAGES} WHERE custom_domain = $1 ORDER BY position LIMIT 1", host
    )
    return _page(row) if row else None


async def get_structure(db: Fetcher, page_id: str) -> PageStructure | None:
    """The page's structure as last replaced (ids only; see `component_names` for the names)."""
    if not is_ulid(page_id):
        return None
    row = await db.fetchrow(f"SELECT items::text AS items, display_uptime_mode FROM {PAGES} WHERE id = $1", page_id)
    if row is None:
        return None
    items = parse_structure(msgspec.json.decode(row["items"]))
    return PageStructure(items=items, display_uptime_mode=row["display_uptime_mode"])


async def usable_components(db: Fetcher, page_id: str) -> frozenset[str] | None:
    """The components an incident or maintenance window on the page may name: placed on its current
    structure (sub-pages included) and not deleted; None when there is no such page.

    One query for a command's hot path: the JSON path pulls every `component_id` out of the stored
    structure to narrow the components looked up, and `component_ids` still decides what is placed."""
    if not is_ulid(page_id):
        return None
    row = await db.fetchrow(
        f"SELECT p.items::text AS items, ARRAY("
        f" SELECT c.id FROM {COMPONENTS} c WHERE NOT c.archived AND c.id IN ("
        f"  SELECT jsonb_path_query(p.items, 'strict $.**.component_id') #>> '{{}}')) AS live"
        f" FROM {PAGES} p WHERE p.id = $1",
        page_id,
    )
    if row is None:
        return None
    live = set(row["live"])
    placed = component_ids(parse_structure(msgspec.json.decode(row["items"])))
    return frozenset(cid for cid in placed if cid in live)


async def list_components(db: Fetcher, *, include_archived: bool = False) -> list[ComponentRow]:
    """Every component in creation order; deleted (archived) ones only when asked for."""
    rows = await db.fetch(
        f"SELECT {_COMPONENT_COLUMNS} FROM {COMPONENTS} WHERE $1 OR NOT archived ORDER BY position",
        include_archived,
    )
    return [_component(row) for row in rows]


async def get_component(db: Fetcher, component_id: str) -> ComponentRow | None:
    """The component, archived or not (callers decide what a deleted component means to them)."""
    if not is_ulid(component_id):
        return None
    row = await db.fetchrow(f"SELECT {_COMPONENT_COLUMNS} FROM {COMPONENTS} WHERE id = $1", component_id)
    return _component(row) if row else None


async def components_by_id(db: Fetcher, component_ids: Iterable[str]) -> dict[str, ComponentRow]:
    """The named components that exist (archived included), by id; unknown ids are left out."""
    ids = sorted({cid for cid in component_ids if is_ulid(cid)})
    if not ids:
        return {}
    rows = await db.fetch(f"SELECT {_COMPONENT_COLUMNS} FROM {COMPONENTS} WHERE id = ANY($1::text[])", ids)
    return {row["id"]: _component(row) for row in rows}


async def component_names(db: Fetcher, component_ids: Iterable[str]) -> dict[str, str]:
    """Names of the named components that exist (archived included), by id."""
    return {cid: row.name for cid, row in (await components_by_id(db, component_ids)).items()}
