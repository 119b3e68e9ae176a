"""What every aggregate shares: who acted, the aggregate base, the event store protocol and the
load–decide–append loop with optimistic concurrency.

The domain never reads the clock, never makes ids and never does I/O except through `EventStore`:
the caller passes `now`, new ids and the actor in a `CommandContext`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Final, Protocol, TypeVar, cast
from uuid import UUID

from eventsourcing.domain import Aggregate

ActorData = dict[str, Any]
"""An actor as stored on events: `{"type": "api_key", "id": …, "name": …}`, `{"type": "system"}` or
`{"type": "public"}`."""


@dataclass(frozen=True)
class Actor:
    """Who issued a command: an API key (its id and name) or Beacon's own automation."""

    type: str
    id: str | None = None
    name: str | None = None

    def as_data(self) -> ActorData:
        if self.type in ("system", "public"):
            return {"type": self.type}
        return {"type": self.type, "id": self.id, "name": self.name}


SYSTEM = Actor(type="system", name="system")
PUBLIC = Actor(type="public")
"""A request from the public page (subscribe, confirm, unsubscribe): recorded with no address or client."""


class Unchanged(Enum):
    """The type of `KEEP`: a command argument the caller left out, as opposed to `None` (cleared).
    Partial updates (a component's or a page's `PUT`) merge on the aggregate, never in the API."""

    KEEP = "keep"


KEEP: Final = Unchanged.KEEP


@dataclass(frozen=True)
class CommandContext:
    """Everything a command needs from outside the domain: when, who, and which request; and, once it
    has run, the log positions it appended (`save` notes them), which read-your-writes waits for."""

    now: datetime
    actor: Actor
    request_id: str | None = None
    appended: list[int] = field(default_factory=list, compare=False)

    @property
    def last_appended(self) -> int:
        """The last position this command appended; 0 when it appended nothing (a no-op or a replay)."""
        return self.appended[-1] if self.appended else 0


@dataclass(frozen=True)
class IdempotencyKey:
    """A client's idempotency key, scoped per status page and per kind (docs/architecture.md#idempotency)."""

    kind: str
    status_page_id: str
    key: str

    @property
    def scope(self) -> str:
        return f"{self.kind}:{self.status_page_id}"


@dataclass(frozen=True)
class AppendResult:
    """What an append did: the positions it took, or that the idempotency key had been used."""

    stream_id: UUID
    positions: Sequence[int] = field(default_factory=tuple)
    replayed: bool = False

    @property
    def last_position(self) -> int:
        return self.positions[-1] if self.positions else 0


class BeaconAggregate(Aggregate):
    """Base of Beacon's aggregates. Every subclass and event class sets an explicit `TOPIC`
    (never the import path) so the stored log survives refactoring; events carry `by`, and the
    library's `timestamp` is the event's `at`, always passed in from the injected clock."""

    STREAM_TYPE = "aggregate"


A = TypeVar("A", bound=BeaconAggregate)


class DomainError(Exception):
    """Base of every rule violation; the API maps each subclass to one status code."""

    field: str | None = None
    code: str = "invalid_value"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field
        if code is not None:
            self.code = code


class NotFound(DomainError):
    """Raised when a command names an aggregate that does not exist."""

    code = "not_found"


class ConcurrencyConflict(Exception):
    """Raised by an event store when the stream moved past the expected version."""

    def __init__(self, stream_id: UUID, expected_version: int) -> None:
        super().__init__(f"stream {stream_id} is no longer at version {expected_version}")
        self.stream_id = stream_id
        self.expected_version = expected_version


class WriteConflict(DomainError):
    """Raised when concurrent writers kept changing an aggregate and the retries ran out."""

    code = "conflict"


class EventStore(Protocol):
    """The domain's view of the event log. `infra.event_store` implements it on Postgres and in memory."""

    async def load(
        self, stream_id: UUID, *, up_to_version: int | None = None, as_of: datetime | None = None
    ) -> list[Aggregate.Event]:
        """The stream's events in version order (optionally only up to a version or an instant)."""
        ...

    async def append(
        self,
        events: Sequence[Aggregate.Event],
        *,
        stream_type: str,
        expected_version: int,
        context: CommandContext,
        idempotency: IdempotencyKey | None = None,
    ) -> AppendResult:
        """Append one stream's new events atomically, or raise `ConcurrencyConflict`.

        With an idempotency key that was used before, appends nothing and returns
        `replayed=True` with the stream the key created."""
        ...

    async def find_idempotent(self, idempotency: IdempotencyKey) -> UUID | None:
        """The stream a used idempotency key created, if any."""
        ...


def replay(events: Sequence[Aggregate.Event]) -> Aggregate | None:
    aggregate: Aggregate | None = None
    for domain_event in events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


async def load(store: EventStore, cls: type[A], stream_id: UUID, *, as_of: datetime | None = None) -> A:
    """The aggregate as its events make it, or `NotFound`."""
    aggregate = replay(await store.load(stream_id, as_of=as_of))
    if not isinstance(aggregate, cls):
        raise NotFound(f"{cls.__name__} {stream_id} not found")
    return aggregate


async def save(
    store: EventStore,
    aggregate: BeaconAggregate,
    context: CommandContext,
    *,
    idempotency: IdempotencyKey | None = None,
) -> AppendResult:
    """Append the aggregate's pending events, expecting the version it was loaded at."""
    pending = cast(list[Aggregate.Event], aggregate.collect_events())
    if not pending:
        return AppendResult(stream_id=aggregate.id)
    result = await store.append(
        pending,
        stream_type=type(aggregate).STREAM_TYPE,
        expected_version=aggregate.version - len(pending),
        context=context,
        idempotency=idempotency,
    )
    context.appended.extend(result.positions)
    return result


MAX_RETRIES = 5


async def execute(
    store: EventStore,
    cls: type[A],
    stream_id: UUID,
    decide: Callable[[A], None],
    context: CommandContext,
    *,
    loaded: A | None = None,
) -> tuple[A, AppendResult]:
    """Load, decide, append; on a concurrent change reload and decide again
    (docs/architecture.md#3-optimistic-concurrency).

    `decide` calls one command method, which raises a `DomainError` if a rule forbids it. After
    `MAX_RETRIES` lost races the writer gets `WriteConflict` (409), never a lost update. A handler that
    already loaded the aggregate passes it as `loaded` for the first attempt (the append's version
    check makes a stale one safe: it only costs a retry)."""
    for attempt in range(MAX_RETRIES):
        aggregate = loaded if attempt == 0 and loaded is not None else await load(store, cls, stream_id)
        decide(aggregate)
        try:
            result = await save(store, aggregate, context)
        except ConcurrencyConflict:
            continue
        return aggregate, result
    raise WriteConflict(f"{cls.__name__} {stream_id} is being changed concurrently; try again")
