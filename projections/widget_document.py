"""The public widget without a database (docs/architecture.md#widget, and why it is bytes:
docs/architecture.md#5-the-widget-is-bytes): the state the projection keeps, how events change it, how a
page's documents are rendered from it, their ETags and their public paths. No SQL and no I/O: the
projection (projections/public_widget.py) loads and stores the state, time travel
(projections/widget_history.py) folds it from the log, and both call these functions, so every path renders
the same bytes.

Decisions the widget's contract leaves open:

- `page_url` is the page's canonical URL (domain/canonical_url.py: its `public_url`, else its custom
  domain, else its slug under the public base URL recorded in the log); incident links are
  `{page_url}/incidents/{id}`, maintenance links `{page_url}/maintenances/{id}`, a sub-page's `page_url`
  is `{page_url}/{sub_page_slug}`. A page with none of the three renders these as `null` (the keys stay).
  The base URL is folded from its event like everything else, never read from the environment, so the
  document is a function of the log alone and a rebuild anywhere is byte-identical.
- `affected_components` lists every visible component the notice has named, in the order first named,
  with its current status (operational included); `current_worst_impact` is the worst of those.
- The page's own document shows every ongoing notice of the page (one touching only hidden components
  shows with no components); a sub-page's document shows only notices touching a visible component of
  that sub-page, listing only those components. A sub-page document's `page_title` is the sub-page name.
- A notice is on the widget from its creation until the domain calls it closed (its kind's
  `CLOSED_STATUS`: resolved, maintenance complete) or it is deleted; `started_at` of an in-progress window
  is when it entered `maintenance_in_progress`, by the domain's own rule (`started_at_after`);
  `starts_at`/`ends_at` and `scheduled_end_at` are the window's planned times.
- Ties in the contract's orders are broken by id, so the bytes never depend on load order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.domain import Aggregate

from domain.canonical_url import canonical_url, sub_page_url
from domain.component import Component
from domain.incident import Incident, IncidentComponentStatus
from domain.maintenance import Maintenance, MaintenanceStatus, started_at_after
from domain.public_base_url import PublicBaseUrlConfigured
from domain.status_page import StatusPage
from domain.structure import component_ids, component_placements, parse_structure, sub_pages
from infra.clock import format_timestamp
from infra.event_store import RecordedEvent
from infra.ids import ulid_to_uuid, uuid_to_ulid

OPERATIONAL = "operational"
DEFAULT_WORST_IMPACT = IncidentComponentStatus.DEGRADED_PERFORMANCE.value
_SEVERITY = {status.value: status.severity for status in IncidentComponentStatus}

CONTENT_TYPE = "application/json"
PATH_SUFFIX = "/api/v1/summary"


def widget_path(page_slug: str, sub_page_slug: str = "") -> str:
    """The public path of a page's widget document, or of one of its sub-pages' ('' is the page's own)."""
    return f"/{page_slug}/{sub_page_slug}{PATH_SUFFIX}" if sub_page_slug else f"/{page_slug}{PATH_SUFFIX}"


# State the projection keeps (stored as msgspec JSON in its tables).


class PageState(msgspec.Struct):
    """What the widget needs of a status page: title, slug, links, the widget switch and the structure."""

    id: str
    name: str
    slug: str
    public_url: str | None
    widget_enabled: bool
    items: list[dict[str, Any]] = msgspec.field(default_factory=list)
    custom_domain: str | None = None


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
    """The part of the projection's state a batch works on; `evolve` folds events into it in place.
    `notices[id] is None` means the notice left the widget (closed or deleted)."""

    pages: dict[str, PageState] = field(default_factory=dict)
    notices: dict[str, NoticeState | None] = field(default_factory=dict)
    component_names: dict[str, str] = field(default_factory=dict)
    base_url: str | None = None
    """The public base URL of the last `PublicBaseUrlConfigured` folded (links of pages without a
    `public_url` or custom domain)."""
    _placed: dict[str, tuple[list[dict[str, Any]], frozenset[str]]] = field(default_factory=dict, repr=False)
    """A memo, not state: each page's structure (the very list) and the component ids it places, so a
    component event asks each page a set lookup instead of parsing every page's structure again (which
    made a batch's cost grow with the square of its size on a log of many pages)."""

    def pages_placing(self, component_id: str) -> set[str]:
        """The ids of the pages whose structure places the component."""
        found = set()
        for page in self.pages.values():
            memo = self._placed.get(page.id)
            if memo is None or memo[0] is not page.items:  # a new page, or its structure was replaced
                memo = self._placed[page.id] = (page.items, frozenset(component_ids(parse_structure(page.items))))
            if component_id in memo[1]:
                found.add(page.id)
        return found


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


class _WindowEntry(msgspec.Struct):
    """The keys both kinds of window entry begin with; a subclass's own keys follow them on the wire."""

    id: str
    name: str
    status: str
    url: str | None
    last_update_at: str
    last_update_message: str
    affected_components: list[AffectedComponent]


class InProgressMaintenance(_WindowEntry):
    started_at: str
    scheduled_end_at: str


class ScheduledMaintenance(_WindowEntry):
    starts_at: str
    ends_at: str


class WidgetDocument(msgspec.Struct):
    page_title: str
    page_url: str | None
    ongoing_incidents: list[OngoingIncident]
    in_progress_maintenances: list[InProgressMaintenance]
    scheduled_maintenances: list[ScheduledMaintenance]


_ENCODER = msgspec.json.Encoder()


# Evolve: one event at a time, in place. Deterministic and without I/O, but not pure: it changes the state
# it is given (copying the state per event would cost every batch and every `as_of` fold), so a caller
# passes a state it owns. Returns the ids of the pages whose documents may have changed.


def evolve(state: WidgetState, event: Aggregate.Event) -> set[str]:
    stream_id = uuid_to_ulid(event.originator_id)
    if isinstance(event, StatusPage.Event):
        return _evolve_page(state, stream_id, event)
    if isinstance(event, Component.Event):
        if isinstance(event, Component.Created | Component.Updated):
            state.component_names[stream_id] = event.name
            return state.pages_placing(stream_id)
        return set()
    if isinstance(event, Incident.Event | Maintenance.Event):
        return _evolve_notice(state, stream_id, event)
    if isinstance(event, PublicBaseUrlConfigured):
        state.base_url = event.url
        return set(state.pages)  # every page's links may follow it (the caller loaded every page)
    return set()


def _evolve_page(state: WidgetState, page_id: str, event: Aggregate.Event) -> set[str]:
    if isinstance(event, StatusPage.Created):
        state.pages[page_id] = PageState(
            id=page_id,
            name=event.name,
            slug=event.slug,
            public_url=event.public_url,
            widget_enabled=event.widget_api_enabled,
            custom_domain=event.custom_domain,
        )
        return {page_id}
    page = state.pages.get(page_id)
    if page is None:
        return set()
    if isinstance(event, StatusPage.Updated):
        page.name = event.name
        page.public_url = event.public_url
        page.widget_enabled = event.widget_api_enabled
        page.custom_domain = event.custom_domain
    elif isinstance(event, StatusPage.StructureReplaced):
        page.items = event.items
    else:
        return set()
    return {page_id}


def _evolve_notice(state: WidgetState, notice_id: str, event: Aggregate.Event) -> set[str]:
    if isinstance(event, Incident.Declared | Maintenance.Scheduled):
        notice = _created(notice_id, event)
        state.notices[notice_id] = notice if _on_widget(notice) else None
        return {event.status_page_id}
    current = state.notices.get(notice_id)
    if current is None:
        return set()  # never shown (retrospective) or already left the widget
    if isinstance(event, Incident.Renamed):
        current.name = event.name
    elif isinstance(event, Maintenance.Edited):
        current.name = event.name
        current.start_at = event.start_at
        current.end_at = event.end_at
    elif isinstance(event, Maintenance.Deleted):
        state.notices[notice_id] = None
    elif isinstance(event, Incident.UpdatePublished):
        _apply_update(current, event.incident_status, event)
    elif isinstance(event, Maintenance.UpdatePublished | Maintenance.Started | Maintenance.Completed):
        _apply_update(current, event.maintenance_status, event)
    else:
        return set()
    if not _on_widget(current):
        state.notices[notice_id] = None
    return {current.status_page_id}


def _created(notice_id: str, event: Incident.Declared | Maintenance.Scheduled) -> NoticeState:
    """The notice its creating event made: its first update's facts come from `_apply_update`."""
    if isinstance(event, Incident.Declared):
        kind, status, start_at, end_at = "incident", event.incident_status, None, None
    else:
        kind, status, start_at, end_at = "maintenance", event.maintenance_status, event.start_at, event.end_at
    notice = NoticeState(
        id=notice_id,
        kind=kind,
        status_page_id=event.status_page_id,
        name=event.name,
        status="",
        last_update_at=event.timestamp,
        last_update_message="",
        component_statuses={},
        start_at=start_at,
        end_at=end_at,
    )
    _apply_update(notice, status, event)
    return notice


_CLOSED_STATUS = {"incident": Incident.CLOSED_STATUS, "maintenance": Maintenance.CLOSED_STATUS}


def _on_widget(notice: NoticeState) -> bool:
    """A notice leaves the widget once the domain calls it closed (its kind's `CLOSED_STATUS`)."""
    return notice.status != _CLOSED_STATUS[notice.kind]


def _apply_update(notice: NoticeState, status: str, event: Any) -> None:
    """One published update: the notice's status, its last update, its components' statuses, and for a
    window when it entered maintenance_in_progress (the domain's rule), kept only while it is in progress."""
    if notice.kind == "maintenance":
        started_at = started_at_after(notice.started_at, notice.status or None, status, event.timestamp)
        notice.started_at = started_at if status == MaintenanceStatus.IN_PROGRESS else None
    notice.status = status
    notice.last_update_at = event.timestamp
    notice.last_update_message = event.message
    notice.component_statuses.update(_statuses(event.component_statuses))


def _statuses(data: Iterable[Mapping[str, str]]) -> dict[str, str]:
    return {item["component_id"]: item["component_status"] for item in data}


# Render: pure (bytes from state alone). Every document of one page, keyed by sub-page slug ('' is the page itself).


def render_documents(
    page: PageState,
    notices: Iterable[NoticeState],
    component_names: Mapping[str, str],
    base_url: str | None = None,
) -> dict[str, bytes]:
    """Every document of `page`; none when its widget is disabled (the routes then answer 404).
    `base_url` is the public base URL as of the state rendered (`WidgetState.base_url`)."""
    if not page.widget_enabled:
        return {}
    on_page = [notice for notice in notices if notice.status_page_id == page.id]
    structure = parse_structure(page.items)
    documents = {"": render(page, on_page, component_names, base_url=base_url)}
    for sub_page in sub_pages(structure):
        assert sub_page.slug is not None  # the domain resolves every sub-page's slug
        documents[sub_page.slug] = render(
            page, on_page, component_names, base_url=base_url, sub_page_id=sub_page.id
        )
    return documents


def render(
    page: PageState,
    notices: Iterable[NoticeState],
    component_names: Mapping[str, str],
    *,
    base_url: str | None = None,
    sub_page_id: str | None = None,
) -> bytes:
    """One document's bytes: the page's, or with `sub_page_id` that sub-page's."""
    placements = component_placements(parse_structure(page.items))
    base = canonical_url(
        public_url=page.public_url, custom_domain=page.custom_domain, base_url=base_url, slug=page.slug
    )
    title, page_url = page.name, base
    if sub_page_id is not None:
        sub_page = next(item for item in sub_pages(parse_structure(page.items)) if item.id == sub_page_id)
        title = sub_page.name
        assert sub_page.slug is not None
        page_url = sub_page_url(base, sub_page.slug)

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
        # `_WindowEntry`'s keys, in the wire's order.
        shared = (notice.id, notice.name, notice.status, url, last_update_at, notice.last_update_message, components)
        ends = format_timestamp(notice.end_at)
        if notice.status == MaintenanceStatus.IN_PROGRESS:
            started_at = notice.started_at or notice.start_at
            entry = InProgressMaintenance(*shared, started_at=format_timestamp(started_at), scheduled_end_at=ends)
            in_progress.append((started_at, notice.id, entry))
        else:
            planned = ScheduledMaintenance(*shared, starts_at=format_timestamp(notice.start_at), ends_at=ends)
            scheduled.append((notice.start_at, notice.id, planned))
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


# Folding one page for time travel (docs/architecture.md#time-travel): `public_widget.documents_as_of` and
# the per-page history (projections/widget_history.py) fold with this same step, so both paths agree.


def fold_record(state: WidgetState, record: RecordedEvent, status_page_id: str, skipped: set[UUID]) -> None:
    """One step of an `as_of` fold of one page: evolve `state` with `record` unless it cannot change the
    page's documents. Notices of other pages, and notices that left the widget, are dropped from the state
    and their streams added to `skipped`; `evolve` never reads them for this page."""
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
    names = state.component_names if component_names is None else component_names
    return render_documents(page, notices, names, state.base_url)
