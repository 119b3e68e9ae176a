"""Status page incidents: declared with a first update, moved on by further updates until resolved,
renamed at any time; or recorded after the fact as a retrospective incident (docs/architecture.md#notice-rules).

Events (explicit topics; fields are the storage format, see `domain.notice` for the shared shapes):

- `Incident.Declared` — the incident and its first update, with `notify_subscribers`.
- `Incident.UpdatePublished` — a later update; `incident_status` is always the status after it.
- `Incident.Renamed` — PUT on an incident (its only editable field is the name).
- `Incident.RetrospectiveRecorded` — a past incident with its whole timeline in one event; it never
  notifies and is always resolved, so it is never ongoing.

Each class is named as its topic is (`beacon.Incident.Declared` is `Incident.Declared`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.base import (
    Actor,
    ActorData,
    CommandContext,
    DomainError,
    EventStore,
    IdempotencyKey,
    execute,
)
from domain.notice import (
    MAX_UPDATES,
    OPERATIONAL,
    ClosingWithComponentStatuses,
    ComponentStatusData,
    ComponentStatusesInput,
    Notice,
    PageComponents,
    TooManyUpdates,
    Update,
    check_component_statuses,
    create_idempotently,
    statuses_from_data,
    statuses_to_data,
    update_from_data,
    update_to_data,
)
from domain.rules import InvalidValue, check_aware, check_message, check_name, parse_enum


class IncidentStatus(StrEnum):
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class IncidentComponentStatus(StrEnum):
    """A component's status during an incident, in severity order."""

    OPERATIONAL = "operational"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    FULL_OUTAGE = "full_outage"

    @property
    def severity(self) -> int:
        return list(IncidentComponentStatus).index(self)


@dataclass(frozen=True)
class ComponentImpact:
    """A maximal time range in which a component held one non-operational status (never sent, derived)."""

    component_id: str
    component_status: IncidentComponentStatus
    start_at: datetime
    end_at: datetime | None


@dataclass(frozen=True)
class PastUpdate:
    """One update of a retrospective incident's timeline, as the caller reconstructs it."""

    id: str
    published_at: datetime
    message: str
    incident_status: str
    component_statuses: ComponentStatusesInput | None = None


class Incident(Notice):
    """One status page incident: its name, its updates and the component statuses they set."""

    TOPIC = "beacon.Incident"
    STREAM_TYPE = "status_page_incident"
    CLOSED_STATUS = IncidentStatus.RESOLVED
    KIND = "incident"
    class_version = 1

    # An incident comes into being in two ways (declared now, or recorded after the fact), so both
    # creation events apply themselves instead of going through one decorated `__init__`.

    class Declared(Aggregate.Created):
        TOPIC = "beacon.Incident.Declared"
        class_version = 1
        status_page_id: str
        name: str
        update_id: str
        message: str
        incident_status: str
        component_statuses: ComponentStatusData
        notify_subscribers: bool
        by: ActorData

        def apply(self, aggregate: Incident) -> None:
            aggregate._begin(
                status_page_id=self.status_page_id, name=self.name, published_at=self.timestamp, retrospective=False
            )
            aggregate._apply_update(
                Update(
                    id=self.update_id,
                    published_at=self.timestamp,
                    message=self.message,
                    status=self.incident_status,
                    component_statuses=statuses_from_data(self.component_statuses),
                    notify_subscribers=self.notify_subscribers,
                    by=self.by,
                )
            )

    class RetrospectiveRecorded(Aggregate.Created):
        TOPIC = "beacon.Incident.RetrospectiveRecorded"
        class_version = 1
        status_page_id: str
        name: str
        updates: list[dict[str, Any]]
        by: ActorData

        def apply(self, aggregate: Incident) -> None:
            aggregate._begin(
                status_page_id=self.status_page_id,
                name=self.name,
                published_at=self.updates[0]["published_at"],
                retrospective=True,
            )
            for data in self.updates:
                aggregate._apply_update(update_from_data(data, notify_subscribers=False, by=self.by))

    def _begin(self, *, status_page_id: str, name: str, published_at: datetime, retrospective: bool) -> None:
        self._apply_created(status_page_id=status_page_id, name=name, published_at=published_at)
        self.retrospective = retrospective

    class UpdatePublished(Aggregate.Event):
        TOPIC = "beacon.Incident.UpdatePublished"
        class_version = 1
        update_id: str
        message: str
        incident_status: str
        component_statuses: ComponentStatusData
        notify_subscribers: bool
        by: ActorData

    @event(UpdatePublished)
    def _update_published(
        self,
        *,
        update_id: str,
        message: str,
        incident_status: str,
        component_statuses: ComponentStatusData,
        notify_subscribers: bool,
        by: ActorData,
        timestamp: datetime,
    ) -> None:
        self._apply_update(
            Update(
                id=update_id,
                published_at=timestamp,
                message=message,
                status=incident_status,
                component_statuses=statuses_from_data(component_statuses),
                notify_subscribers=notify_subscribers,
                by=by,
            )
        )

    class Renamed(Aggregate.Event):
        TOPIC = "beacon.Incident.Renamed"
        class_version = 1
        name: str
        by: ActorData

    @event(Renamed)
    def _renamed(self, *, name: str, by: ActorData, timestamp: datetime) -> None:
        self.name = name

    # Commands: check the rules, then record one event.

    @classmethod
    def declare(
        cls,
        *,
        id: UUID,
        status_page_id: str,
        page_components: PageComponents,
        name: str,
        message: str,
        status: str,
        component_statuses: ComponentStatusesInput | None,
        notify_subscribers: bool,
        update_id: str,
        at: datetime,
        by: Actor,
    ) -> Incident:
        check_name(name)
        check_message(message)
        incident_status = parse_enum(IncidentStatus, status, field="incident_status")
        statuses = check_component_statuses(
            component_statuses, enum=IncidentComponentStatus, page_components=page_components
        )
        if incident_status is IncidentStatus.RESOLVED and statuses:
            raise ClosingWithComponentStatuses("a resolved incident must not set component_statuses")
        return cls._create(
            cls.Declared,
            id=id,
            status_page_id=status_page_id,
            name=name,
            update_id=update_id,
            message=message,
            incident_status=incident_status.value,
            component_statuses=statuses_to_data(statuses),
            notify_subscribers=notify_subscribers,
            by=by.as_data(),
            timestamp=at,
        )

    @classmethod
    def record_retrospective(
        cls,
        *,
        id: UUID,
        status_page_id: str,
        page_components: PageComponents,
        name: str,
        updates: Sequence[PastUpdate],
        at: datetime,
        by: Actor,
    ) -> Incident:
        """A past incident from its timeline: every update before `at` (now), in chronological order,
        only the last one resolving it."""
        check_name(name)
        if not updates:
            raise UpdatesRequired("updates is required: a retrospective incident needs its timeline")
        if len(updates) > MAX_UPDATES:
            raise TooManyUpdates(f"an incident holds at most {MAX_UPDATES} updates")
        affected: dict[str, str] = {}
        recorded: list[dict[str, Any]] = []
        previous: datetime | None = None
        for index, past in enumerate(updates):
            field = f"updates[{index}]"
            check_aware(past.published_at, field=f"{field}.published_at")
            if past.published_at >= at:
                raise RetrospectiveUpdateNotInPast(
                    f"{field}.published_at must be in the past", field=f"{field}.published_at"
                )
            if previous is not None and past.published_at < previous:
                raise RetrospectiveUpdatesOutOfOrder(
                    "updates must be in chronological order (earliest first)", field=f"{field}.published_at"
                )
            previous = past.published_at
            check_message(past.message, field=f"{field}.message")
            status = parse_enum(IncidentStatus, past.incident_status, field=f"{field}.incident_status")
            statuses = check_component_statuses(
                past.component_statuses,
                enum=IncidentComponentStatus,
                page_components=page_components,
                field=f"{field}.component_statuses",
            )
            is_last = index == len(updates) - 1
            if is_last != (status is IncidentStatus.RESOLVED):
                raise RetrospectiveNotResolvedLast(
                    "the last update, and only the last, must set incident_status to resolved",
                    field=f"{field}.incident_status",
                )
            if status is IncidentStatus.RESOLVED:
                if statuses:
                    raise ClosingWithComponentStatuses(
                        "a resolving update must not set component_statuses", field=f"{field}.component_statuses"
                    )
                statuses = dict.fromkeys(affected, OPERATIONAL)
            affected.update(statuses)
            recorded.append(
                update_to_data(
                    Update(
                        id=past.id,
                        published_at=past.published_at,
                        message=past.message,
                        status=status.value,
                        component_statuses=statuses,
                        notify_subscribers=False,
                        by=by.as_data(),
                    )
                )
            )
        return cls._create(
            cls.RetrospectiveRecorded,
            id=id,
            status_page_id=status_page_id,
            name=name,
            updates=recorded,
            by=by.as_data(),
            timestamp=at,
        )

    def publish_update(
        self,
        *,
        update_id: str,
        message: str,
        status: str | None,
        component_statuses: ComponentStatusesInput | None,
        notify_subscribers: bool,
        page_components: PageComponents,
        at: datetime,
        by: Actor,
    ) -> None:
        """A new update; `status=None` keeps the current one and unnamed components keep theirs.
        Resolving returns every affected component to operational."""
        self._check_open()
        check_message(message)
        new_status = self.status if status is None else parse_enum(IncidentStatus, status, field="incident_status")
        statuses = check_component_statuses(
            component_statuses, enum=IncidentComponentStatus, page_components=page_components
        )
        if new_status == IncidentStatus.RESOLVED:
            if statuses:
                raise ClosingWithComponentStatuses("a resolving update must not set component_statuses")
            statuses = self._closing_statuses()
        self._check_room()
        self._update_published(
            update_id=update_id,
            message=message,
            incident_status=str(new_status),
            component_statuses=statuses_to_data(statuses),
            notify_subscribers=notify_subscribers,
            by=by.as_data(),
            timestamp=at,
        )

    def rename(self, *, name: str, at: datetime, by: Actor) -> None:
        """PUT on an incident: allowed even once resolved; the same name records nothing."""
        check_name(name)
        if name == self.name:
            return
        self._renamed(name=name, by=by.as_data(), timestamp=at)

    # Queries

    @property
    def incident_status(self) -> IncidentStatus:
        return IncidentStatus(self.status)

    @property
    def is_ongoing(self) -> bool:
        return not self.is_closed

    @property
    def component_impacts(self) -> list[ComponentImpact]:
        return [
            ComponentImpact(
                component_id=interval.component_id,
                component_status=IncidentComponentStatus(interval.status),
                start_at=interval.start_at,
                end_at=interval.end_at,
            )
            for interval in self.intervals
        ]

    @property
    def worst_component_status(self) -> IncidentComponentStatus | None:
        """The most severe current non-operational component status, if any component is impacted."""
        impacted = [
            IncidentComponentStatus(status) for status in self.component_statuses.values() if status != OPERATIONAL
        ]
        return max(impacted, key=lambda status: status.severity, default=None)


# Errors


class UpdatesRequired(DomainError):
    """Raised when a retrospective incident comes without any update."""

    field = "updates"
    code = "is_required"


class RetrospectiveUpdateNotInPast(InvalidValue):
    """Raised when a retrospective incident's update is not in the past."""


class RetrospectiveUpdatesOutOfOrder(InvalidValue):
    """Raised when a retrospective incident's updates are not in chronological order."""


class RetrospectiveNotResolvedLast(InvalidValue):
    """Raised when a retrospective incident's timeline does not end with (exactly one) resolving update."""


# Handlers


async def declare_incident(
    store: EventStore,
    *,
    incident_id: UUID,
    status_page_id: str,
    page_components: PageComponents,
    name: str,
    message: str,
    status: str,
    component_statuses: ComponentStatusesInput | None,
    notify_subscribers: bool,
    idempotency_key: str,
    update_id: str,
    context: CommandContext,
) -> tuple[Incident, bool]:
    """CreateStatusPageIncident. Returns the incident and whether the idempotency key replayed it."""

    def create() -> Incident:
        return Incident.declare(
            id=incident_id,
            status_page_id=status_page_id,
            page_components=page_components,
            name=name,
            message=message,
            status=status,
            component_statuses=component_statuses,
            notify_subscribers=notify_subscribers,
            update_id=update_id,
            at=context.now,
            by=context.actor,
        )

    key = IdempotencyKey(kind="incident", status_page_id=status_page_id, key=idempotency_key)
    return await create_idempotently(store, Incident, key, create, context)


async def record_retrospective_incident(
    store: EventStore,
    *,
    incident_id: UUID,
    status_page_id: str,
    page_components: PageComponents,
    name: str,
    updates: Sequence[PastUpdate],
    idempotency_key: str,
    context: CommandContext,
) -> tuple[Incident, bool]:
    """CreateStatusPageRetrospectiveIncident. Returns the incident and whether the key replayed it."""

    def create() -> Incident:
        return Incident.record_retrospective(
            id=incident_id,
            status_page_id=status_page_id,
            page_components=page_components,
            name=name,
            updates=updates,
            at=context.now,
            by=context.actor,
        )

    key = IdempotencyKey(kind="retrospective", status_page_id=status_page_id, key=idempotency_key)
    return await create_idempotently(store, Incident, key, create, context)


async def rename_incident(store: EventStore, *, incident_id: UUID, name: str, context: CommandContext) -> Incident:
    """UpdateStatusPageIncident (PUT): the name is the only field it changes."""

    def decide(incident: Incident) -> None:
        incident.rename(name=name, at=context.now, by=context.actor)

    incident, _ = await execute(store, Incident, incident_id, decide, context)
    return incident
