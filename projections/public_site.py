"""The public site projection's database half (docs/architecture.md#public-site): for each page and
sub-page, every public document — the HTML index, history and notice pages, the feeds and the eight
Statuspage JSON documents — rendered as bytes with a strong ETag and stored with the checkpoint, so the
request path only hands out bytes (docs/architecture.md#12-every-public-document-is-bytes).

It runs in a runner pass of its own (`writes_wait = False`): rendering HTML must never hold up a write's
answer. For each batch it loads the rows its events can change, folds the events into them with
`public_site_state.evolve` (which says, per event, which documents of which page it dirtied), and renders
only those, once per batch: an update to one incident re-renders that incident's page, its month, the
index, the feeds and the JSON of its page — not every page, not every notice. A document's `position` is
the last event that dirtied it, whatever the batches were, so a rebuild equals the live table.

What depends on the clock rather than on events (the 90-day bars' day) is re-rendered by `tick`, which
the scheduler calls (process_managers/maintenance_scheduler.py): at each local midnight of a page it
renders the page's index at that midnight. Nothing else reads the clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import asyncpg
import msgspec
from eventsourcing.domain import Aggregate

from domain.component import Component
from domain.incident import Incident
from domain.maintenance import Maintenance
from domain.status_page import StatusPage
from domain.structure import component_ids, parse_structure
from infra.event_store import RecordedEvent
from infra.ids import uuid_to_ulid
from projections import feeds
from projections.public_documents import DocumentsChanged, gzipped, notify
from projections.public_site_html import render_history, render_index, render_notice
from projections.public_site_render import (
    ATOM,
    FEED_SIZE,
    HISTORY_MONTHS,
    HTML,
    JSON,
    LIST_SIZE,
    RECENT,
    RSS,
    CoreInputs,
    Document,
    day_start,
    feed_entries,
    history_view,
    in_scope,
    index_view,
    json_documents,
    leaves,
    page_view,
    rows_of,
    scopes,
)
from projections.public_site_state import (
    ALL,
    BASE_URL_TOPIC,
    CORE,
    Dirty,
    SiteComponent,
    SiteNotice,
    SitePage,
    SiteState,
    evolve,
    local_month,
    mark,
    month_key,
    notice_key,
)
from projections.public_site_view import NoticePageView
from projections.runner import quote_ident, use_schema
from projections.versions import version_key
from projections.widget_document import etag_of

NAME = "public_site"

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS site_pages (
    id            text        PRIMARY KEY,
    slug          text        NOT NULL,
    custom_domain text,
    component_ids text[]      NOT NULL,
    clock_due     timestamptz NOT NULL,
    state         bytea       NOT NULL
);
CREATE INDEX IF NOT EXISTS site_pages_component_ids ON site_pages USING gin (component_ids);
CREATE INDEX IF NOT EXISTS site_pages_clock_due ON site_pages (clock_due);
CREATE TABLE IF NOT EXISTS site_notices (
    id             text        PRIMARY KEY,
    status_page_id text        NOT NULL,
    kind           text        NOT NULL,
    open           boolean     NOT NULL,
    created_at     timestamptz NOT NULL,
    begun_at       timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    component_ids  text[]      NOT NULL,
    state          bytea       NOT NULL
);
CREATE INDEX IF NOT EXISTS site_notices_components ON site_notices USING gin (component_ids);
CREATE INDEX IF NOT EXISTS site_notices_begun ON site_notices (status_page_id, begun_at);
CREATE INDEX IF NOT EXISTS site_notices_created ON site_notices (status_page_id, kind, created_at);
CREATE INDEX IF NOT EXISTS site_notices_updated ON site_notices (status_page_id, updated_at);
CREATE INDEX IF NOT EXISTS site_notices_open ON site_notices (status_page_id) WHERE open;
CREATE TABLE IF NOT EXISTS site_components (
    id    text  PRIMARY KEY,
    state bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS site_settings (
    name  text PRIMARY KEY,
    value text
);
CREATE TABLE IF NOT EXISTS site_documents (
    path           text    PRIMARY KEY,
    status_page_id text    NOT NULL,
    content_type   text    NOT NULL,
    hot            boolean NOT NULL,
    body           bytea   NOT NULL,
    etag           text    NOT NULL,
    position       bigint  NOT NULL,
    gzip           bytea,
    size           integer NOT NULL DEFAULT 0
);
-- The gzip representation every process holds (projections/public_documents.gzipped); tables made before it.
ALTER TABLE site_documents ADD COLUMN IF NOT EXISTS gzip bytea;
ALTER TABLE site_documents ADD COLUMN IF NOT EXISTS size integer NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS site_documents_position ON site_documents (position);
-- What a catch-up's big batches dirtied, rendered once at the end of the pass (PublicSite.settle).
CREATE TABLE IF NOT EXISTS site_dirty (
    status_page_id text   NOT NULL,
    key            text   NOT NULL,
    position       bigint NOT NULL,
    PRIMARY KEY (status_page_id, key)
);
CREATE INDEX IF NOT EXISTS site_documents_page ON site_documents (status_page_id);
"""

_ENCODER = msgspec.json.Encoder()
_PAGE = msgspec.json.Decoder(SitePage)
_NOTICE = msgspec.json.Decoder(SiteNotice)
_COMPONENT = msgspec.json.Decoder(SiteComponent)


class PublicSite:
    """Projection `public_site` (see the module docstring)."""

    name = NAME
    version = 1  # bump when what it stores changes: the new version is built beside the old (projections/versions.py)
    writes_wait = False  # rendering pages must never delay a write's answer (its own runner pass)
    min_pass_interval = 0.05
    loop_share = 0.25
    """Spaced passes, and at most a quarter of the event loop (projections/runner.py, `Projection`). Rendering is
    CPU work on the worker's event loop, where the passes writes wait for also run: under a stream of commands,
    one pass per commit rendered a page's index, JSON and feeds for every command and held up the answers;
    spaced passes render them once for the commands of the interval, at the cost of that much freshness (the
    documents say `max-age=30` anyway)."""
    tables: tuple[str, ...] = (
        "site_pages",
        "site_notices",
        "site_components",
        "site_settings",
        "site_documents",
        "site_dirty",
    )
    schema_sql = SCHEMA_SQL

    async def after_rebuild(self, conn: asyncpg.Connection, *, live: str, scratch: str) -> None:
        """A rebuild folds the log, not the clock: give it the live clock before it is compared."""
        await copy_clock(conn, source=live, target=scratch)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        decoded = [(record, record.decode()) for record in events]
        state = await _load_state(conn, decoded)
        hosts = {page.id: page.custom_domain for page in state.pages.values()}
        dirty: Dirty = {}
        touched_components: set[str] = set()
        touched_notices: set[str] = set()
        renamed: dict[str, int] = {}
        for record, event in decoded:
            evolve(state, event, record.position, record.recorded_at, dirty, record.topic)
            if record.topic == BASE_URL_TOPIC:
                for page_id in state.pages:
                    state.pages[page_id].updated_at = record.recorded_at
                    dirty.setdefault(page_id, {})[ALL] = record.position
            elif isinstance(event, Component.Event):
                touched_components.add(uuid_to_ulid(event.originator_id))
                if isinstance(event, Component.Updated):
                    renamed[uuid_to_ulid(event.originator_id)] = record.position
            elif isinstance(event, Incident.Event | Maintenance.Event):
                touched_notices.add(uuid_to_ulid(event.originator_id))
        if renamed:
            await _mark_naming(conn, state, renamed, dirty)
        await _save_state(conn, state, set(dirty), touched_notices, touched_components)
        # A page that moved to or from a custom domain: its documents' keys changed under every cache.
        moved = sum(1 for page in state.pages.values() if hosts.get(page.id, page.custom_domain) != page.custom_domain)
        if len(events) >= DEFER_FROM:
            await _defer(conn, dirty, moved)
            return
        await _pending(conn, state, dirty)
        changed, removed = await render_pages(conn, state, dirty)
        await notify(conn, DocumentsChanged(KEY, events[-1].position, changed, removed + moved))

    async def settle(self, conn: asyncpg.Connection) -> None:
        """Render what the catch-up's big batches deferred (the runner calls it after a pass), once. A live
        pass, which defers nothing, costs one query."""
        state = SiteState()
        dirty: Dirty = {}
        moved = await _pending(conn, state, dirty)
        if not dirty:
            return
        # Serialised with `tick` (which re-renders indexes) like a batch: it holds the checkpoint row too.
        position = await conn.fetchval(
            "SELECT position FROM beacon_projection_checkpoints WHERE name = $1 FOR UPDATE", KEY
        )
        state.base_url = await conn.fetchval("SELECT value FROM site_settings WHERE name = 'base_url'")
        changed, removed = await render_pages(conn, state, dirty)
        await notify(conn, DocumentsChanged(KEY, int(position or 0), changed, removed + moved))


DEFER_FROM = 1000
"""A batch this big is a catch-up (a rebuild, a blue-green build, a runner far behind), never a live write:
it only records what it dirtied (`site_dirty`), and the pass renders each of those documents once at its
end (`PublicSite.settle`) rather than once per batch — a rebuild would otherwise re-render most notice
pages of a page on every batch that renames it. The bytes are the same: a document is rendered from the
stored state, and its position is the last event that dirtied it either way."""


async def _defer(conn: asyncpg.Connection, dirty: Dirty, moved: int) -> None:
    rows = [(page_id, key, position) for page_id, keys in sorted(dirty.items()) for key, position in keys.items()]
    if moved:
        rows.append(("", MOVED, moved))
    await conn.execute(
        "INSERT INTO site_dirty (status_page_id, key, position)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])"
        " ON CONFLICT (status_page_id, key) DO UPDATE SET position = CASE WHEN EXCLUDED.key = $4"
        "  THEN site_dirty.position + EXCLUDED.position ELSE greatest(site_dirty.position, EXCLUDED.position) END",
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        MOVED,
    )


async def _pending(conn: asyncpg.Connection, state: SiteState, dirty: Dirty) -> int:
    """Fold what earlier batches deferred into `dirty` (and their pages into `state`) and clear it; returns
    how many pages changed custom domain meanwhile."""
    moved = 0
    for row in await conn.fetch("DELETE FROM site_dirty RETURNING status_page_id, key, position"):
        if row["key"] == MOVED:
            moved += row["position"]
        else:
            mark(dirty, row["status_page_id"], row["position"], row["key"])
    missing = sorted(set(dirty) - set(state.pages))
    if missing:
        for row in await conn.fetch("SELECT state FROM site_pages WHERE id = ANY($1::text[])", missing):
            page = _PAGE.decode(row["state"])
            state.pages[page.id] = page
    return moved


MOVED = "moved"
"""`site_dirty`'s count of pages that changed custom domain in deferred batches (on page id '')."""

KEY = version_key(NAME, PublicSite.version)
"""The checkpoint and public-documents source name of this code's version (projections/versions.py)."""


async def _load_state(conn: asyncpg.Connection, decoded: Sequence[tuple[RecordedEvent, Aggregate.Event]]) -> SiteState:
    """The rows the batch's events can change, and every open notice of the pages they touch (a component's
    page status is the worst any of them gives it)."""
    state = SiteState(base_url=await conn.fetchval("SELECT value FROM site_settings WHERE name = 'base_url'"))
    notice_ids = {
        uuid_to_ulid(e.originator_id) for _, e in decoded if isinstance(e, Incident.Event | Maintenance.Event)
    }
    for row in await conn.fetch("SELECT state FROM site_notices WHERE id = ANY($1::text[])", list(notice_ids)):
        notice = _NOTICE.decode(row["state"])
        state.notices[notice.id] = notice
    page_ids = {uuid_to_ulid(e.originator_id) for _, e in decoded if isinstance(e, StatusPage.Event)}
    page_ids |= {n.status_page_id for n in state.notices.values() if n is not None}
    page_ids |= {
        e.status_page_id
        for _, e in decoded
        if isinstance(e, Incident.Declared | Incident.RetrospectiveRecorded | Maintenance.Scheduled)
    }
    component_ids_ = [uuid_to_ulid(e.originator_id) for _, e in decoded if isinstance(e, Component.Event)]
    every_page = any(record.topic == BASE_URL_TOPIC for record, _ in decoded)
    rows = await conn.fetch(
        "SELECT state FROM site_pages WHERE $3 OR id = ANY($1::text[]) OR component_ids && $2::text[]",
        list(page_ids),
        component_ids_,
        every_page,
    )
    for row in rows:
        page = _PAGE.decode(row["state"])
        state.pages[page.id] = page
    for row in await conn.fetch("SELECT state FROM site_components WHERE id = ANY($1::text[])", component_ids_):
        component = _COMPONENT.decode(row["state"])
        state.components[component.id] = component
    for row in await conn.fetch(
        "SELECT state FROM site_notices WHERE open AND status_page_id = ANY($1::text[]) AND NOT id = ANY($2::text[])",
        list(page_ids),
        list(notice_ids),
    ):
        notice = _NOTICE.decode(row["state"])
        state.notices[notice.id] = notice
    return state


async def _mark_naming(conn: asyncpg.Connection, state: SiteState, renamed: dict[str, int], dirty: Dirty) -> None:
    """A renamed component's name shows on the pages of the notices that name it and in their months: mark
    those (on the pages that place it), not every document of the page."""
    naming: dict[str, tuple[str, datetime, list[str]]] = {
        row["id"]: (row["status_page_id"], row["begun_at"], row["component_ids"])
        for row in await conn.fetch(
            "SELECT id, status_page_id, begun_at, component_ids FROM site_notices WHERE component_ids && $1::text[]",
            sorted(renamed),
        )
    }
    for notice in state.notices.values():
        if notice is not None:
            naming[notice.id] = (notice.status_page_id, notice.begun_at, list(notice.statuses))
    placed: dict[str, set[str]] = {
        page.id: set(component_ids(parse_structure(page.items))) & renamed.keys() for page in state.pages.values()
    }
    for notice_id, (page_id, begun_at, named) in sorted(naming.items()):
        page = state.pages.get(page_id)
        if page is None:
            continue
        for component_id in placed[page_id].intersection(named):
            mark(
                dirty,
                page_id,
                renamed[component_id],
                notice_key(notice_id),
                month_key(local_month(begun_at, page.zone)),
            )


def clock_due(page: SitePage) -> datetime:
    """The next local midnight after the instant the page's index was rendered at: when `tick` is due."""
    zone = page.zone
    return day_start(page.instant.astimezone(zone).date() + timedelta(days=1), zone)


async def _save_state(
    conn: asyncpg.Connection, state: SiteState, pages: set[str], notices: set[str], components: set[str]
) -> None:
    page_rows = [
        (p.id, p.slug, p.custom_domain, component_ids(parse_structure(p.items)), clock_due(p), _ENCODER.encode(p))
        for page_id in sorted(pages)
        if (p := state.pages.get(page_id)) is not None
    ]
    if page_rows:
        await conn.executemany(
            "INSERT INTO site_pages (id, slug, custom_domain, component_ids, clock_due, state)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET custom_domain = EXCLUDED.custom_domain,"
            " component_ids = EXCLUDED.component_ids, clock_due = EXCLUDED.clock_due, state = EXCLUDED.state",
            page_rows,
        )
    kept = [n for i in sorted(notices) if (n := state.notices.get(i)) is not None]
    gone = [i for i in sorted(notices) if state.notices.get(i) is None]
    if kept:
        await conn.executemany(
            "INSERT INTO site_notices"
            " (id, status_page_id, kind, open, created_at, begun_at, updated_at, component_ids, state)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO UPDATE SET open = EXCLUDED.open,"
            " begun_at = EXCLUDED.begun_at, updated_at = EXCLUDED.updated_at,"
            " component_ids = EXCLUDED.component_ids, state = EXCLUDED.state",
            [
                (
                    n.id,
                    n.status_page_id,
                    n.kind,
                    n.open,
                    n.created_at,
                    n.begun_at,
                    n.updated_at,
                    list(n.statuses),
                    _ENCODER.encode(n),
                )
                for n in kept
            ],
        )
    if gone:
        await conn.execute("DELETE FROM site_notices WHERE id = ANY($1::text[])", gone)
    rows = [(i, _ENCODER.encode(state.components[i])) for i in sorted(components) if i in state.components]
    if rows:
        await conn.executemany(
            "INSERT INTO site_components (id, state) VALUES ($1, $2)"
            " ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state",
            rows,
        )
    if state.base_url_changed:
        await conn.execute(
            "INSERT INTO site_settings (name, value) VALUES ('base_url', $1)"
            " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            state.base_url,
        )


# Rendering what a batch (or the tick) dirtied.


@dataclass
class _Writes:
    """The documents a batch rendered, by path, with the position each is stored at (None: keep the stored
    one, for the tick), and the pages whose every document was rendered (the rest of theirs go)."""

    documents: dict[str, tuple[str, Document, int | None]] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    complete_pages: set[str] = field(default_factory=set)

    def add(self, page_id: str, document: Document, position: int | None) -> None:
        self.documents[document.path] = (page_id, document, position)


async def _load_notices(conn: asyncpg.Connection, query: str, *args: object) -> list[SiteNotice]:
    return [_NOTICE.decode(row["state"]) for row in await conn.fetch(query, *args)]


async def _core_notices(conn: asyncpg.Connection, page: SitePage) -> list[SiteNotice]:
    """What the index, JSON and feeds show: open notices, the last 91 days', the newest of each kind, the
    latest updated."""
    recent_from = page.instant - RECENT
    return await _load_notices(
        conn,
        "SELECT state FROM site_notices WHERE id IN ("
        " SELECT id FROM site_notices WHERE status_page_id = $1 AND (open OR updated_at >= $2)"
        " UNION (SELECT id FROM site_notices WHERE status_page_id = $1 AND kind = 'incident'"
        "        ORDER BY created_at DESC, id DESC LIMIT $3)"
        " UNION (SELECT id FROM site_notices WHERE status_page_id = $1 AND kind = 'maintenance'"
        "        ORDER BY created_at DESC, id DESC LIMIT $3)"
        " UNION (SELECT id FROM site_notices WHERE status_page_id = $1 ORDER BY updated_at DESC, id DESC LIMIT $4))"
        " ORDER BY id",
        page.id,
        recent_from,
        LIST_SIZE,
        FEED_SIZE,
    )


async def _sub_page_lists(
    conn: asyncpg.Connection, page: SitePage, visible: set[str], core: list[SiteNotice]
) -> list[SiteNotice]:
    """`core` plus a sub-page's own newest of each kind and latest updated (notices naming one of its
    visible components): the parent's 50 newest may hold none of them."""
    rows = await conn.fetch(
        "(SELECT id FROM site_notices WHERE status_page_id = $1 AND kind = 'incident' AND component_ids && $2::text[]"
        "  ORDER BY created_at DESC, id DESC LIMIT $3)"
        " UNION (SELECT id FROM site_notices WHERE status_page_id = $1 AND kind = 'maintenance'"
        "  AND component_ids && $2::text[] ORDER BY created_at DESC, id DESC LIMIT $3)"
        " UNION (SELECT id FROM site_notices WHERE status_page_id = $1 AND component_ids && $2::text[]"
        "  ORDER BY updated_at DESC, id DESC LIMIT $4)",
        page.id,
        sorted(visible),
        LIST_SIZE,
        FEED_SIZE,
    )
    have = {notice.id for notice in core}
    missing = sorted(row["id"] for row in rows if row["id"] not in have)
    if not missing:
        return core
    more = await _load_notices(conn, "SELECT state FROM site_notices WHERE id = ANY($1::text[])", missing)
    return sorted([*core, *more], key=lambda n: n.id)


async def _sub_page_months(conn: asyncpg.Connection, page: SitePage, visible: set[str]) -> dict[str, int]:
    """A sub-page's history months: its own notices (naming one of its visible components) per local month."""
    counts: dict[str, int] = {}
    for row in await conn.fetch(
        "SELECT begun_at FROM site_notices WHERE status_page_id = $1 AND component_ids && $2::text[]",
        page.id,
        sorted(visible),
    ):
        month = local_month(row["begun_at"], page.zone)
        counts[month] = counts.get(month, 0) + 1
    return counts


def _month_range(month: str, page: SitePage) -> tuple[datetime, datetime]:
    first = date.fromisoformat(month + "-01")
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return day_start(first, page.zone), day_start(following, page.zone)


async def _month_notices(
    conn: asyncpg.Connection, page: SitePage, months: Iterable[str]
) -> dict[str, list[SiteNotice]]:
    found: dict[str, list[SiteNotice]] = {}
    for month in sorted(months):
        start, end = _month_range(month, page)
        found[month] = await _load_notices(
            conn,
            "SELECT state FROM site_notices WHERE status_page_id = $1 AND begun_at >= $2 AND begun_at < $3 ORDER BY id",
            page.id,
            start,
            end,
        )
    return found


def _months_of(notices: Sequence[SiteNotice], page: SitePage, months: Iterable[str]) -> dict[str, list[SiteNotice]]:
    """`_month_notices` from notices already loaded (in id order, as it returns them)."""
    found: dict[str, list[SiteNotice]] = {}
    for month in sorted(months):
        start, end = _month_range(month, page)
        found[month] = [n for n in notices if start <= n.begun_at < end]
    return found


async def _components(conn: asyncpg.Connection, page: SitePage) -> dict[str, SiteComponent]:
    ids = component_ids(parse_structure(page.items))
    rows = await conn.fetch("SELECT state FROM site_components WHERE id = ANY($1::text[])", ids)
    return {c.id: c for c in (_COMPONENT.decode(row["state"]) for row in rows)}


async def render_pages(
    conn: asyncpg.Connection, state: SiteState, dirty: Dirty, *, clock_only: bool = False
) -> tuple[int, int]:
    """Render what `dirty` names and store it; returns (documents written, documents removed or gone cold)."""
    writes = _Writes()
    for page_id in sorted(dirty):
        page = state.pages.get(page_id)
        if page is None:
            continue
        keys = dirty[page_id]
        if not page.enabled:
            writes.complete_pages.add(page_id)
            continue
        await _render_page(conn, state, page, keys, writes, clock_only=clock_only)
    return await _store(conn, writes)


def _position(keys: dict[str, int], *wanted: str) -> int:
    return max((keys[k] for k in (ALL, *wanted) if k in keys), default=0)


async def _render_page(
    conn: asyncpg.Connection,
    state: SiteState,
    page: SitePage,
    keys: dict[str, int],
    writes: _Writes,
    *,
    clock_only: bool,
) -> None:
    everything = ALL in keys
    components = await _components(conn, page)
    core = await _core_notices(conn, page)
    months = set(page.months) if everything else {k.removeprefix("month:") for k in keys if k.startswith("month:")}
    latest = sorted(page.months, reverse=True)[:HISTORY_MONTHS]
    wanted = months | set(latest) if months or everything else set()
    notice_ids = {k.removeprefix("notice:") for k in keys if k.startswith("notice:")}
    if everything:
        every = await _load_notices(
            conn, "SELECT state FROM site_notices WHERE status_page_id = $1 ORDER BY id", page.id
        )
        found = _months_of(every, page, wanted)  # every notice is at hand: no query per month
    else:
        found = await _month_notices(conn, page, wanted)
    month_notices = {m: found[m] for m in months}
    history_notices = {m: found[m] for m in latest} if months or everything else {}
    if everything:
        by_id = {n.id: n for n in every}
        notice_ids = set(by_id)
    else:
        by_id = {n.id: n for n in core}
        missing = sorted(notice_ids - set(by_id))
        if missing:
            for n in await _load_notices(conn, "SELECT state FROM site_notices WHERE id = ANY($1::text[])", missing):
                by_id[n.id] = n
    if everything:
        writes.complete_pages.add(page.id)
    for scope in scopes(page, state.base_url):
        rows = rows_of(scope, components)
        visible = {facts.id for facts in leaves(rows)}
        scope_core = core
        history = bool(months) or everything
        scope_months, scope_latest, scope_history = months, latest, history_notices
        sub_position: int | None = None
        if scope.sub_page is not None:
            # A page of its own: its lists and its months come from its own notices, not the parent's.
            if clock_only or everything or CORE in keys:
                scope_core = await _sub_page_lists(conn, page, visible, core)
            # Its history changes only with its own notices (a deleted one may have been): then all of it is
            # rendered (every month page lists its months), at the last such event, batched or not.
            own_changes = [
                position
                for key, position in keys.items()
                if key.startswith("notice:")
                and ((it := by_id.get(key.removeprefix("notice:"))) is None or in_scope(scope, [it], visible))
            ]
            history = history and (everything or bool(own_changes))
            scope_months = set()
            if history:
                scope = replace(scope, months=await _sub_page_months(conn, page, visible))
                own = scope.month_counts
                sub_position = max([_position(keys), *own_changes])
                scope_months = set(own) | months
                scope_latest = sorted(own, reverse=True)[:HISTORY_MONTHS]
                loaded = {**month_notices, **history_notices}
                unloaded = (scope_months | set(scope_latest)) - set(loaded)
                loaded.update(await _month_notices(conn, page, unloaded))
                month_notices = {**month_notices, **{m: loaded[m] for m in scope_months}}
                scope_history = {m: loaded[m] for m in scope_latest}
        inputs = CoreInputs(scope, rows, in_scope(scope, scope_core, visible), components)
        if clock_only:
            writes.add(page.id, Document(scope.prefix, HTML, render_index(index_view(inputs)), True), None)
            continue
        if everything or CORE in keys:
            position = _position(keys, CORE)
            # The index, the JSON and the feeds are most of a pass's rendering: in a thread, so that the event
            # loop, shared with the pass writes wait for, gets the interpreter back every few milliseconds (its
            # switch interval) rather than only once the whole set is rendered.
            for document in await asyncio.to_thread(_core_documents, inputs):
                writes.add(page.id, document, position)
        for notice_id in sorted(notice_ids):
            notice = by_id.get(notice_id)
            paths = [scope.link(f"/incidents/{notice_id}"), scope.link(f"/maintenances/{notice_id}")]
            if notice is None or not in_scope(scope, [notice], visible):
                writes.removed.update(paths)
                continue
            path = paths[0] if notice.kind == "incident" else paths[1]
            view = NoticePageView(page=page_view(scope), notice=inputs.views(notice))
            # A page-wide change re-renders every notice page of the page (about half a millisecond each); the
            # worker's event loop also runs the dispatcher and the scheduler, whose deadlines keep counting.
            await asyncio.sleep(0)
            writes.add(
                page.id, Document(path, HTML, render_notice(view), notice.open), _position(keys, f"notice:{notice_id}")
            )
        for month in sorted(scope_months):
            path = scope.link(f"/history/{month}")
            if month not in scope.month_counts:
                writes.removed.add(path)
                continue
            shown = in_scope(scope, month_notices.get(month, []), visible)
            body = render_history(history_view(scope, month, shown, inputs.views))
            position = sub_position if sub_position is not None else _position(keys, f"month:{month}")
            writes.add(page.id, Document(path, HTML, body, False), position)
        if history:
            shown = in_scope(scope, [n for m in scope_latest for n in scope_history.get(m, [])], visible)
            body = render_history(history_view(scope, None, shown, inputs.views))
            month_positions = [v for k, v in keys.items() if k.startswith("month:")]
            position = sub_position if sub_position is not None else max([_position(keys), *month_positions])
            writes.add(page.id, Document(scope.link("/history"), HTML, body, False), position)


def _core_documents(inputs: CoreInputs) -> list[Document]:
    scope = inputs.scope
    documents = [Document(scope.prefix, HTML, render_index(index_view(inputs)), True)]
    for name, body in json_documents(inputs).items():
        documents.append(Document(scope.link(f"/api/v2/{name}.json"), JSON, body, True))
    entries = feed_entries(inputs)
    atom = feeds.atom(
        page_id=scope.id,
        title=scope.name,
        base_url=scope.url,
        prefix=scope.prefix,
        updated=scope.page.updated_at,
        entries=entries,
    )
    rss = feeds.rss(
        title=scope.name, base_url=scope.url, prefix=scope.prefix, updated=scope.page.updated_at, entries=entries
    )
    for name in ("history", "feed"):
        documents.append(Document(scope.link(f"/{name}.atom"), ATOM, atom, True))
        documents.append(Document(scope.link(f"/{name}.rss"), RSS, rss, True))
    return documents


async def _store(conn: asyncpg.Connection, writes: _Writes) -> tuple[int, int]:
    """Write the documents whose bytes changed, move the positions of the rest, remove what went; returns
    (written, removed or turned cold) — a cache holding a document it should no longer hold reloads."""
    pages = sorted({page_id for page_id, _, _ in writes.documents.values()} | writes.complete_pages)
    existing = {
        row["path"]: (row["etag"], row["hot"], row["status_page_id"], row["position"])
        for row in await conn.fetch(
            "SELECT path, etag, hot, status_page_id, position FROM site_documents"
            " WHERE status_page_id = ANY($1::text[]) OR path = ANY($2::text[])",
            pages,
            sorted(writes.removed | set(writes.documents)),
        )
    }
    rows: list[tuple[str, str, str, bool, bytes, str, int, bytes | None, int]] = []
    moved: list[tuple[str, int]] = []
    cooled = 0
    for path, (page_id, document, position) in sorted(writes.documents.items()):
        etag = etag_of(document.body)
        stored = existing.get(path)
        at = position if position is not None else (stored[3] if stored is not None else 0)
        if stored is not None and stored[1] and not document.hot:
            cooled += 1
        if stored is None or stored[0] != etag or stored[1] != document.hot or stored[2] != page_id:
            body = document.body
            rows.append((path, page_id, document.content_type, document.hot, body, etag, at, gzipped(body), len(body)))
        elif stored[3] != at:
            moved.append((path, at))
    gone = {path for path in writes.removed if path in existing and path not in writes.documents}
    gone |= {
        path
        for path, (_, _, page_id, _) in existing.items()
        if page_id in writes.complete_pages and path not in writes.documents
    }
    if rows:
        await conn.executemany(
            "INSERT INTO site_documents (path, status_page_id, content_type, hot, body, etag, position, gzip, size)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (path) DO UPDATE"
            " SET status_page_id = EXCLUDED.status_page_id, content_type = EXCLUDED.content_type, hot = EXCLUDED.hot,"
            " body = EXCLUDED.body, etag = EXCLUDED.etag, position = EXCLUDED.position, gzip = EXCLUDED.gzip,"
            " size = EXCLUDED.size",
            rows,
        )
    if moved:
        await conn.executemany("UPDATE site_documents SET position = $2 WHERE path = $1", moved)
    if gone:
        await conn.execute("DELETE FROM site_documents WHERE path = ANY($1::text[])", sorted(gone))
    return len(rows), len(gone) + cooled


# The clock.


async def tick(conn: asyncpg.Connection, now: datetime, *, schema: str = "public") -> int:
    """Re-render the index of every page whose local day has turned since it was rendered, at that day's
    midnight; returns how many pages (0 also while a batch of the projection holds its checkpoint row)."""
    async with conn.transaction():
        await use_schema(conn, schema)
        if await conn.fetchval("SELECT to_regclass('site_pages')") is None:
            return 0
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM site_pages WHERE clock_due <= $1)", now):
            return 0
        # Serialised with the projection's batches; while one holds the checkpoint, try again next pass rather
        # than keep the scheduler (which also starts maintenance windows) waiting behind it.
        locked = await conn.fetchval(
            "SELECT 1 FROM beacon_projection_checkpoints WHERE name = $1 FOR UPDATE SKIP LOCKED", KEY
        )
        if locked is None:
            return 0
        pages = [
            _PAGE.decode(row["state"])
            for row in await conn.fetch("SELECT state FROM site_pages WHERE clock_due <= $1 ORDER BY id", now)
        ]
        for page in pages:
            page.clock = day_start(now.astimezone(page.zone).date(), page.zone)
        return await _retick(conn, pages)


async def copy_clock(conn: asyncpg.Connection, *, source: str, target: str) -> int:
    """Tick `target`'s pages to the midnight `source`'s were last ticked to; returns how many moved. A rebuild
    folds the log, not the clock, so replay-check gives the rebuild the live clock before comparing."""
    clocks = {
        page.id: page.clock
        for page in (
            _PAGE.decode(row["state"])
            for row in await conn.fetch(f"SELECT state FROM {quote_ident(source)}.site_pages")
        )
    }
    async with conn.transaction():
        await use_schema(conn, target)
        pages = [_PAGE.decode(row["state"]) for row in await conn.fetch("SELECT state FROM site_pages ORDER BY id")]
        moved = [page for page in pages if page.clock != clocks.get(page.id, page.clock)]
        for page in moved:
            page.clock = clocks[page.id]
        return await _retick(conn, moved)


async def _retick(conn: asyncpg.Connection, pages: Sequence[SitePage]) -> int:
    """Store the pages' new clock and re-render their indexes (the only documents that read it)."""
    if not pages:
        return 0
    state = SiteState(base_url=await conn.fetchval("SELECT value FROM site_settings WHERE name = 'base_url'"))
    state.pages = {page.id: page for page in pages}
    await _save_state(conn, state, set(state.pages), set(), set())
    changed, _ = await render_pages(conn, state, {page.id: {} for page in pages}, clock_only=True)
    position = int(await conn.fetchval("SELECT position FROM beacon_projection_checkpoints WHERE name = $1", KEY) or 0)
    # The documents keep their positions (they reflect no new event): a removal tells caches to reload.
    await notify(conn, DocumentsChanged(KEY, position, changed, 1))
    return len(pages)


# Queries that read the projection (the public site's document source).


@dataclass(frozen=True)
class StoredDocument:
    path: str
    status_page_id: str
    content_type: str
    body: bytes
    """Empty when the document is held gzipped (`gzip`): only those bytes are read."""
    etag: str
    position: int
    hot: bool
    gzip: bytes | None
    size: int


_COLUMNS = (
    "path, status_page_id, content_type, CASE WHEN gzip IS NULL THEN body ELSE ''::bytea END AS body, etag,"
    " position, hot, gzip, size FROM site_documents AS d"
)


async def read_hot(conn: asyncpg.Connection, *, after: int | None = None) -> list[StoredDocument]:
    """Every document every process keeps in memory, or those written past `after`."""
    query = f"SELECT {_COLUMNS} WHERE hot"
    rows = await (conn.fetch(query) if after is None else conn.fetch(query + " AND position > $1", after))
    return [StoredDocument(**dict(row)) for row in rows]


async def changed_cold(conn: asyncpg.Connection, after: int) -> list[str]:
    """The paths of documents not kept in memory that were written past `after` (cached copies are stale)."""
    rows = await conn.fetch("SELECT path FROM site_documents WHERE NOT hot AND position > $1", after)
    return [row["path"] for row in rows]


async def read_one(conn: asyncpg.Connection, path: str) -> StoredDocument | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} WHERE path = $1", path)
    return StoredDocument(**dict(row)) if row is not None else None


async def site_position(conn: asyncpg.Connection) -> int:
    position = await conn.fetchval("SELECT position FROM beacon_projection_checkpoints WHERE name = $1", KEY)
    return int(position or 0)
