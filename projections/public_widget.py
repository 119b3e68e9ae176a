"""The public widget projection's database half (what it serves: docs/architecture.md#widget; why it is
bytes: docs/architecture.md#5-the-widget-is-bytes): one precomputed JSON document per status page and per
sub-page, stored as bytes with a strong ETag, so the request path only hands out bytes.

The projection keeps what it needs to render in its own tables (a state row per page, per open notice
and per component name). For each batch it loads the rows the batch's events can change, folds the events
into them with `evolve`, renders every document the batch touched once with `render_documents` (both in
projections/widget_document.py, which does no I/O and holds the decisions the contract leaves open),
writes the changed documents to `widget_documents` and `NOTIFY`s `beacon_public_documents`
(projections/public_documents.py) in the runner's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

import asyncpg
import msgspec
from eventsourcing.domain import Aggregate

from domain.component import Component
from domain.incident import Incident
from domain.maintenance import Maintenance
from domain.public_base_url import PublicBaseUrlConfigured
from domain.status_page import StatusPage
from domain.structure import component_ids, parse_structure
from infra.event_store import RecordedEvent
from infra.ids import uuid_to_ulid
from projections.public_documents import DocumentsChanged, notify
from projections.versions import key, version_key
from projections.widget_document import (
    NoticeState,
    PageState,
    WidgetState,
    documents_of,
    etag_of,
    evolve,
    fold_record,
    render_documents,
)

NAME = "public_widget"

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS widget_pages (
    id            text    PRIMARY KEY,
    slug          text    NOT NULL,
    component_ids text[]  NOT NULL,
    state         bytea   NOT NULL
);
CREATE INDEX IF NOT EXISTS widget_pages_component_ids ON widget_pages USING gin (component_ids);
CREATE TABLE IF NOT EXISTS widget_notices (
    id             text  PRIMARY KEY,
    status_page_id text  NOT NULL,
    state          bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS widget_notices_page ON widget_notices (status_page_id);
CREATE TABLE IF NOT EXISTS widget_components (
    id   text PRIMARY KEY,
    name text NOT NULL
);
CREATE TABLE IF NOT EXISTS widget_base_url (
    id  boolean PRIMARY KEY DEFAULT true CHECK (id),
    url text
);
CREATE TABLE IF NOT EXISTS widget_documents (
    page_slug      text   NOT NULL,
    sub_page_slug  text   NOT NULL,
    status_page_id text   NOT NULL,
    body           bytea  NOT NULL,
    etag           text   NOT NULL,
    position       bigint NOT NULL,
    PRIMARY KEY (page_slug, sub_page_slug)
);
CREATE INDEX IF NOT EXISTS widget_documents_position ON widget_documents (position);
CREATE INDEX IF NOT EXISTS widget_documents_page ON widget_documents (status_page_id);
"""


# The projection: load the state a batch needs, evolve, write back, render, store, notify.


_ENCODER = msgspec.json.Encoder()
_PAGE_DECODER = msgspec.json.Decoder(PageState)
_NOTICE_DECODER = msgspec.json.Decoder(NoticeState)


class PublicWidget:
    """Projection `public_widget` (see the module docstring)."""

    name = NAME
    version = 1  # bump when what it stores changes: the new version is built beside the old (projections/versions.py)
    writes_wait = True  # read-your-writes covers the widget of the process that took the write
    tables: tuple[str, ...] = (
        "widget_pages",
        "widget_notices",
        "widget_components",
        "widget_base_url",
        "widget_documents",
    )
    schema_sql = SCHEMA_SQL

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        decoded = [(record.position, record.decode()) for record in events]
        # One event per stream tells which rows to load; stream ids become ULIDs once per stream, not per event.
        state = await _load_state(conn, list({event.originator_id: event for _, event in decoded}.values()))
        touched_pages: dict[str, int] = {}
        notice_streams: set[UUID] = set()
        component_streams: set[UUID] = set()
        for position, event in decoded:
            affected = evolve(state, event)
            if isinstance(event, Incident.Event | Maintenance.Event):
                notice_streams.add(event.originator_id)
            elif isinstance(event, Component.Event):
                component_streams.add(event.originator_id)
            for page_id in affected:
                touched_pages[page_id] = position
        touched_notices = {uuid_to_ulid(stream_id) for stream_id in notice_streams}
        touched_components = {uuid_to_ulid(stream_id) for stream_id in component_streams}
        await _save_state(conn, state, set(touched_pages), touched_notices, touched_components)
        if any(isinstance(event, PublicBaseUrlConfigured) for _, event in decoded):
            await conn.execute(
                "INSERT INTO widget_base_url (id, url) VALUES (true, $1) ON CONFLICT (id) DO UPDATE SET url = $1",
                state.base_url,
            )
        changed, deleted = await _store_documents(conn, state, touched_pages)
        await notify(conn, DocumentsChanged(key(self), events[-1].position, changed, deleted))


KEY = version_key(NAME, PublicWidget.version)
"""The checkpoint and public-documents source name of this code's version (projections/versions.py)."""


async def _load_state(conn: asyncpg.Connection, events: Sequence[Aggregate.Event]) -> WidgetState:
    """The rows the batch's events can change: their pages, notices and the pages placing their components;
    every page when the public base URL changes (rare: a deployment's setting)."""
    page_ids = {uuid_to_ulid(e.originator_id) for e in events if isinstance(e, StatusPage.Event)}
    notice_ids = {uuid_to_ulid(e.originator_id) for e in events if isinstance(e, Incident.Event | Maintenance.Event)}
    component_ids_ = [uuid_to_ulid(e.originator_id) for e in events if isinstance(e, Component.Event)]
    every_page = any(isinstance(e, PublicBaseUrlConfigured) for e in events)
    state = WidgetState(base_url=await conn.fetchval("SELECT url FROM widget_base_url"))
    rows = await conn.fetch(
        "SELECT state FROM widget_pages WHERE $3 OR id = ANY($1::text[]) OR component_ids && $2::text[]",
        list(page_ids),
        component_ids_,
        every_page,
    )
    for row in rows:
        page = _PAGE_DECODER.decode(row["state"])
        state.pages[page.id] = page
    for row in await conn.fetch("SELECT state FROM widget_notices WHERE id = ANY($1::text[])", list(notice_ids)):
        notice = _NOTICE_DECODER.decode(row["state"])
        state.notices[notice.id] = notice
    return state


async def _save_state(
    conn: asyncpg.Connection, state: WidgetState, pages: set[str], notices: set[str], components: set[str]
) -> None:
    page_rows = [
        (page.id, page.slug, component_ids(parse_structure(page.items)), _ENCODER.encode(page))
        for page_id in sorted(pages)
        if (page := state.pages.get(page_id)) is not None
    ]
    if page_rows:
        await conn.executemany(
            "INSERT INTO widget_pages (id, slug, component_ids, state) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (id) DO UPDATE SET component_ids = EXCLUDED.component_ids, state = EXCLUDED.state",
            page_rows,
        )
    kept = [state.notices[i] for i in sorted(notices) if state.notices.get(i) is not None]
    gone = [i for i in sorted(notices) if state.notices.get(i) is None]
    if kept:
        await conn.executemany(
            "INSERT INTO widget_notices (id, status_page_id, state) VALUES ($1, $2, $3)"
            " ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state",
            [(n.id, n.status_page_id, _ENCODER.encode(n)) for n in kept if n is not None],
        )
    if gone:
        await conn.execute("DELETE FROM widget_notices WHERE id = ANY($1::text[])", gone)
    names = [(i, state.component_names[i]) for i in sorted(components) if i in state.component_names]
    if names:
        await conn.executemany(
            "INSERT INTO widget_components (id, name) VALUES ($1, $2)"
            " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
            names,
        )


async def _store_documents(conn: asyncpg.Connection, state: WidgetState, touched: Mapping[str, int]) -> tuple[int, int]:
    """Render each touched page once and write the documents whose bytes changed; returns how many
    documents were written and how many removed.

    A document's `position` is the last event that touched its page, whether or not the bytes changed,
    so it does not depend on how the log was cut into batches (a rebuild must equal the live table)."""
    missing = [page_id for page_id in touched if page_id not in state.pages]  # touched through a notice
    if missing:
        for row in await conn.fetch("SELECT state FROM widget_pages WHERE id = ANY($1::text[])", missing):
            page = _PAGE_DECODER.decode(row["state"])
            state.pages[page.id] = page
    page_ids = sorted(page_id for page_id in touched if page_id in state.pages)
    if not page_ids:
        return 0, 0
    notices: dict[str, list[NoticeState]] = {page_id: [] for page_id in page_ids}
    rows = await conn.fetch("SELECT state FROM widget_notices WHERE status_page_id = ANY($1::text[])", page_ids)
    for row in rows:
        notice = _NOTICE_DECODER.decode(row["state"])
        notices[notice.status_page_id].append(notice)
    placed = sorted({cid for page_id in page_ids for cid in component_ids(parse_structure(state.pages[page_id].items))})
    names = {
        row["id"]: row["name"]
        for row in await conn.fetch("SELECT id, name FROM widget_components WHERE id = ANY($1::text[])", placed)
    }
    existing: dict[tuple[str, str], str] = {
        (row["page_slug"], row["sub_page_slug"]): row["etag"]
        for row in await conn.fetch(
            "SELECT page_slug, sub_page_slug, etag FROM widget_documents WHERE status_page_id = ANY($1::text[])",
            page_ids,
        )
    }
    writes: list[tuple[str, str, str, bytes, str, int]] = []
    unchanged: list[tuple[str, str, int]] = []
    keep: set[tuple[str, str]] = set()
    for page_id in page_ids:
        page = state.pages[page_id]
        for sub_slug, body in render_documents(page, notices[page_id], names, state.base_url).items():
            key = (page.slug, sub_slug)
            keep.add(key)
            etag = etag_of(body)
            if existing.get(key) != etag:
                writes.append((page.slug, sub_slug, page_id, body, etag, touched[page_id]))
            else:
                unchanged.append((page.slug, sub_slug, touched[page_id]))
    removed = [key for key in existing if key not in keep]
    if writes:
        await conn.executemany(
            "INSERT INTO widget_documents (page_slug, sub_page_slug, status_page_id, body, etag, position)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (page_slug, sub_page_slug) DO UPDATE"
            " SET status_page_id = EXCLUDED.status_page_id, body = EXCLUDED.body, etag = EXCLUDED.etag,"
            " position = EXCLUDED.position",
            writes,
        )
    if unchanged:
        await conn.executemany(
            "UPDATE widget_documents SET position = $3 WHERE page_slug = $1 AND sub_page_slug = $2",
            unchanged,
        )
    for page_slug, sub_slug in removed:
        await conn.execute(
            "DELETE FROM widget_documents WHERE page_slug = $1 AND sub_page_slug = $2", page_slug, sub_slug
        )
    return len(writes), len(removed)


# Queries that read the projection (the widget cache and the authenticated route).


@dataclass(frozen=True)
class StoredDocument:
    page_slug: str
    sub_page_slug: str
    status_page_id: str
    body: bytes
    etag: str
    position: int


async def read_documents(conn: asyncpg.Connection, *, after: int | None = None) -> list[StoredDocument]:
    """Every stored document, or only those written past `after`."""
    query = "SELECT page_slug, sub_page_slug, status_page_id, body, etag, position FROM widget_documents"
    rows = await (conn.fetch(query) if after is None else conn.fetch(query + " WHERE position > $1", after))
    return [StoredDocument(**dict(row)) for row in rows]


async def widget_position(conn: asyncpg.Connection) -> int:
    """How far the projection has read the log (0 before its first batch)."""
    position = await conn.fetchval("SELECT position FROM beacon_projection_checkpoints WHERE name = $1", KEY)
    return int(position or 0)


async def page_document(conn: asyncpg.Connection, status_page_id: str) -> StoredDocument | None:
    row = await conn.fetchrow(
        "SELECT page_slug, sub_page_slug, status_page_id, body, etag, position FROM widget_documents"
        " WHERE status_page_id = $1 AND sub_page_slug = ''",
        status_page_id,
    )
    return StoredDocument(**dict(row)) if row is not None else None


async def page_exists(conn: asyncpg.Connection, status_page_id: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM widget_pages WHERE id = $1)", status_page_id))


# Time travel (docs/architecture.md#time-travel): the documents as the projection rendered them after the
# last event recorded at or before an instant, rebuilt from the log with the same `evolve` and
# `render_documents`.


class LogReader(Protocol):
    async def read_all(
        self, after: int = 0, limit: int = 500, *, through: datetime | None = None
    ) -> list[RecordedEvent]: ...


AS_OF_PAGE_SIZE = 1000


async def documents_as_of(
    log: LogReader, status_page_id: str, as_of: datetime, *, page_size: int = AS_OF_PAGE_SIZE
) -> dict[str, bytes] | None:
    """Every document of the page as of `as_of`, keyed like `render_documents` ('' is the page's own);
    None when the page did not exist yet, `{}` when its widget was disabled then.

    The log is read a page at a time, so memory holds one page of events plus the fold's state. Streams
    that cannot change this page's documents are dropped from the state and skipped (other pages, notices
    of other pages, notices that already left the widget); `evolve` never reads them for this page."""
    state = WidgetState()
    skipped: set[UUID] = set()
    after = 0
    while batch := await log.read_all(after, page_size, through=as_of):
        after = batch[-1].position
        for record in batch:
            fold_record(state, record, status_page_id, skipped)
        if len(batch) < page_size:
            break
    return documents_of(state, status_page_id)
