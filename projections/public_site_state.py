"""The public site's state and how events change it, without a database (docs/architecture.md#public-site):
the `public_site` projection (projections/public_site.py) loads and stores these structs and folds a batch
into them with `evolve`; projections/public_site_render.py renders documents from them.

`evolve` is deterministic and does no I/O; it changes the state it is given in place (as the widget's
does) and returns what the event dirtied — which documents of which page — so the projection re-renders
only those, and each document's `position` is the last event that dirtied it however the log was cut into
batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from eventsourcing.domain import Aggregate

from domain.component import Component
from domain.incident import Incident
from domain.maintenance import Maintenance
from domain.notice import statuses_from_data
from domain.status_page import DEFAULT_UPTIME_MODE, StatusPage
from domain.structure import component_ids, parse_structure
from infra.ids import uuid_to_ulid
from projections.statuspage import COMPONENT_SEVERITY

BASE_URL_TOPIC = "beacon.PublicBaseUrl.Configured"
"""The log's record of Beacon's public base URL (appended by `beacon serve`/`worker`)."""

ALL = "*"
"""A dirty key: every document of the page."""
CORE = "core"
"""A dirty key: the index, the JSON and the feeds of the page (and of its sub-pages)."""


def notice_key(notice_id: str) -> str:
    """A dirty key: one notice's own page."""
    return f"notice:{notice_id}"


def month_key(month: str) -> str:
    """A dirty key: one history month (`2026-03`) and the latest months' page."""
    return f"month:{month}"


class SiteUpdate(msgspec.Struct):
    """One published update of a notice."""

    id: str
    at: datetime
    message: str
    status: str
    statuses: list[tuple[str, str]]
    """(component id, status) as the update set them, in the order it named them."""
    notify: bool


class SiteNotice(msgspec.Struct):
    """An incident or a maintenance window with its whole timeline."""

    id: str
    kind: str
    status_page_id: str
    name: str
    status: str
    created_at: datetime
    updated_at: datetime
    """The latest of its updates and edits."""
    updates: list[SiteUpdate]
    start_at: datetime | None = None
    end_at: datetime | None = None
    statuses: dict[str, str] = msgspec.field(default_factory=dict)
    """The current status of every component its updates named, in the order first named."""

    @property
    def open(self) -> bool:
        return self.status not in ("resolved", "maintenance_complete")

    @property
    def begun_at(self) -> datetime:
        """The instant the notice is filed under by day and month: a window's planned start, an incident's
        first update."""
        return self.start_at if self.kind == "maintenance" and self.start_at is not None else self.created_at


class SitePage(msgspec.Struct):
    """What the site needs of a status page besides its notices and the components' names."""

    id: str
    name: str
    slug: str
    description: str | None
    public_url: str | None
    created_at: datetime
    updated_at: datetime
    """The `recorded_at` of the last event that changed the page's documents (`page.updated_at`)."""
    enabled: bool = True
    """`public_site_enabled`: without it the page has no public document."""
    time_zone: str = "UTC"
    custom_domain: str | None = None
    uptime_mode: str = DEFAULT_UPTIME_MODE
    items: list[dict[str, Any]] = msgspec.field(default_factory=list)
    statuses: dict[str, str] = msgspec.field(default_factory=dict)
    """Each placed component's page status (worst over open notices), when not operational."""
    status_changed: dict[str, datetime] = msgspec.field(default_factory=dict)
    """When each component's page status last changed."""
    groups_since: dict[str, datetime] = msgspec.field(default_factory=dict)
    """When each group was first placed (its `created_at`)."""
    impact_since: dict[str, datetime] = msgspec.field(default_factory=dict)
    """Each component's earliest incident impact on this page (its data may begin before its creation)."""
    months: dict[str, int] = msgspec.field(default_factory=dict)
    """Notices begun per local month (`2026-03`), for the history's navigation."""
    clock: datetime | None = None
    """The local midnight the scheduled tick last rendered the page at (the bars' day), None before."""

    @property
    def zone(self) -> ZoneInfo:
        return zone_of(self.time_zone)

    @property
    def instant(self) -> datetime:
        """The instant the clock-dependent parts (the 90-day bars, uptime) are rendered at: the last event
        that changed the page, or the last midnight the tick rendered, whichever is later — never the wall
        clock, so a rebuild renders the same bytes."""
        return max(self.updated_at, self.clock) if self.clock is not None else self.updated_at


class SiteComponent(msgspec.Struct):
    id: str
    name: str
    description: str | None
    created_at: datetime


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_month(instant: datetime, zone: ZoneInfo) -> str:
    return instant.astimezone(zone).strftime("%Y-%m")


@dataclass
class SiteState:
    """The part of the projection's state a batch works on."""

    pages: dict[str, SitePage] = field(default_factory=dict)
    notices: dict[str, SiteNotice | None] = field(default_factory=dict)
    """`None`: deleted."""
    components: dict[str, SiteComponent] = field(default_factory=dict)
    base_url: str | None = None
    base_url_changed: bool = False

    _by_page: tuple[int, dict[str, list[SiteNotice]]] = field(default=(-1, {}), repr=False, compare=False)
    """`notices` by page, as of `len(notices)` (a notice is only ever added, or set to None, never moved)."""

    def open_notices(self, page_id: str) -> Iterator[SiteNotice]:
        size, by_page = self._by_page
        if size < 0:
            size, by_page = 0, {}
        if size != len(self.notices):
            for notice in islice(self.notices.values(), size, None):  # only the ones added since
                if notice is not None:
                    by_page.setdefault(notice.status_page_id, []).append(notice)
            self._by_page = (len(self.notices), by_page)
        for notice in by_page.get(page_id, ()):
            if notice.open and self.notices.get(notice.id) is notice:
                yield notice


Dirty = dict[str, dict[str, int]]
"""Page id → dirty key → the position of the last event that dirtied it."""


def mark(dirty: Dirty, page_id: str, position: int, *keys: str) -> None:
    page = dirty.setdefault(page_id, {})
    for key in keys:
        page[key] = max(page.get(key, 0), position)


def evolve(
    state: SiteState, event: Aggregate.Event, position: int, recorded_at: datetime, dirty: Dirty, topic: str = ""
) -> None:
    """Fold one event into `state` and mark in `dirty` what it changed."""
    if topic == BASE_URL_TOPIC:
        state.base_url = getattr(event, "url", None)
        state.base_url_changed = True
        return
    stream_id = uuid_to_ulid(event.originator_id)
    if isinstance(event, StatusPage.Event):
        _evolve_page(state, stream_id, event, position, recorded_at, dirty)
    elif isinstance(event, Component.Created | Component.Updated):
        created = state.components.get(stream_id)
        state.components[stream_id] = SiteComponent(
            id=stream_id,
            name=event.name,
            description=event.description,
            created_at=created.created_at if created is not None else event.timestamp,
        )
        # The pages placing it show its name in their index and JSON; the notices naming it are marked by
        # the projection, which knows them (`PublicSite.apply`).
        for page in state.pages.values():
            if stream_id in component_ids(parse_structure(page.items)):
                page.updated_at = recorded_at
                mark(dirty, page.id, position, CORE)
    elif isinstance(event, Incident.Event | Maintenance.Event):
        _evolve_notice(state, stream_id, event, position, recorded_at, dirty)


_PAGE_SETTINGS = ("public_site_enabled", "time_zone", "custom_domain")


def _evolve_page(
    state: SiteState, page_id: str, event: Aggregate.Event, position: int, recorded_at: datetime, dirty: Dirty
) -> None:
    if isinstance(event, StatusPage.Created):
        page = SitePage(
            id=page_id,
            name=event.name,
            slug=event.slug,
            description=event.description,
            public_url=event.public_url,
            created_at=event.timestamp,
            updated_at=recorded_at,
            uptime_mode=event.display_uptime_mode,
        )
        _settings(page, event)
        state.pages[page_id] = page
    else:
        found = state.pages.get(page_id)
        if found is None:
            return
        page = found
        if isinstance(event, StatusPage.Updated):
            page.name = event.name
            page.description = event.description
            page.public_url = event.public_url
            _settings(page, event)
        elif isinstance(event, StatusPage.StructureReplaced):
            page.items = event.items
            page.uptime_mode = event.display_uptime_mode
            for group_id in _group_ids(event.items):
                page.groups_since.setdefault(group_id, event.timestamp)
        else:
            return
        page.updated_at = recorded_at
    mark(dirty, page_id, position, ALL)


def _settings(page: SitePage, event: Aggregate.Event) -> None:
    """The page settings that shape its site, on events that carry them (older events keep the defaults)."""
    page.enabled = bool(getattr(event, "public_site_enabled", True))
    page.time_zone = str(getattr(event, "time_zone", "UTC") or "UTC")
    page.custom_domain = getattr(event, "custom_domain", None)


def _group_ids(items: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    for item in items:
        if "components" in item and "id" in item:
            yield str(item["id"])
        if "items" in item:
            yield from _group_ids(item["items"])


def _evolve_notice(
    state: SiteState, notice_id: str, event: Aggregate.Event, position: int, recorded_at: datetime, dirty: Dirty
) -> None:
    if isinstance(event, Incident.Declared | Incident.RetrospectiveRecorded | Maintenance.Scheduled):
        notice = _created(notice_id, event)
        state.notices[notice_id] = notice
        before_month: str | None = None
    else:
        current = state.notices.get(notice_id)
        if current is None:
            return
        notice = current
        page = state.pages.get(notice.status_page_id)
        before_month = local_month(notice.begun_at, page.zone) if page is not None else None
        if isinstance(event, Incident.Renamed):
            notice.name = event.name
            notice.updated_at = max(notice.updated_at, event.timestamp)
        elif isinstance(event, Maintenance.Edited):
            notice.name = event.name
            notice.start_at = event.start_at
            notice.end_at = event.end_at
            notice.updated_at = max(notice.updated_at, event.timestamp)
        elif isinstance(event, Maintenance.Deleted):
            state.notices[notice_id] = None
        elif isinstance(event, Incident.UpdatePublished):
            _append(notice, event, event.incident_status)
        elif isinstance(event, Maintenance.UpdatePublished | Maintenance.Started | Maintenance.Completed):
            _append(notice, event, event.maintenance_status)
        else:
            return
    page = state.pages.get(notice.status_page_id)
    if page is None:
        return
    page.updated_at = recorded_at
    keys = [CORE, notice_key(notice_id)]
    after = state.notices.get(notice_id)
    after_month = local_month(after.begun_at, page.zone) if after is not None else None
    months = {m for m in (before_month, after_month) if m is not None}
    if before_month != after_month:
        # A month's count shows on its own page, its neighbours' (previous/next) and the history's list.
        neighbours = set(page.months)
        if before_month is not None:
            page.months[before_month] -= 1
            if not page.months[before_month]:
                del page.months[before_month]
        if after_month is not None:
            page.months[after_month] = page.months.get(after_month, 0) + 1
        if neighbours != set(page.months):
            # A month appeared or went: every month page lists the months (without their counts).
            months |= neighbours | set(page.months)
        neighbours |= set(page.months)
        for month in list(months):
            months.update(_adjacent(neighbours, month))
    keys.extend(month_key(month) for month in sorted(months))
    if isinstance(event, Incident.RetrospectiveRecorded):
        _restatus(state, page, notice, notice.updates, recorded_at)
    elif isinstance(event, Maintenance.Deleted):
        _restatus(state, page, notice, (), recorded_at)
    elif not isinstance(event, Incident.Renamed | Maintenance.Edited):
        _restatus(state, page, notice, notice.updates[-1:], recorded_at)
    mark(dirty, page.id, position, *keys)


def _adjacent(months: set[str], month: str) -> list[str]:
    """The months just before and after `month` among `months`."""
    ordered = sorted(months | {month})
    index = ordered.index(month)
    return [ordered[i] for i in (index - 1, index + 1) if 0 <= i < len(ordered)]


def _created(notice_id: str, event: Any) -> SiteNotice:
    if isinstance(event, Incident.RetrospectiveRecorded):
        updates = [
            SiteUpdate(
                id=data["id"],
                at=data["published_at"],
                message=data["message"],
                status=data["status"],
                statuses=list(statuses_from_data(data["component_statuses"]).items()),
                notify=False,
            )
            for data in event.updates
        ]
        return SiteNotice(
            id=notice_id,
            kind="incident",
            status_page_id=event.status_page_id,
            name=event.name,
            status=updates[-1].status,
            created_at=updates[0].at,
            updated_at=updates[-1].at,
            updates=updates,
            statuses={cid: status for update in updates for cid, status in update.statuses},
        )
    maintenance = isinstance(event, Maintenance.Scheduled)
    notice = SiteNotice(
        id=notice_id,
        kind="maintenance" if maintenance else "incident",
        status_page_id=event.status_page_id,
        name=event.name,
        status="",
        created_at=event.timestamp,
        updated_at=event.timestamp,
        updates=[],
        start_at=event.start_at if maintenance else None,
        end_at=event.end_at if maintenance else None,
    )
    _append(notice, event, event.maintenance_status if maintenance else event.incident_status)
    return notice


def _append(notice: SiteNotice, event: Any, status: str) -> None:
    notice.updates.append(
        SiteUpdate(
            id=event.update_id,
            at=event.timestamp,
            message=event.message,
            status=status,
            statuses=list(statuses_from_data(event.component_statuses).items()),
            notify=event.notify_subscribers,
        )
    )
    notice.status = status
    notice.updated_at = max(notice.updated_at, event.timestamp)
    notice.statuses.update(notice.updates[-1].statuses)


def _restatus(
    state: SiteState, page: SitePage, notice: SiteNotice, updates: Sequence[SiteUpdate], at: datetime
) -> None:
    """Recompute the page status of the components `updates` of the notice named (all it ever named when it
    was deleted), from the page's open notices (all loaded: the projection loads every open notice of a
    page its batch touches)."""
    named = {component_id for update in updates for component_id, _ in update.statuses}
    if state.notices.get(notice.id) is None:
        named = set(notice.statuses)
    if not named:
        return
    worst: dict[str, str] = {}
    for other in state.open_notices(page.id):
        for component_id, status in other.statuses.items():
            if component_id in named and COMPONENT_SEVERITY.get(status, 0) > COMPONENT_SEVERITY.get(
                worst.get(component_id, "operational"), 0
            ):
                worst[component_id] = status
    for component_id in sorted(named):
        new = worst.get(component_id, "operational")
        if page.statuses.get(component_id, "operational") != new:
            page.status_changed[component_id] = at
            if new == "operational":
                page.statuses.pop(component_id, None)
            else:
                page.statuses[component_id] = new
    if notice.kind == "incident":
        for update in updates:
            for component_id, status in update.statuses:
                if status != "operational":
                    since = page.impact_since.get(component_id)
                    if since is None or update.at < since:
                        page.impact_since[component_id] = update.at


def utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)
