"""The public site as of an instant (docs/architecture.md#time-travel): one document of a page as the
renderer in force produces it for the log recorded up to the instant, at that instant — the same
`evolve` and the same render functions the `public_site` projection uses, folded in memory.

The clock is the instant's own local midnight (what the scheduler's tick would have rendered by then), so
a read of a past instant equals what was served then, except within one tick interval after a midnight.
The fold reads only what can change the page (docs/adr/0004-time-travel-index-and-snapshots.md): its own
stream, the streams of the components it ever placed (named by its own structure events), the streams of
its notices (`site_history` knows them; the log past that projection's checkpoint is searched for newer
ones) and the public base URL (one probe of its stream) — each through the log's
`(originator_id, notification_id)` index, so its cost grows with the page's events, not with the log.
`fold_page_full` is the old fold of the whole log: the reference the tests compare against, and the
bench's baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from domain.status_page import StatusPage
from domain.structure import component_ids, parse_structure
from infra.event_store import PostgresEventStore, RecordedEvent
from infra.ids import ulid_to_uuid
from projections import feeds, site_history
from projections.public_base_url import base_url_at
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
    Scope,
    day_start,
    feed_entries,
    history_view,
    in_scope,
    index_view,
    json_documents,
    leaves,
    month_counts,
    page_view,
    rows_of,
    scopes,
)
from projections.public_site_state import Dirty, SiteNotice, SitePage, SiteState, evolve, local_month
from projections.public_site_view import NoticePageView
from projections.widget_history import _EVENT_COLUMNS, _recorded, position_at

PAGE_SIZE = 1000

_NOTICE_STREAMS = ("status_page_incident", "status_page_maintenance")


async def fold_page_full(
    conn: asyncpg.Connection, store: PostgresEventStore, page_id: str, as_of: datetime
) -> SiteState:
    """The projection's state of one page (and everything it shows) from the whole log recorded up to
    `as_of`, every event read and most skipped: what `fold_page` must equal."""
    state = SiteState()
    dirty: Dirty = {}
    page_stream = ulid_to_uuid(page_id)
    others: set[object] = set()
    after = 0
    while batch := await store.read_all(after, PAGE_SIZE, through=as_of, conn=conn):
        after = batch[-1].position
        for record in batch:
            if record.stream_id in others:
                continue
            if record.stream_type == "status_page" and record.stream_id != page_stream:
                continue
            event = record.decode()
            if record.stream_type in _NOTICE_STREAMS and record.version == 1:
                if getattr(event, "status_page_id", None) != page_id:
                    others.add(record.stream_id)
                    continue
            evolve(state, event, record.position, record.recorded_at, dirty, record.topic)
        if len(batch) < PAGE_SIZE:
            break
    return state


@dataclass(frozen=True)
class AsOfCost:
    """What one indexed read folded, for tests and the bench: it must not grow with the log."""

    position: int
    folded: int
    """Events of the page's streams folded."""
    tail: int
    """Events past `site_history`'s checkpoint searched for the page's newer notices (normally 0)."""


async def _stream_events(conn: asyncpg.Connection, streams: list[Any], position: int) -> list[RecordedEvent]:
    rows = await conn.fetch(
        f"SELECT {_EVENT_COLUMNS} FROM beacon_events AS e WHERE e.originator_id = ANY($1::uuid[])"
        " AND e.notification_id <= $2 ORDER BY e.notification_id",
        streams,
        position,
    )
    return [_recorded(row) for row in rows]


async def fold_page(conn: asyncpg.Connection, page_id: str, as_of: datetime) -> tuple[SiteState, AsOfCost]:
    """`fold_page_full`'s state (the same fold step, over the same events that matter to the page) at the
    cost of the page's own events, in one read-only repeatable-read transaction so the checkpoint, the
    notices' index and the log agree."""
    state = SiteState()
    dirty: Dirty = {}
    page_stream = ulid_to_uuid(page_id)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        position = await position_at(conn, as_of)
        checkpoint = int(
            await conn.fetchval("SELECT position FROM beacon_projection_checkpoints WHERE name = $1", site_history.KEY)
            or 0
        )
        indexed_to = min(position, checkpoint)
        notices: list[Any] = [
            row["stream_id"]
            for row in await conn.fetch(
                "SELECT stream_id FROM site_history_notices WHERE status_page_id = $1 AND position <= $2",
                page_id,
                indexed_to,
            )
        ]
        tail = 0
        after = indexed_to
        while after < position:  # notices filed past the index's checkpoint (normally none)
            rows = await conn.fetch(
                f"SELECT {_EVENT_COLUMNS} FROM beacon_events AS e WHERE e.notification_id > $1"
                " AND e.notification_id <= $2 AND e.originator_version = 1 AND e.stream_type = ANY($4::text[])"
                " ORDER BY e.notification_id LIMIT $3",
                after,
                position,
                PAGE_SIZE,
                list(site_history.NOTICE_STREAMS),
            )
            if not rows:
                break
            for row in rows:
                record = _recorded(row)
                if site_history.page_of_first(record) == page_id:
                    notices.append(record.stream_id)
            tail += len(rows)
            after = rows[-1]["position"]
        placed: set[str] = set()
        for record in await _stream_events(conn, [page_stream], position):
            event = record.decode()
            if isinstance(event, StatusPage.StructureReplaced):
                placed.update(component_ids(parse_structure(event.items)))
        streams = [page_stream, *notices, *(ulid_to_uuid(component_id) for component_id in sorted(placed))]
        records = await _stream_events(conn, streams, position)
        for record in records:
            evolve(state, record.decode(), record.position, record.recorded_at, dirty, record.topic)
        state.base_url = await base_url_at(conn, position)
    return state, AsOfCost(position, len(records), tail)


def _core(page: SitePage, notices: list[SiteNotice]) -> list[SiteNotice]:
    """What `public_site._core_notices` selects, from notices in memory."""
    recent_from = page.instant - RECENT
    chosen = {n.id for n in notices if n.open or n.updated_at >= recent_from}
    for kind in ("incident", "maintenance"):
        of_kind = sorted((n for n in notices if n.kind == kind), key=lambda n: (n.created_at, n.id), reverse=True)
        chosen |= {n.id for n in of_kind[:LIST_SIZE]}
    chosen |= {n.id for n in sorted(notices, key=lambda n: (n.updated_at, n.id), reverse=True)[:FEED_SIZE]}
    return sorted((n for n in notices if n.id in chosen), key=lambda n: n.id)


def render_path(state: SiteState, page_id: str, path: str) -> Document | None:
    """The document at `path` (on Beacon's own host) of the folded page, or None."""
    page = state.pages.get(page_id)
    if page is None or not page.enabled:
        return None
    notices = sorted(
        (n for n in state.notices.values() if n is not None and n.status_page_id == page_id), key=lambda n: n.id
    )
    components = state.components
    for scope in sorted(scopes(page, state.base_url), key=lambda s: -len(s.prefix)):
        if path != scope.prefix and not path.startswith(scope.prefix + "/"):
            continue
        rest = path.removeprefix(scope.prefix)
        rows = rows_of(scope, components)
        visible = {facts.id for facts in leaves(rows)}
        own = in_scope(scope, notices, visible)
        if scope.sub_page is not None:  # a page of its own: its lists and months from its own notices
            scope = replace(scope, months=month_counts(own, page.zone))
        inputs = CoreInputs(scope, rows, _core(page, own), components)
        return _render_one(scope, inputs, rest, own)
    return None


def _render_one(scope: Scope, inputs: CoreInputs, rest: str, notices: list[SiteNotice]) -> Document | None:
    path = scope.prefix + rest
    if rest == "":
        return Document(path, HTML, render_index(index_view(inputs)), True)
    if rest.startswith("/api/v2/") and rest.endswith(".json"):
        body = json_documents(inputs).get(rest.removeprefix("/api/v2/").removesuffix(".json"))
        return Document(path, JSON, body, True) if body is not None else None
    if rest in ("/history.atom", "/feed.atom", "/history.rss", "/feed.rss"):
        entries = feed_entries(inputs)
        page = scope.page
        if rest.endswith(".atom"):
            body = feeds.atom(
                page_id=scope.id,
                title=scope.name,
                base_url=scope.url,
                prefix=scope.prefix,
                updated=page.updated_at,
                entries=entries,
            )
            return Document(path, ATOM, body, True)
        body = feeds.rss(
            title=scope.name, base_url=scope.url, prefix=scope.prefix, updated=page.updated_at, entries=entries
        )
        return Document(path, RSS, body, True)
    for kind, folder in (("incident", "/incidents/"), ("maintenance", "/maintenances/")):
        if rest.startswith(folder):
            notice = next((n for n in notices if n.id == rest.removeprefix(folder) and n.kind == kind), None)
            if notice is None:
                return None
            view = NoticePageView(page=page_view(scope), notice=inputs.views(notice))
            return Document(path, HTML, render_notice(view), notice.open)
    zone = scope.page.zone
    if rest == "/history":
        latest = set(sorted(scope.month_counts, reverse=True)[:HISTORY_MONTHS])
        shown = [n for n in notices if local_month(n.begun_at, zone) in latest]
        return Document(path, HTML, render_history(history_view(scope, None, shown, inputs.views)), False)
    if rest.startswith("/history/"):
        month = rest.removeprefix("/history/")
        if month not in scope.month_counts:
            return None
        shown = [n for n in notices if local_month(n.begun_at, zone) == month]
        return Document(path, HTML, render_history(history_view(scope, month, shown, inputs.views)), False)
    return None


async def document_as_of(
    conn: asyncpg.Connection, store: PostgresEventStore, path: str, as_of: datetime, *, full: bool = False
) -> Document | None:
    """The public site's document at `path` (Beacon's own host) as of `as_of`; None when there was none.
    `full`: by the old fold of the whole log (`fold_page_full`), the reference and the bench's baseline."""
    slug = path.split("/")[1] if path.startswith("/") else ""
    row = await conn.fetchrow("SELECT id FROM site_pages WHERE slug = $1", slug)
    if row is None:
        return None
    page_id: str = row["id"]
    state = await fold_page_full(conn, store, page_id, as_of) if full else (await fold_page(conn, page_id, as_of))[0]
    page = state.pages.get(page_id)
    if page is not None:
        page.clock = day_start(as_of.astimezone(page.zone).date(), page.zone)
    return render_path(state, page_id, path)
