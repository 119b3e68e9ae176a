"""What incidents and maintenance windows share: a named notice on one status page that publishes
updates, each moving the notice's status and (partially) its components' statuses, until a closing
update (resolved / maintenance complete) returns every affected component to operational
(docs/architecture.md#notice-rules).

The time ranges a component spent in a non-operational status (an incident's component impacts, a
window's maintenance periods) are derived from the updates here, once, for both aggregates.

Event payload shapes shared by both aggregates, for projections:

- `component_statuses`: a list of `{"component_id": <ULID>, "component_status": <status>}` — the
  *effective* statuses the update applied. A closing update lists every affected component as
  `operational`, so a projection never has to re-derive what a resolution did.
- updates nested in an event (retrospective incidents): `{"id", "published_at", "message", "status",
  "component_statuses"}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, NoReturn, TypeVar
from uuid import UUID

from domain.base import (
    Actor,
    ActorData,
    BeaconAggregate,
    CommandContext,
    DomainError,
    EventStore,
    IdempotencyKey,
    NotFound,
    execute,
    load,
    save,
)
from domain.rules import InvalidValue, parse_enum

MAX_UPDATES = 100
OPERATIONAL = "operational"

PageComponents = AbstractSet[str]
"""The ULIDs of a status page's components, archived ones excluded: what an update may name."""

PageComponentsLookup = Callable[[str], Awaitable[PageComponents]]
"""Gives a status page's components by the page's ULID; only a stored notice knows its page."""

ComponentStatusesInput = Mapping[str, str] | Sequence[tuple[str, str]]
"""Component statuses as a command takes them: component ULID → status (pairs keep duplicates visible)."""

ComponentStatusData = list[dict[str, str]]
"""Component statuses as events store them: `[{"component_id": …, "component_status": …}]`."""

N = TypeVar("N", bound="Notice")


@dataclass(frozen=True)
class Update:
    """One published update: its message, the notice's status after it, and the component statuses it
    applied (effective ones: a closing update lists every affected component as operational)."""

    id: str
    published_at: datetime
    message: str
    status: str
    component_statuses: Mapping[str, str]
    notify_subscribers: bool
    by: ActorData


@dataclass(frozen=True)
class ComponentInterval:
    """A maximal time range in which one component held one non-operational status; open while
    `end_at` is None. Incidents call these component impacts, maintenance windows periods."""

    component_id: str
    status: str
    start_at: datetime
    end_at: datetime | None


class Notice(BeaconAggregate):
    """Base of `Incident` and `Maintenance`. Holds the shared state and the shared rules; the subclasses
    own their events (each with its own explicit topic) and call the `_apply_*` helpers from them."""

    # No instance-attribute annotations at class level: the library would turn them into dataclass
    # fields of the aggregate. The state is declared in `_apply_created`.
    CLOSED_STATUS: ClassVar[str] = ""
    KIND: ClassVar[str] = "notice"

    # Mutation helpers, called only from event methods: they never check a rule.

    def _apply_created(self, *, status_page_id: str, name: str, published_at: datetime) -> None:
        self.status_page_id = status_page_id
        self.name = name
        self.published_at = published_at
        self.status = ""
        self.updates: list[Update] = []
        # The current status of every component any update named (or the window was created with).
        self.component_statuses: dict[str, str] = {}

    def _apply_update(self, update: Update) -> None:
        self.updates.append(update)
        self.status = update.status
        self.component_statuses.update(update.component_statuses)

    # The command both kinds share (each checks its own rules and records its own event)

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
        raise NotImplementedError

    # Queries

    @property
    def is_closed(self) -> bool:
        """Resolved or complete: the notice takes no more updates, only a rename."""
        return self.status == self.CLOSED_STATUS

    @property
    def last_update(self) -> Update:
        return self.updates[-1]

    @property
    def affected_component_ids(self) -> list[str]:
        """Every component this notice has named, in the order they were first named."""
        return list(self.component_statuses)

    @property
    def intervals(self) -> list[ComponentInterval]:
        return derive_intervals(self.updates)

    @property
    def impact_span(self) -> tuple[datetime, datetime | None]:
        """When this notice affected its page, for the lists' `start_at`/`end_at` filters (incident.io:
        "had impacts during or after / during or before this time"): from its first component impact to
        its last one's end; open (None) while the notice is. Without impacts, from `_unimpacted_start`
        to the closing update."""
        intervals = self.intervals
        start = min((interval.start_at for interval in intervals), default=self._unimpacted_start)
        if not self.is_closed:
            return start, None
        ends = [interval.end_at for interval in intervals if interval.end_at is not None]
        return start, max(ends, default=self.last_update.published_at)

    @property
    def _unimpacted_start(self) -> datetime:
        """Where the span of a notice that never impacted a component starts: when it was published."""
        return self.published_at

    # Rules shared by every update

    def _check_open(self) -> None:
        if self.is_closed:
            raise NoticeClosed(
                f"this {self.KIND} is {self.CLOSED_STATUS} and takes no more updates (it can still be renamed)"
            )

    def _check_room(self, *, reserved: int = 0) -> None:
        if len(self.updates) + 1 + reserved > MAX_UPDATES:
            detail = f" ({reserved} reserved for automatic updates)" if reserved else ""
            raise TooManyUpdates(f"a {self.KIND} holds at most {MAX_UPDATES} updates{detail}")

    def _closing_statuses(self) -> dict[str, str]:
        """What a closing update applies: every affected component back to operational."""
        return dict.fromkeys(self.component_statuses, OPERATIONAL)



class _NamedCreationEvents:
    """Stands where the library's generic `Created` event class would be inherited by `Incident` and
    `Maintenance`."""

    def __get__(self, instance: object, owner: type) -> NoReturn:
        raise AttributeError(
            f"{owner.__name__} has no generic Created event: its creation events are named as their topics are"
        )


# The library re-declares a base's generic `Created` event class on each subclass, where Beacon's explicit
# topics would then demand a topic for it. Incidents and maintenance windows name their creation events
# as their topics do (`Incident.Declared`, `Incident.RetrospectiveRecorded`, `Maintenance.Scheduled`), so
# the generic one is withheld: `Incident.Created` fails loudly instead of quietly being a base class that
# matches no stored event.
setattr(Notice, "Created", _NamedCreationEvents())  # noqa: B010 (mypy must not see a class replaced)


# Rules (pure functions, shared by both aggregates)


def check_component_statuses(
    statuses: ComponentStatusesInput | None,
    *,
    enum: type[StrEnum],
    page_components: PageComponents,
    field: str = "component_statuses",
) -> dict[str, str]:
    """The requested statuses as a dict, after checking each component belongs to the page (and is not
    archived), is named once, and has a status of the right kind. An error names the item at fault
    (`component_statuses[1].component_id`), not the whole list."""
    pairs: Iterable[tuple[str, str]] = (
        statuses.items() if isinstance(statuses, Mapping) else (statuses or ())
    )
    result: dict[str, str] = {}
    for index, (component_id, status) in enumerate(pairs):
        item = f"{field}[{index}]"
        if component_id in result:
            raise ComponentListedTwice(
                f"component {component_id} is listed twice in {field}", field=f"{item}.component_id"
            )
        check_component_on_page(component_id, page_components, field=f"{item}.component_id")
        result[component_id] = parse_enum(enum, status, field=f"{item}.component_status").value
    return result


def check_component_on_page(component_id: str, page_components: PageComponents, *, field: str) -> None:
    if component_id not in page_components:
        raise ComponentNotOnPage(
            f"component {component_id} is not a component of this status page (or has been deleted)",
            field=field,
        )


def derive_intervals(updates: Iterable[Update]) -> list[ComponentInterval]:
    """Component impacts / maintenance periods from the updates (docs/architecture.md#notice-rules): a range opens
    when a component enters a non-operational status, and a change of status closes it (and opens the next
    unless the new status is operational). Repeating the current status extends the range. Ordered by
    start, then by the order the update named the components."""
    intervals: list[ComponentInterval] = []
    open_at: dict[str, int] = {}  # component → index of its open interval
    for update in updates:
        for component_id, status in update.component_statuses.items():
            index = open_at.get(component_id)
            if index is not None:
                if intervals[index].status == status:
                    continue
                intervals[index] = replace(intervals[index], end_at=update.published_at)
                del open_at[component_id]
            if status != OPERATIONAL:
                open_at[component_id] = len(intervals)
                intervals.append(ComponentInterval(component_id, status, update.published_at, None))
    return intervals


# Event payload conversions (the events store plain JSON; the aggregate keeps dicts and dataclasses)


def statuses_to_data(statuses: Mapping[str, str]) -> ComponentStatusData:
    return [{"component_id": cid, "component_status": str(status)} for cid, status in statuses.items()]


def statuses_from_data(data: Sequence[Mapping[str, str]]) -> dict[str, str]:
    return {item["component_id"]: item["component_status"] for item in data}


def update_to_data(update: Update) -> dict[str, Any]:
    """An update nested inside an event (the actor and notification flag live on the event itself)."""
    return {
        "id": update.id,
        "published_at": update.published_at,
        "message": update.message,
        "status": update.status,
        "component_statuses": statuses_to_data(update.component_statuses),
    }


def update_from_data(data: Mapping[str, Any], *, notify_subscribers: bool, by: ActorData) -> Update:
    return Update(
        id=data["id"],
        published_at=data["published_at"],
        message=data["message"],
        status=data["status"],
        component_statuses=statuses_from_data(data["component_statuses"]),
        notify_subscribers=notify_subscribers,
        by=by,
    )


# Handlers' shared step


async def create_idempotently(
    store: EventStore,
    cls: type[N],
    idempotency: IdempotencyKey,
    create: Callable[[], N],
    context: CommandContext,
) -> tuple[N, bool]:
    """Create a notice once per idempotency key (docs/architecture.md#notice-rules): a used key returns what it
    created, in its current state, whatever the new request says; a lost race does the same.

    The append itself checks the key, so a valid request costs no extra query. Only a request the rules
    refuse asks whether its key was used before, since a replay must not be refused for what it says."""
    try:
        notice = create()
    except DomainError:
        existing = await store.find_idempotent(idempotency)
        if existing is not None:
            return await load(store, cls, existing), True
        raise
    result = await save(store, notice, context, idempotency=idempotency)
    if result.replayed:
        return await load(store, cls, result.stream_id), True
    return notice, False


async def publish_notice_update(
    store: EventStore,
    cls: type[N],
    notice_id: UUID,
    *,
    page_components: PageComponentsLookup,
    message: str,
    status: str | None = None,
    component_statuses: ComponentStatusesInput | None = None,
    notify_subscribers: bool,
    update_id: str,
    context: CommandContext,
) -> N:
    """CreateStatusPage{Incident,Maintenance}Update. `page_components` is asked for the notice's page's
    components only when the update names components (only the stored notice knows its page); the
    notice loaded for that is the first attempt's, so it is not loaded twice."""
    components: PageComponents = frozenset()
    loaded: N | None = None
    if component_statuses:
        loaded = await load(store, cls, notice_id)
        components = await page_components(loaded.status_page_id)

    def decide(notice: N) -> None:
        notice.publish_update(
            update_id=update_id,
            message=message,
            status=status,
            component_statuses=component_statuses,
            notify_subscribers=notify_subscribers,
            page_components=components,
            at=context.now,
            by=context.actor,
        )

    notice, _ = await execute(store, cls, notice_id, decide, context, loaded=loaded)
    return notice


# Errors


class TooManyUpdates(InvalidValue):
    """Raised when an incident or maintenance window would get more than 100 updates."""

    field = "updates"


class NoticeClosed(InvalidValue):
    """Raised when a resolved incident or a completed maintenance window is given another update."""


class ClosingWithComponentStatuses(InvalidValue):
    """Raised when a resolving or completing update carries component statuses (they all become
    operational by themselves)."""

    field = "component_statuses"


class ComponentNotOnPage(InvalidValue):
    """Raised when an update names a component that is not on the status page or has been deleted."""

    field = "component_statuses"


class ComponentListedTwice(InvalidValue):
    """Raised when one update names the same component twice."""

    field = "component_statuses"


class NoticeNotFound(NotFound):
    """Raised when a command names an incident or maintenance window that does not exist (or was deleted)."""
