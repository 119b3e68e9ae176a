"""Status page maintenance windows: scheduled with a window (`start_at` < `end_at`) and a first update,
moved on by updates — manual ones, or automatic ones at `start_at` and `end_at` — until complete; the
name and window can be edited (PUT) and the window deleted (the README's walk-through shows each step).

Decisions where incident.io is silent or its SDK's documentation decides:

- `automate_maintenance_status` defaults to false, as incident.io's SDK documents.
- A manual update that *changes* the status turns automation off, as the SDK documents ("publishing
  your own update that sets maintenance_status turns automation off"): a manual update always wins.
  An update that keeps the status (a progress note) leaves automation on.
- Entering `maintenance_in_progress` puts every affected component under maintenance and going back to
  `maintenance_scheduled` returns them to operational, unless the update names them itself.
- With automation on, the updates automation will still publish are reserved within the 100-update
  limit, so a window can always complete by itself.
- A completed window keeps its times; PUT may still rename it. A deleted window takes no commands.
- Maintenance times are the times it happened. A window whose `end_at` has passed can only be created
  as `maintenance_complete`, and is then recorded at its own times: an update marking its start at
  `start_at` (components under maintenance) and the caller's completing update at `end_at`, neither
  notifying. A window that is not complete cannot be created ending in the past, nor moved there by PUT.
- An automatic step takes effect at its scheduled instant, but never before the window was published,
  last moved by a PUT, or last updated (a window created or moved after its start starts then, not
  earlier). That instant is the event's `timestamp`, so the update's `published_at` and the component
  periods; the log's `recorded_at` says when the step was recorded. After downtime the catch-up
  therefore records a 15-minute window as 15 minutes, not as two steps at the restart instant.

Events, each class named as its topic is (`beacon.Maintenance.Scheduled` is `Maintenance.Scheduled`):
`Maintenance.Scheduled`, `Maintenance.UpdatePublished`, `Maintenance.Started` / `Maintenance.Completed`
(automatic, by `system`, each with its update), `Maintenance.Edited` (PUT), `Maintenance.Deleted`.
`Maintenance.Scheduled` gained `start_update_id` (default None: a window scheduled live, as every event
written before it was).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.base import (
    SYSTEM,
    Actor,
    ActorData,
    CommandContext,
    EventStore,
    IdempotencyKey,
    execute,
)
from domain.notice import (
    ClosingWithComponentStatuses,
    ComponentStatusData,
    ComponentStatusesInput,
    Notice,
    NoticeClosed,
    NoticeNotFound,
    PageComponents,
    Update,
    check_component_on_page,
    check_component_statuses,
    create_idempotently,
    statuses_from_data,
    statuses_to_data,
)
from domain.rules import InvalidValue, check_aware, check_message, check_name, parse_enum

STARTED_MESSAGE = "This scheduled maintenance is now in progress."
COMPLETED_MESSAGE = "This scheduled maintenance has been completed."


class MaintenanceStatus(StrEnum):
    SCHEDULED = "maintenance_scheduled"
    IN_PROGRESS = "maintenance_in_progress"
    COMPLETE = "maintenance_complete"


class MaintenanceComponentStatus(StrEnum):
    OPERATIONAL = "operational"
    UNDER_MAINTENANCE = "under_maintenance"


@dataclass(frozen=True)
class MaintenancePeriod:
    """A maximal time range in which a component was under maintenance (never sent, derived)."""

    component_id: str
    start_at: datetime
    end_at: datetime | None


@dataclass(frozen=True)
class AutomaticTransition:
    """What automation will do next to a window, and from when it is due."""

    status: MaintenanceStatus
    due_at: datetime


class UpdateEvent(Aggregate.Event):
    """What a window's three update-carrying events (`Maintenance.UpdatePublished`, `.Started`,
    `.Completed`) share: the update they publish, applied the same way. Never stored itself, so it has
    no topic; each subclass has its own."""

    update_id: str
    message: str
    maintenance_status: str
    component_statuses: ComponentStatusData
    notify_subscribers: bool
    by: ActorData

    def apply(self, aggregate: Maintenance) -> None:
        aggregate._record(
            self.update_id,
            self.message,
            self.maintenance_status,
            self.component_statuses,
            self.notify_subscribers,
            self.by,
            self.timestamp,
        )


class Maintenance(Notice):
    """One maintenance window: its name, window, updates and automation switch."""

    TOPIC = "beacon.Maintenance"
    STREAM_TYPE = "status_page_maintenance"
    CLOSED_STATUS = MaintenanceStatus.COMPLETE
    KIND = "maintenance window"
    class_version = 1

    class Scheduled(Aggregate.Created):
        TOPIC = "beacon.Maintenance.Scheduled"
        class_version = 1
        status_page_id: str
        name: str
        start_at: datetime
        end_at: datetime
        automate_maintenance_status: bool
        update_id: str
        message: str
        maintenance_status: str
        component_statuses: ComponentStatusData
        notify_subscribers: bool
        by: ActorData
        start_update_id: str | None = None
        """Set only on a window recorded after it ended: the id of the update marking its start."""

    @event(Scheduled)
    def __init__(
        self,
        *,
        id: UUID,
        status_page_id: str,
        name: str,
        start_at: datetime,
        end_at: datetime,
        automate_maintenance_status: bool,
        update_id: str,
        message: str,
        maintenance_status: str,
        component_statuses: ComponentStatusData,
        notify_subscribers: bool,
        by: ActorData,
        timestamp: datetime,
        start_update_id: str | None = None,
    ) -> None:
        self.start_at = start_at
        self.end_at = end_at
        self.automate_maintenance_status = automate_maintenance_status
        self.notify_subscribers = notify_subscribers
        self.deleted = False
        self.moved_at: datetime | None = None
        if start_update_id is None:
            self._apply_created(status_page_id=status_page_id, name=name, published_at=timestamp)
            self._record(update_id, message, maintenance_status, component_statuses, notify_subscribers, by, timestamp)
            return
        # A past window, recorded at its own times: it started at start_at and completed at end_at.
        # `component_statuses` holds the completing update's (every affected component operational).
        self._apply_created(status_page_id=status_page_id, name=name, published_at=start_at)
        affected = statuses_from_data(component_statuses)
        under = statuses_to_data(dict.fromkeys(affected, MaintenanceComponentStatus.UNDER_MAINTENANCE.value))
        self._record(start_update_id, STARTED_MESSAGE, MaintenanceStatus.IN_PROGRESS.value, under, False, by, start_at)
        self._record(update_id, message, maintenance_status, component_statuses, False, by, end_at)

    class UpdatePublished(UpdateEvent):
        """A manual update; it also records whether automation stays on (a status change turns it off)."""

        TOPIC = "beacon.Maintenance.UpdatePublished"
        class_version = 1
        automate_maintenance_status: bool

        def apply(self, aggregate: Maintenance) -> None:
            aggregate.automate_maintenance_status = self.automate_maintenance_status
            super().apply(aggregate)

    class Started(UpdateEvent):
        """Automation's start, by `system`."""

        TOPIC = "beacon.Maintenance.Started"
        class_version = 1

    class Completed(UpdateEvent):
        """Automation's completion, by `system`."""

        TOPIC = "beacon.Maintenance.Completed"
        class_version = 1

    class Edited(Aggregate.Event):
        TOPIC = "beacon.Maintenance.Edited"
        class_version = 1
        name: str
        start_at: datetime
        end_at: datetime
        by: ActorData

    @event(Edited)
    def _edited(self, *, name: str, start_at: datetime, end_at: datetime, by: ActorData, timestamp: datetime) -> None:
        if (start_at, end_at) != (self.start_at, self.end_at):
            self.moved_at = timestamp
        self.name = name
        self.start_at = start_at
        self.end_at = end_at

    class Deleted(Aggregate.Event):
        TOPIC = "beacon.Maintenance.Deleted"
        class_version = 1
        by: ActorData

    @event(Deleted)
    def _deleted(self, *, by: ActorData, timestamp: datetime) -> None:
        self.deleted = True

    def _record(
        self,
        update_id: str,
        message: str,
        status: str,
        component_statuses: ComponentStatusData,
        notify_subscribers: bool,
        by: ActorData,
        at: datetime,
    ) -> None:
        self._apply_update(
            Update(
                id=update_id,
                published_at=at,
                message=message,
                status=status,
                component_statuses=statuses_from_data(component_statuses),
                notify_subscribers=notify_subscribers,
                by=by,
            )
        )

    # Commands: check the rules, then record one event.

    @classmethod
    def schedule(
        cls,
        *,
        id: UUID,
        status_page_id: str,
        page_components: PageComponents,
        name: str,
        message: str,
        status: str,
        affected_component_ids: Sequence[str],
        start_at: datetime,
        end_at: datetime,
        automate_maintenance_status: bool = False,
        notify_subscribers: bool,
        update_id: str,
        start_update_id: str | None = None,
        at: datetime,
        by: Actor,
    ) -> Maintenance:
        """A new window. One whose `end_at` has passed must be `maintenance_complete` and is recorded at
        its own times, its start as an update with `start_update_id` (which the caller must then give)."""
        check_name(name)
        check_message(message)
        maintenance_status = parse_enum(MaintenanceStatus, status, field="maintenance_status")
        check_window(start_at, end_at)
        past = end_at <= at
        if past and maintenance_status is not MaintenanceStatus.COMPLETE:
            raise WindowInThePast(
                f"end_at has passed: a maintenance window that is over can only be created as"
                f" {MaintenanceStatus.COMPLETE.value} (it is recorded at its own times and notifies no one),"
                f" not as {maintenance_status.value}"
            )
        if past and start_update_id is None:
            raise ValueError("a past maintenance window needs start_update_id for the update marking its start")
        for index, component_id in enumerate(affected_component_ids):
            check_component_on_page(component_id, page_components, field=f"affected_component_ids[{index}]")
        under = maintenance_status is MaintenanceStatus.IN_PROGRESS
        statuses = dict.fromkeys(
            affected_component_ids,  # dict.fromkeys drops repeats and keeps the order
            MaintenanceComponentStatus.UNDER_MAINTENANCE if under else MaintenanceComponentStatus.OPERATIONAL,
        )
        return cls(
            id=id,
            status_page_id=status_page_id,
            name=name,
            start_at=start_at,
            end_at=end_at,
            automate_maintenance_status=automate_maintenance_status,
            update_id=update_id,
            message=message,
            maintenance_status=maintenance_status.value,
            component_statuses=statuses_to_data(statuses),
            notify_subscribers=notify_subscribers,
            by=by.as_data(),
            timestamp=at,
            start_update_id=start_update_id if past else None,
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
        """A manual update; `status=None` keeps the status and unnamed components keep theirs. A status
        change turns automation off (manual wins)."""
        self._check_exists()
        self._check_open()
        check_message(message)
        new_status = (
            self.maintenance_status
            if status is None
            else parse_enum(MaintenanceStatus, status, field="maintenance_status")
        )
        requested = check_component_statuses(
            component_statuses, enum=MaintenanceComponentStatus, page_components=page_components
        )
        if new_status is MaintenanceStatus.COMPLETE and requested:
            raise ClosingWithComponentStatuses("a completing update must not set component_statuses")
        automate = self.automate_maintenance_status and new_status is self.maintenance_status
        self._check_room(reserved=_automatic_updates_left(new_status, automate))
        self.trigger_event(
            self.UpdatePublished,
            update_id=update_id,
            message=message,
            maintenance_status=new_status.value,
            component_statuses=statuses_to_data(self._effective_statuses(new_status, requested)),
            notify_subscribers=notify_subscribers,
            automate_maintenance_status=automate,
            by=by.as_data(),
            timestamp=at,
        )

    def edit(self, *, name: str, start_at: datetime, end_at: datetime, at: datetime, by: Actor) -> None:
        """PUT: replace name and window without publishing an update; the same values record nothing."""
        self._check_exists()
        check_name(name)
        check_window(start_at, end_at)
        if self.is_closed and (start_at, end_at) != (self.start_at, self.end_at):
            raise NoticeClosed(
                "a completed maintenance window keeps its start_at and end_at; only its name can change",
                field="start_at" if start_at != self.start_at else "end_at",
            )
        if not self.is_closed and end_at != self.end_at and end_at <= at:
            raise WindowInThePast(
                f"end_at must be in the future: a {self.status} maintenance window cannot be moved into the past"
                f" (publish a {MaintenanceStatus.COMPLETE.value} update to close it)"
            )
        if (name, start_at, end_at) == (self.name, self.start_at, self.end_at):
            return
        self._edited(name=name, start_at=start_at, end_at=end_at, by=by.as_data(), timestamp=at)

    def delete(self, *, at: datetime, by: Actor) -> None:
        """Remove the window from every read model; its events stay in the log."""
        self._check_exists()
        self._deleted(by=by.as_data(), timestamp=at)

    def start_automatically(self, *, update_id: str, at: datetime) -> bool:
        """Automation's start, as `system`, taking effect at `start_at` (see `_takes_effect_at`) even when
        `at`, the time it is recorded, is later. Does nothing (returns False) unless it is due: automation
        on, still scheduled, not deleted, `at` ≥ `start_at`."""
        due = self.next_automatic_transition
        if due is None or due.status is not MaintenanceStatus.IN_PROGRESS or at < due.due_at:
            return False
        self.trigger_event(
            self.Started,
            update_id=update_id,
            message=STARTED_MESSAGE,
            maintenance_status=MaintenanceStatus.IN_PROGRESS.value,
            component_statuses=statuses_to_data(self._effective_statuses(MaintenanceStatus.IN_PROGRESS, {})),
            notify_subscribers=self.notify_subscribers,
            by=SYSTEM.as_data(),
            timestamp=self._takes_effect_at(due),
        )
        return True

    def complete_automatically(self, *, update_id: str, at: datetime) -> bool:
        """Automation's completion, as `system`, taking effect at `end_at` (see `_takes_effect_at`). Does
        nothing (returns False) unless it is due: automation on, in progress, not deleted, `at` ≥ `end_at`.
        A window still scheduled is started first (by `advance_automatically`), so both steps are recorded."""
        due = self.next_automatic_transition
        if due is None or due.status is not MaintenanceStatus.COMPLETE or at < due.due_at:
            return False
        self.trigger_event(
            self.Completed,
            update_id=update_id,
            message=COMPLETED_MESSAGE,
            maintenance_status=MaintenanceStatus.COMPLETE.value,
            component_statuses=statuses_to_data(self._closing_statuses()),
            notify_subscribers=self.notify_subscribers,
            by=SYSTEM.as_data(),
            timestamp=self._takes_effect_at(due),
        )
        return True

    def advance_automatically(self, *, update_id: str, at: datetime) -> bool:
        """Whichever automatic step is due at `at` (one step: call again to catch up on the next)."""
        return self.start_automatically(update_id=update_id, at=at) or self.complete_automatically(
            update_id=update_id, at=at
        )

    # Rules

    def _takes_effect_at(self, due: AutomaticTransition) -> datetime:
        """When an automatic step happened, whenever it is recorded: at its scheduled instant, but not
        before the window was published, last moved by a PUT, or last updated (the first update is the
        publication, so it covers that too)."""
        return max(due.due_at, self.last_update.published_at, self.moved_at or due.due_at)

    def _check_exists(self) -> None:
        if self.deleted:
            raise NoticeNotFound(f"maintenance window {self.id} has been deleted")

    def _effective_statuses(self, new_status: MaintenanceStatus, requested: dict[str, str]) -> dict[str, str]:
        """Completing returns every affected component to operational; entering in-progress (or going
        back to scheduled) moves the affected components the update does not name."""
        if new_status is MaintenanceStatus.COMPLETE:
            return self._closing_statuses()
        if new_status is self.maintenance_status:
            return requested
        default = (
            MaintenanceComponentStatus.UNDER_MAINTENANCE
            if new_status is MaintenanceStatus.IN_PROGRESS
            else MaintenanceComponentStatus.OPERATIONAL
        )
        statuses: dict[str, str] = dict.fromkeys(self.component_statuses, default.value)
        statuses.update(requested)
        return statuses

    # Queries

    @property
    def maintenance_status(self) -> MaintenanceStatus:
        return MaintenanceStatus(self.status)

    @property
    def next_automatic_transition(self) -> AutomaticTransition | None:
        """What the scheduler should do next and from when; None when automation has nothing left."""
        if self.deleted or not self.automate_maintenance_status:
            return None
        if self.maintenance_status is MaintenanceStatus.SCHEDULED:
            return AutomaticTransition(MaintenanceStatus.IN_PROGRESS, self.start_at)
        if self.maintenance_status is MaintenanceStatus.IN_PROGRESS:
            return AutomaticTransition(MaintenanceStatus.COMPLETE, self.end_at)
        return None

    @property
    def started_at(self) -> datetime | None:
        """When the window last entered maintenance_in_progress (None if it never did)."""
        started: datetime | None = None
        previous: str | None = None
        for update in self.updates:
            started = started_at_after(started, previous, update.status, update.published_at)
            previous = update.status
        return started

    @property
    def _unimpacted_start(self) -> datetime:
        """A window that has not affected any component yet spans from its planned start."""
        return self.start_at

    @property
    def component_maintenance_periods(self) -> list[MaintenancePeriod]:
        return [
            MaintenancePeriod(component_id=interval.component_id, start_at=interval.start_at, end_at=interval.end_at)
            for interval in self.intervals
        ]


# Rules


def started_at_after(started_at: datetime | None, previous: str | None, status: str, at: datetime) -> datetime | None:
    """When a window last entered maintenance_in_progress, after an update at `at` that moved it from
    `previous` (None for the first) to `status`: `at` if the update enters it, else `started_at`. The one
    place this rule lives; `Maintenance.started_at` and the public widget (projections/widget_document.py)
    both fold with it."""
    if status == MaintenanceStatus.IN_PROGRESS and previous != MaintenanceStatus.IN_PROGRESS:
        return at
    return started_at


def check_window(start_at: datetime, end_at: datetime) -> None:
    check_aware(start_at, field="start_at")
    check_aware(end_at, field="end_at")
    if not start_at < end_at:
        raise InvalidWindow("start_at must be before end_at")


def _automatic_updates_left(status: MaintenanceStatus, automate: bool) -> int:
    if not automate:
        return 0
    return {MaintenanceStatus.SCHEDULED: 2, MaintenanceStatus.IN_PROGRESS: 1}.get(status, 0)


# Errors


class InvalidWindow(InvalidValue):
    """Raised when a maintenance window does not start before it ends."""

    field = "end_at"


class WindowInThePast(InvalidValue):
    """Raised when a window that is not complete would be created ending in the past, or moved there."""

    field = "end_at"


# Handlers


async def schedule_maintenance(
    store: EventStore,
    *,
    maintenance_id: UUID,
    status_page_id: str,
    page_components: PageComponents,
    name: str,
    message: str,
    status: str,
    affected_component_ids: Sequence[str],
    start_at: datetime,
    end_at: datetime,
    automate_maintenance_status: bool = False,
    notify_subscribers: bool,
    idempotency_key: str,
    update_id: str,
    start_update_id: str | None = None,
    context: CommandContext,
) -> tuple[Maintenance, bool]:
    """CreateStatusPageMaintenance. Returns the window and whether the idempotency key replayed it.
    `start_update_id` is needed only for a window that is already over (see `Maintenance.schedule`)."""

    def create() -> Maintenance:
        return Maintenance.schedule(
            id=maintenance_id,
            status_page_id=status_page_id,
            page_components=page_components,
            name=name,
            message=message,
            status=status,
            affected_component_ids=affected_component_ids,
            start_at=start_at,
            end_at=end_at,
            automate_maintenance_status=automate_maintenance_status,
            notify_subscribers=notify_subscribers,
            update_id=update_id,
            start_update_id=start_update_id,
            at=context.now,
            by=context.actor,
        )

    key = IdempotencyKey(kind="maintenance", status_page_id=status_page_id, key=idempotency_key)
    return await create_idempotently(store, Maintenance, key, create, context)


async def edit_maintenance(
    store: EventStore,
    *,
    maintenance_id: UUID,
    name: str,
    start_at: datetime,
    end_at: datetime,
    context: CommandContext,
) -> Maintenance:
    """UpdateStatusPageMaintenance (PUT): name and window, no update published."""

    def decide(maintenance: Maintenance) -> None:
        maintenance.edit(name=name, start_at=start_at, end_at=end_at, at=context.now, by=context.actor)

    maintenance, _ = await execute(store, Maintenance, maintenance_id, decide, context)
    return maintenance


async def delete_maintenance(store: EventStore, *, maintenance_id: UUID, context: CommandContext) -> Maintenance:
    """DeleteStatusPageMaintenance: one `Maintenance.Deleted` event; a second delete is NotFound."""

    def decide(maintenance: Maintenance) -> None:
        maintenance.delete(at=context.now, by=context.actor)

    maintenance, _ = await execute(store, Maintenance, maintenance_id, decide, context)
    return maintenance


async def advance_maintenance_automatically(
    store: EventStore,
    *,
    maintenance_id: UUID,
    new_update_id: Callable[[], str],
    context: CommandContext,
) -> tuple[Maintenance, int]:
    """The scheduler's command: every automatic step due at `context.now`, each its own event and
    update (a window the server slept through is started, then completed, each at the instant it was
    due; `context.now` is only when they are recorded). Returns the window and how
    many steps ran; 0 when a manual update or another worker got there first. `context.actor` should be
    `SYSTEM` (the events record `system` regardless)."""
    steps = 0
    while True:
        moved = False

        def decide(maintenance: Maintenance) -> None:
            nonlocal moved
            moved = maintenance.advance_automatically(update_id=new_update_id(), at=context.now)

        maintenance, _ = await execute(store, Maintenance, maintenance_id, decide, context)
        if not moved:
            return maintenance, steps
        steps += 1
