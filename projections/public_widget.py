"""The public widget (docs/architecture.md#widget, and why it is bytes:
docs/architecture.md#5-the-widget-is-bytes): one precomputed JSON document per status page and per sub-page,
stored as bytes with a strong ETag, so the request path only hands out bytes.

The projection keeps what it needs to render in its own tables (a state row per page, per open notice
and per component name), folds each batch of events into that state with the pure `evolve`, renders
every document the batch touched once with the pure `render_documents`, writes the changed ones to
`widget_documents` and `NOTIFY`s `beacon_widget` in the runner's transaction.

Decisions the widget's contract leaves open:

- `page_url` is the page's `public_url`; incident links are `{public_url}/incidents/{id}`, maintenance
  links `{public_url}/maintenances/{id}`, a sub-page's `page_url` is `{public_url}/{sub_page_slug}`. A page
  without `public_url` renders these as `null` (the keys stay): the document is then a function of the
  log alone, so a rebuild anywhere is byte-identical and no setting can leave stale links behind.
- `affected_components` lists every visible component the notice has named, in the order first named,
  with its current status (operational included); `current_worst_impact` is the worst of those.
- The page's own document shows every ongoing notice of the page (one touching only hidden components
  shows with no components); a sub-page's document shows only notices touching a visible component of
  that sub-page, listing only those components. A sub-page document's `page_title` is the sub-page name.
- `started_at` of an in-progress window is when it entered `maintenance_in_progress`; `starts_at`/`ends_at`
  and `scheduled_end_at` are the window's planned times.
- Ties in the contract's orders are broken by id, so the bytes never depend on load order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import asyncpg
import msgspec
from eventsourcing.domain import Aggregate

from domain.component import Component
from domain.incident import Incident, IncidentComponentStatus, IncidentStatus
from domain.maintenance import Maintenance, MaintenanceStatus
from domain.status_page import StatusPage
from domain.structure import component_ids, component_placements, parse_structure, sub_pages
from infra.clock import format_timestamp
from infra.event_store import RecordedEvent
from infra.ids import ulid_to_uuid, uuid_to_ulid

WIDGET_CHANNEL = "beacon_widget"
NAME = "public_widget"
OPERATIONAL = "operational"
DEFAULT_WORST_IMPACT = IncidentComponentStatus.DEGRADED_PERFORMANCE.value
_SEVERITY = {status.value: status.severity for status in IncidentComponentStatus}

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


# State the projection keeps (stored as msgspec JSON in its tables).


class PageState(msgspec.Struct):
    """What the widget needs of a status page: title, slug, links, the widget switch and the structure."""

    id: str
    name: str
    slug: str
    public_url: str | None
    widget_enabled: bool
    items: list[dict[str, Any]] = msgspec.field(default_factory=list)


class NoticeState(msgspec.Struct):
    """An ongoing incident or a scheduled / in-progress maintenance window, as the widget shows it."""

    id: str
    kind: str
    """`incident` or `maintenance`."""
    status_page_id: str
    name: str
    status: str
    last_update_at: datetime
    last_update_message: str
    component_statuses: dict[str, str]
    """Current status of every component the notice has named, in the order first named."""
    start_at: datetime | None = None
    end_at: datetime | None = None
    started_at: datetime | None = None


@dataclass
class WidgetState:
    """The part of the projection's state a batch works on: the pure `evolve` folds events into it.
    `notices[id] is None` means the notice left the widget (resolved, completed or deleted)."""

    pages: dict[str, PageState] = field(default_factory=dict)
    notices: dict[str, NoticeState | None] = field(default_factory=dict)
    component_names: dict[str, str] = field(default_factory=dict)


# The wire document (docs/architecture.md#widget); field order is the wire's key order.


class AffectedComponent(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    name: str
    group_name: str | None = None
    current_status: str


class OngoingIncident(msgspec.Struct):
    id: str
    name: str
    status: str
    url: str | None
    last_update_at: str
    last_update_message: str
    current_worst_impact: str
    affected_components: list[AffectedComponent]


class InProgressMaintenance(msgspec.Struct):
    id: str
    name: str
    status: str
    url: str | None
    last_update_at: str
    last_update_message: str
    affected_components: list[AffectedComponent]
    started_at: str
    scheduled_end_at: str


class ScheduledMaintenance(msgspec.Struct):
    id: str
    name: str
    status: str
    url: str | None
    last_update_at: str
    last_update_message: str
    affected_components: list[AffectedComponent]
    starts_at: str
    ends_at: str


class WidgetDocument(msgspec.Struct):
    page_title: str
    page_url: str | None
    ongoing_incidents: list[OngoingIncident]
    in_progress_maintenances: list[InProgressMaintenance]
    scheduled_maintenances: list[ScheduledMaintenance]


_ENCODER = msgspec.json.Encoder()


# Evolve: pure, one event at a time. Returns the ids of the pages whose documents may have changed.


def evolve(state: WidgetState, event: Aggregate.Event) -> set[str]:
    stream_id = uuid_to_ulid(event.originator_id)
    if isinstance(event, StatusPage.Event):
        return _evolve_page(state, stream_id, event)
    if isinstance(event, Component.Event):
        if isinstance(event, Component.Created | Component.Updated):
            state.component_names[stream_id] = event.name
            return {page.id for page in state.pages.values() if stream_id in component_ids(parse_structure(page.items))}
        return set()
    if isinstance(event, Incident.Event | Maintenance.Event):
        return _evolve_notice(state, stream_id, event)
    return set()


def _evolve_page(state: WidgetState, page_id: str, event: Aggregate.Event) -> set[str]:
    if isinstance(event, StatusPage.Created):
        state.pages[page_id] = PageState(
            id=page_id,
            name=event.name,
            slug=event.slug,
            public_url=event.public_url,
            widget_enabled=event.widget_api_enabled,
        )
        return {page_id}
    page = state.pages.get(page_id)
    if page is None:
        return set()
    if isinstance(event, StatusPage.Updated):
        page.name = event.name
        page.public_url = event.public_url
        page.widget_enabled = event.widget_api_enabled
    elif isinstance(event, StatusPage.StructureReplaced):
        page.items = event.items
    else:
        return set()
    return {page_id}


def _evolve_notice(state: WidgetState, notice_id: str, event: Aggregate.Event) -> set[str]:
    if isinstance(event, Incident.Declared):
        notice: NoticeState | None = NoticeState(
            id=notice_id,
            kind="incident",
            status_page_id=event.status_page_id,
            name=event.name,
            status=event.incident_status,
            last_update_at=event.timestamp,
            last_update_message=event.message,
            component_statuses=_statuses(event.component_statuses),
        )
        state.notices[notice_id] = None if event.incident_status == IncidentStatus.RESOLVED else notice
        return {event.status_page_id}
    if isinstance(event, Maintenance.Scheduled):
        notice = NoticeState(
            id=notice_id,
            kind="maintenance",
            status_page_id=event.status_page_id,
            name=event.name,
            status=event.maintenance_status,
            last_update_at=event.timestamp,
            last_update_message=event.message,
            component_statuses=_statuses(event.component_statuses),
            start_at=event.start_at,
            end_at=event.end_at,
            started_at=event.timestamp if event.maintenance_status == MaintenanceStatus.IN_PROGRESS else None,
        )
        state.notices[notice_id] = None if event.maintenance_status == MaintenanceStatus.COMPLETE else notice
        return {event.status_page_id}
    notice = state.notices.get(notice_id)
    if notice is None:
        return set()  # never shown (retrospective) or already left the widget
    if isinstance(event, Incident.Renamed):
        notice.name = event.name
    elif isinstance(event, Maintenance.Edited):
        notice.name = event.name
        notice.start_at = event.start_at
        notice.end_at = event.end_at
    elif isinstance(event, Maintenance.Deleted):
        state.notices[notice_id] = None
    elif isinstance(event, Incident.UpdatePublished):
        _apply_update(notice, event.incident_status, event)
        if event.incident_status == IncidentStatus.RESOLVED:
            state.notices[notice_id] = None
    elif isinstance(event, Maintenance.UpdatePublished | Maintenance.Started | Maintenance.Completed):
        status = event.maintenance_status
        if status == MaintenanceStatus.IN_PROGRESS and notice.status != MaintenanceStatus.IN_PROGRESS:
            notice.started_at = event.timestamp
        elif status != MaintenanceStatus.IN_PROGRESS:
            notice.started_at = None
        _apply_update(notice, status, event)
        if status == MaintenanceStatus.COMPLETE:
            state.notices[notice_id] = None
    else:
        return set()
    return {notice.status_page_id}


def _apply_update(notice: NoticeState, status: str, event: Any) -> None:
    notice.status = status
    notice.last_update_at = event.timestamp
    notice.last_update_message = event.message
    notice.component_statuses.update(_statuses(event.component_statuses))


def _statuses(data: Iterable[Mapping[str, str]]) -> dict[str, str]:
    return {item["component_id"]: item["component_status"] for item in data}


# Render: pure. Every document of one page, keyed by sub-page slug ('' is the page itself).


def render_documents(
    page: PageState, notices: Iterable[NoticeState], component_names: Mapping[str, str]
) -> dict[str, bytes]:
    """Every document of `page`; none when its widget is disabled (the routes then answer 404)."""
    if not page.widget_enabled:
        return {}
    on_page = [notice for notice in notices if notice.status_page_id == page.id]
    structure = parse_structure(page.items)
    documents = {"": render(page, on_page, component_names)}
    for sub_page in sub_pages(structure):
        assert sub_page.slug is not None  # the domain resolves every sub-page's slug
        documents[sub_page.slug] = render(page, on_page, component_names, sub_page_id=sub_page.id)
    return documents


def render(
    page: PageState,
    notices: Iterable[NoticeState],
    component_names: Mapping[str, str],
    *,
    sub_page_id: str | None = None,
) -> bytes:
    """One document's bytes: the page's, or with `sub_page_id` that sub-page's."""
    placements = component_placements(parse_structure(page.items))
    base = page.public_url.rstrip("/") if page.public_url else None
    title, page_url = page.name, base
    if sub_page_id is not None:
        sub_page = next(item for item in sub_pages(parse_structure(page.items)) if item.id == sub_page_id)
        title = sub_page.name
        page_url = f"{base}/{sub_page.slug}" if base else None

    def affected(notice: NoticeState) -> list[AffectedComponent]:
        shown = []
        for component_id, status in notice.component_statuses.items():
            placement = placements.get(component_id)
            if placement is None or placement.hidden:
                continue
            if sub_page_id is not None and sub_page_id not in placement.sub_page_ids:
                continue
            shown.append(
                AffectedComponent(
                    id=component_id,
                    name=component_names.get(component_id, ""),
                    group_name=placement.group_name,
                    current_status=status,
                )
            )
        return shown

    incidents: list[OngoingIncident] = []
    in_progress: list[tuple[datetime, str, InProgressMaintenance]] = []
    scheduled: list[tuple[datetime, str, ScheduledMaintenance]] = []
    ordered = sorted(notices, key=lambda n: (n.last_update_at, n.id), reverse=True)
    for notice in ordered:
        components = affected(notice)
        if sub_page_id is not None and not components:
            continue
        path = "incidents" if notice.kind == "incident" else "maintenances"
        url = f"{base}/{path}/{notice.id}" if base else None
        last_update_at = format_timestamp(notice.last_update_at)
        if notice.kind == "incident":
            incidents.append(
                OngoingIncident(
                    id=notice.id,
                    name=notice.name,
                    status=notice.status,
                    url=url,
                    last_update_at=last_update_at,
                    last_update_message=notice.last_update_message,
                    current_worst_impact=worst_impact(c.current_status for c in components),
                    affected_components=components,
                )
            )
            continue
        assert notice.start_at is not None and notice.end_at is not None
        if notice.status == MaintenanceStatus.IN_PROGRESS:
            started_at = notice.started_at or notice.start_at
            in_progress.append(
                (
                    started_at,
                    notice.id,
                    InProgressMaintenance(
                        id=notice.id,
                        name=notice.name,
                        status=notice.status,
                        url=url,
                        last_update_at=last_update_at,
                        last_update_message=notice.last_update_message,
                        affected_components=components,
                        started_at=format_timestamp(started_at),
                        scheduled_end_at=format_timestamp(notice.end_at),
                    ),
                )
            )
        else:
            scheduled.append(
                (
                    notice.start_at,
                    notice.id,
                    ScheduledMaintenance(
                        id=notice.id,
                        name=notice.name,
                        status=notice.status,
                        url=url,
                        last_update_at=last_update_at,
                        last_update_message=notice.last_update_message,
                        affected_components=components,
                        starts_at=format_timestamp(notice.start_at),
                        ends_at=format_timestamp(notice.end_at),
                    ),
                )
            )
    document = WidgetDocument(
        page_title=title,
        page_url=page_url,
        ongoing_incidents=incidents,
        in_progress_maintenances=[item for _, _, item in sorted(in_progress, key=lambda t: (t[0], t[1]))],
        scheduled_maintenances=[item for _, _, item in sorted(scheduled, key=lambda t: (t[0], t[1]))],
    )
    return _ENCODER.encode(document)


def worst_impact(statuses: Iterable[str]) -> str:
    """The most severe current status among the shown components; degraded when none is impacted."""
    impacted = [status for status in statuses if status in _SEVERITY and status != OPERATIONAL]
    return max(impacted, key=_SEVERITY.__getitem__, default=DEFAULT_WORST_IMPACT)


def etag_of(body: bytes) -> str:
    """A strong ETag: the quoted hash of the exact bytes, so equal documents always share it."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


# The projection: load the state a batch needs, evolve, write back, render, store, notify.


_PAGE_DECODER = msgspec.json.Decoder(PageState)
_NOTICE_DECODER = msgspec.json.Decoder(NoticeState)


class PublicWidget:
    """Projection `public_widget` (see the module docstring)."""

    name = NAME
    writes_wait = True  # read-your-writes covers the widget of the process that took the write
    tables: tuple[str, ...] = ("widget_pages", "widget_notices", "widget_components", "widget_documents")
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
        changed, deleted = await _store_documents(conn, state, touched_pages)
        # Only the live tables tell the caches; a rebuild into a scratch schema must not move them.
        await conn.execute(
            "SELECT pg_notify($1, $2) WHERE current_schema() = 'public'",
            WIDGET_CHANNEL,
            f"{events[-1].position}:{changed}:{deleted}",
        )


async def _load_state(conn: asyncpg.Connection, events: Sequence[Aggregate.Event]) -> WidgetState:
    """The rows the batch's events can change: their pages, notices and the pages placing their components."""
    page_ids = {uuid_to_ulid(e.originator_id) for e in events if isinstance(e, StatusPage.Event)}
    notice_ids = {uuid_to_ulid(e.originator_id) for e in events if isinstance(e, Incident.Event | Maintenance.Event)}
    component_ids_ = [uuid_to_ulid(e.originator_id) for e in events if isinstance(e, Component.Event)]
    state = WidgetState()
    rows = await conn.fetch(
        "SELECT state FROM widget_pages WHERE id = ANY($1::text[]) OR component_ids && $2::text[]",
        list(page_ids),
        component_ids_,
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
        for sub_slug, body in render_documents(page, notices[page_id], names).items():
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
    position = await conn.fetchval("SELECT position FROM beacon_projection_checkpoints WHERE name = $1", NAME)
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


def fold_record(state: WidgetState, record: RecordedEvent, status_page_id: str, skipped: set[UUID]) -> None:
    """One step of an `as_of` fold of one page: evolve `state` with `record` unless it cannot change the
    page's documents. Notices of other pages, and notices that left the widget, are dropped from the state
    and their streams added to `skipped`; `evolve` never reads them for this page. The per-page history
    (projections/widget_history.py) folds with this same step, so both paths agree by construction."""
    if record.stream_id in skipped:
        return
    if record.stream_type == StatusPage.STREAM_TYPE and record.stream_id != ulid_to_uuid(status_page_id):
        return
    event = record.decode()
    evolve(state, event)
    if isinstance(event, Incident.Event | Maintenance.Event):
        notice_id = uuid_to_ulid(record.stream_id)
        notice = state.notices.get(notice_id)
        if notice is None or notice.status_page_id != status_page_id:
            state.notices.pop(notice_id, None)
            skipped.add(record.stream_id)


def documents_of(
    state: WidgetState, status_page_id: str, component_names: Mapping[str, str] | None = None
) -> dict[str, bytes] | None:
    """The page's documents from a folded state (None when the page does not exist in it). `component_names`
    replaces the state's names when the caller read them otherwise (as of the same instant)."""
    page = state.pages.get(status_page_id)
    if page is None:
        return None
    notices = [notice for notice in state.notices.values() if notice is not None]
    return render_documents(page, notices, state.component_names if component_names is None else component_names)
