"""The Statuspage-compatible vocabulary (docs/architecture.md#public-site): pure functions from what Beacon
knows about a page, its components and its notices to the dicts Statuspage's public JSON is made of, in
Statuspage's key names and key order. The public site's eight JSON documents, its feeds and the webhook
bodies of notifications all build on these, so a client sees one incident object wherever it reads it.

No I/O, no clock: every instant comes in as an argument.

Decisions the contract leaves open:

- A component's page status is the worst status any ongoing notice gives it (`full_outage` is Statuspage's
  `major_outage`); `under_maintenance` only while no incident gives it something worse.
- An incident's `started_at` is its `created_at` (its first update's publication). A window's is when it
  went in progress (Statuspage's `started_at` says when the event itself began, which for a maintenance is
  its start, not its announcement): the last update that entered `maintenance_in_progress`, by the
  domain's rule (`started_at_after`, as the widget); a window that never went in progress keeps its
  `created_at`.
  `monitoring_at` is when it first entered `monitoring`, `resolved_at` when it was resolved or completed.
- `start_date` is the UTC date of the component's `data_available_since`.
- An update's `affected_components` lists the components the update named, with the status the notice had
  given each before it (`operational` for the first naming), in the order the update named them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from domain.maintenance import started_at_after

# Beacon's statuses, most severe last, and their Statuspage names.
COMPONENT_SEVERITY = {
    "operational": 0,
    "under_maintenance": 1,
    "degraded_performance": 2,
    "partial_outage": 3,
    "full_outage": 4,
}
"""How bad a component status is; `under_maintenance` ranks below every incident status."""

_COMPONENT_STATUS = {
    "operational": "operational",
    "under_maintenance": "under_maintenance",
    "degraded_performance": "degraded_performance",
    "partial_outage": "partial_outage",
    "full_outage": "major_outage",
}

_MAINTENANCE_STATUS = {
    "maintenance_scheduled": "scheduled",
    "maintenance_in_progress": "in_progress",
    "maintenance_complete": "completed",
}

_IMPACT_OF = {"degraded_performance": "minor", "partial_outage": "major", "full_outage": "critical"}
IMPACT_ORDER = ("none", "minor", "major", "critical")
"""Statuspage's incident impacts that `status.indicator` may take, least severe first."""


def component_status(status: str) -> str:
    """A Beacon component status in Statuspage's words (`full_outage` → `major_outage`)."""
    return _COMPONENT_STATUS.get(status, status)


def notice_status(kind: str, status: str) -> str:
    """An incident's status as is; a window's as Statuspage names it (`scheduled|in_progress|completed`)."""
    return _MAINTENANCE_STATUS.get(status, status) if kind == "maintenance" else status


def worst_status(statuses: Iterable[str]) -> str:
    """The most severe of Beacon component statuses (`operational` for none)."""
    return max(statuses, key=lambda s: COMPONENT_SEVERITY.get(s, 0), default="operational")


def incident_impact(worst_reached: str | None) -> str:
    """An incident's impact from the worst status any affected component reached while it was open:
    degraded → minor, partial → major, full → critical; one that impacted no component is minor."""
    return _IMPACT_OF.get(worst_reached or "", "minor")


def timestamp(instant: datetime) -> str:
    """UTC with milliseconds, as Statuspage writes them: `2026-03-03T14:05:14.473Z`."""
    utc = instant.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _optional_timestamp(instant: datetime | None) -> str | None:
    return timestamp(instant) if instant is not None else None


# What the functions take.


@dataclass(frozen=True)
class PageFacts:
    """A page (or a sub-page, as a page of its own) as its documents name it."""

    id: str
    """The page's ULID; a sub-page's own id for a sub-page's documents."""
    name: str
    """The page's name; for a sub-page "{page} — {sub-page}"."""
    url: str | None
    """The canonical URL; None omits `page.url`."""
    time_zone: str
    """IANA name (`UTC` by default)."""
    updated_at: datetime
    """The `recorded_at` of the last event that changed the page's documents."""


@dataclass(frozen=True)
class ComponentFacts:
    """One visible row of a page's component list: a component, or a group (`group=True`)."""

    id: str
    name: str
    status: str
    """Beacon status; a group's is its worst visible child's."""
    created_at: datetime
    updated_at: datetime
    """Its last status change (its creation when it never changed)."""
    position: int
    """1-based within its parent (the page, or the group)."""
    description: str | None
    showcase: bool
    """`display_uptime`; a group's `display_aggregated_uptime`."""
    start_date: date | None
    """The date its data begins (`data_available_since`); None for a group."""
    group_id: str | None
    group: bool = False
    components: tuple[str, ...] = ()
    """A group's visible children's ids."""


@dataclass(frozen=True)
class ComponentChange:
    """What one update did to one component."""

    component_id: str
    name: str
    old_status: str
    new_status: str


@dataclass(frozen=True)
class UpdateFacts:
    """One published update of a notice."""

    id: str
    status: str
    """The notice's Beacon status after it."""
    message: str
    """Markdown source."""
    published_at: datetime
    notify_subscribers: bool
    changes: tuple[ComponentChange, ...] | None
    """The component statuses the update set, or None when it set none."""


@dataclass(frozen=True)
class NoticeFacts:
    """An incident or a maintenance window with its whole timeline."""

    id: str
    kind: str
    """`incident` or `maintenance`."""
    name: str
    status: str
    """Beacon status."""
    created_at: datetime
    updated_at: datetime
    """Its latest update's publication or its latest edit, whichever is later."""
    updates: tuple[UpdateFacts, ...]
    """Oldest first, as published."""
    worst_reached: str | None
    """The worst component status any update gave while it was open (incidents); None when none."""
    monitoring_at: datetime | None = None
    resolved_at: datetime | None = None
    scheduled_for: datetime | None = None
    """A window's planned start."""
    scheduled_until: datetime | None = None
    """A window's planned end."""
    started_at: datetime | None = None
    """When a window went in progress (`window_started_at`); None: never, or an incident."""

    @property
    def impact(self) -> str:
        return "maintenance" if self.kind == "maintenance" else incident_impact(self.worst_reached)

    @property
    def resolved(self) -> bool:
        return self.status in ("resolved", "maintenance_complete")


# The objects.


def page_object(page: PageFacts) -> dict[str, Any]:
    """`page{id, name, url, time_zone, updated_at}`; `url` left out when the page has none."""
    data: dict[str, Any] = {"id": page.id, "name": page.name}
    if page.url is not None:
        data["url"] = page.url
    data["time_zone"] = page.time_zone
    data["updated_at"] = timestamp(page.updated_at)
    return data


def component_object(row: ComponentFacts, page_id: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "status": component_status(row.status),
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
        "position": row.position,
        "description": row.description,
        "showcase": row.showcase,
        "start_date": row.start_date.isoformat() if row.start_date is not None else None,
        "group_id": row.group_id,
        "page_id": page_id,
        "group": row.group,
        "only_show_if_degraded": False,
    }
    if row.group:
        data["components"] = list(row.components)
    return data


def component_objects(rows: Sequence[ComponentFacts], page_id: str) -> list[dict[str, Any]]:
    return [component_object(row, page_id) for row in rows]


def shortlink(base_url: str | None, kind: str, notice_id: str) -> str | None:
    """`{canonical URL}/incidents/{id}` or `/maintenances/{id}`; None without a canonical URL."""
    if base_url is None:
        return None
    return f"{base_url.rstrip('/')}/{'incidents' if kind == 'incident' else 'maintenances'}/{notice_id}"


def update_object(notice: NoticeFacts, update: UpdateFacts) -> dict[str, Any]:
    at = timestamp(update.published_at)
    return {
        "id": update.id,
        "status": notice_status(notice.kind, update.status),
        "body": update.message,
        "incident_id": notice.id,
        "created_at": at,
        "updated_at": at,
        "display_at": at,
        "affected_components": None
        if update.changes is None
        else [
            {
                "code": change.component_id,
                "name": change.name,
                "old_status": component_status(change.old_status),
                "new_status": component_status(change.new_status),
            }
            for change in update.changes
        ],
        "deliver_notifications": update.notify_subscribers,
        "custom_tweet": None,
        "tweet_id": None,
    }


def window_started_at(updates: Iterable[tuple[str, datetime]]) -> datetime | None:
    """When a window last went in progress, from its updates' (status, publication) oldest first; None
    when it never did."""
    started_at: datetime | None = None
    previous: str | None = None
    for status, at in updates:
        started_at = started_at_after(started_at, previous, status, at)
        previous = status
    return started_at


def incident(
    notice: NoticeFacts,
    *,
    page_id: str,
    base_url: str | None,
    components: Sequence[ComponentFacts] = (),
) -> dict[str, Any]:
    """The incident object (a window's too, with `scheduled_for`/`scheduled_until`): updates newest first,
    `components` the visible rows of the components it affects."""
    data: dict[str, Any] = {
        "id": notice.id,
        "name": notice.name,
        "status": notice_status(notice.kind, notice.status),
        "created_at": timestamp(notice.created_at),
        "updated_at": timestamp(notice.updated_at),
        "monitoring_at": _optional_timestamp(notice.monitoring_at),
        "resolved_at": _optional_timestamp(notice.resolved_at),
        "impact": notice.impact,
        "shortlink": shortlink(base_url, notice.kind, notice.id),
        "started_at": timestamp(notice.started_at or notice.created_at),
        "page_id": page_id,
        "incident_updates": [update_object(notice, update) for update in reversed(notice.updates)],
        "components": component_objects(components, page_id),
    }
    if notice.kind == "maintenance":
        data["scheduled_for"] = _optional_timestamp(notice.scheduled_for)
        data["scheduled_until"] = _optional_timestamp(notice.scheduled_until)
    return data


# The page's overall status.

ALL_OPERATIONAL = ("none", "All Systems Operational")


def component_rollup(statuses: Sequence[str]) -> tuple[str, str]:
    """The indicator and description the visible, non-group components' Beacon statuses give alone."""
    mapped = [component_status(s) for s in statuses]
    if not mapped:
        return ALL_OPERATIONAL
    every = set(mapped)
    if every == {"major_outage"}:
        return "critical", "Major System Outage"
    if "major_outage" in every or every == {"partial_outage"}:
        return "major", "Partial System Outage"
    if "partial_outage" in every:
        return "minor", "Minor Service Outage"
    if every == {"degraded_performance"}:
        return "minor", "Degraded System Service"
    if "degraded_performance" in every:
        return "minor", "Partially Degraded Service"
    if "under_maintenance" in every:
        return "none", "Service Under Maintenance"
    return ALL_OPERATIONAL


_INCIDENT_DESCRIPTION = {
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
}


def status_indicator(component_statuses: Sequence[str], unresolved_impacts: Iterable[str]) -> tuple[str, str]:
    """`status{indicator, description}`: the worse of the component rollup and every unresolved incident's
    impact, only ever `none|minor|major|critical` (Statuspage itself would say `maintenance`; strict
    clients reject it, so Beacon does not). On a tie the component rollup's description stands."""
    indicator, description = component_rollup(component_statuses)
    for impact in unresolved_impacts:
        if impact in _INCIDENT_DESCRIPTION and IMPACT_ORDER.index(impact) > IMPACT_ORDER.index(indicator):
            indicator, description = impact, _INCIDENT_DESCRIPTION[impact]
    return indicator, description


def status_object(indicator: tuple[str, str]) -> dict[str, str]:
    return {"indicator": indicator[0], "description": indicator[1]}


def component_changes(
    before: Mapping[str, str], statuses: Sequence[tuple[str, str]], names: Mapping[str, str]
) -> tuple[ComponentChange, ...] | None:
    """What an update that set `statuses` (component id, new status) did, given each component's status in
    the notice before it; None when it set none."""
    if not statuses:
        return None
    return tuple(
        ComponentChange(component_id, names.get(component_id, ""), before.get(component_id, "operational"), new)
        for component_id, new in statuses
    )
