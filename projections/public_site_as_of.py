"""The public site as of an instant (docs/architecture.md#time-travel): one document of a page as the
renderer in force produces it for the log recorded up to the instant, at that instant — the same
`evolve` and the same render functions the `public_site` projection uses, folded in memory.

The clock is the instant's own local midnight (what the scheduler's tick would have rendered by then), so
a read of a past instant equals what was served then, except within one tick interval after a midnight.
The fold reads the log up to the instant and keeps only what can change the page (its own stream, every
component, the public base URL, the notices filed on it): its cost grows with the log, not only with the
page's history, unlike the widget's indexed `as_of`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import asyncpg

from infra.event_store import PostgresEventStore
from infra.ids import ulid_to_uuid
from projections import feeds
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

PAGE_SIZE = 1000

_NOTICE_STREAMS = ("status_page_incident", "status_page_maintenance")


async def fold_page(conn: asyncpg.Connection, store: PostgresEventStore, page_id: str, as_of: datetime) -> SiteState:
    """The projection's state of one page (and everything it shows) from the log recorded up to `as_of`."""
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
    conn: asyncpg.Connection, store: PostgresEventStore, path: str, as_of: datetime
) -> Document | None:
    """The public site's document at `path` (Beacon's own host) as of `as_of`; None when there was none."""
    slug = path.split("/")[1] if path.startswith("/") else ""
    row = await conn.fetchrow("SELECT id FROM site_pages WHERE slug = $1", slug)
    if row is None:
        return None
    page_id: str = row["id"]
    state = await fold_page(conn, store, page_id, as_of)
    page = state.pages.get(page_id)
    if page is not None:
        page.clock = day_start(as_of.astimezone(page.zone).date(), page.zone)
    return render_path(state, page_id, path)
