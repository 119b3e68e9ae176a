"""Beacon's event store on Postgres with asyncpg (docs/architecture.md#decisions, 1 to 3).

Events become the library's `StoredEvent`s through `MAPPER` and are written by the server-side
`beacon_append_many` function, which serialises appends under a table lock so positions become visible
in commit order (serialised appends) and checks each expected version (optimistic concurrency).
Concurrent appends share one call and one commit (group commit, ADR 0003). The rows keep the
`eventsourcing` library's layout, so its own `Application` can read them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, cast
from uuid import UUID

import asyncpg
import msgspec
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent

from domain.base import (
    ActorData,
    AppendResult,
    CommandContext,
    ConcurrencyConflict,
    IdempotencyKey,
)
from infra.transcoder import MsgspecTranscoder

MAPPER: Mapper[UUID] = Mapper(transcoder=MsgspecTranscoder())
"""Turns domain events into stored events and back; shared by every store and reader."""

MAX_BATCH = 128
"""Appends sent in one `beacon_append_many` call at most, so one batch never holds the lock for long."""

_APPEND_MANY = (
    "SELECT item, stream_id, event_position, replayed, conflict"
    " FROM beacon_append_many($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
)

# SQLSTATE classes that say something about the server or the moment, not about one append's data:
# connection (08), transaction rollback (40), insufficient resources (53), lock not available (55),
# operator intervention incl. statement timeout (57), system error (58). Re-sending a batch's items one
# by one would only repeat the failure (or the wait) once per item.
_NOT_ABOUT_THE_DATA = frozenset({"08", "40", "53", "55", "57", "58"})

_COLUMNS = (
    "notification_id, originator_id, stream_type, originator_version, topic, state,"
    " recorded_at, actor, request_id, hash"
)


@dataclass(frozen=True)
class RecordedEvent:
    """One row of the log as readers see it: the stored event plus where, when, by whom and its hash."""

    position: int
    stream_id: UUID
    stream_type: str
    version: int
    topic: str
    state: bytes
    recorded_at: datetime
    actor: ActorData
    request_id: str | None
    hash: bytes

    def decode(self) -> Aggregate.Event:
        """The domain event this row stores (upcast to its current class version by the mapper).

        Decoded once per row and kept: a rebuild hands the same rows to every projection, and decoding
        is most of what a projection that ignores the event would otherwise pay for it. Domain events
        are immutable, so sharing one between readers is safe."""
        return self._decoded

    @cached_property
    def _decoded(self) -> Aggregate.Event:
        stored = StoredEvent(
            originator_id=self.stream_id,
            originator_version=self.version,
            topic=self.topic,
            state=self.state,
        )
        return cast(Aggregate.Event, MAPPER.to_domain_event(stored))


def to_stored_events(
    events: Sequence[DomainEventProtocol[UUID]], expected_version: int
) -> tuple[UUID, list[StoredEvent]]:
    """Map one stream's new events, checking they continue the stream from `expected_version`.

    The versions are checked here because the database numbers the rows itself: an aggregate whose
    events disagree with those numbers is a programming error, not a concurrency conflict."""
    if not events:
        raise ValueError("append needs at least one event")
    stored = [MAPPER.to_stored_event(event) for event in events]
    stream_id = stored[0].originator_id
    if not isinstance(stream_id, UUID):
        raise TypeError(f"stream ids are UUIDs, got {stream_id!r}")
    for offset, item in enumerate(stored, start=1):
        if item.originator_id != stream_id:
            raise ValueError("one append writes one stream; got events of two aggregates")
        if item.originator_version != expected_version + offset:
            raise ValueError(
                f"event {item.topic} has version {item.originator_version}, "
                f"expected {expected_version + offset} after version {expected_version}"
            )
    return stream_id, stored


def chain_content(
    *,
    position: int,
    stream_id: UUID,
    version: int,
    topic: str | None,
    stream_type: str,
    recorded_at: datetime,
    actor_text: str,
    request_id: str | None,
) -> bytes:
    """`content(n)` of the hash chain, as the SQL function `beacon_event_hash` builds it (the canonical
    form is spelled out in `infra/audit.py` and docs/auditing.md): the fields joined by "\\n", NULLs
    skipped as Postgres `concat_ws` skips them (only the topic can be NULL). `actor_text` is the actor
    as Postgres prints the jsonb column."""
    fields = (
        str(position),
        str(stream_id),
        str(version),
        topic,
        stream_type,
        recorded_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        actor_text,
        request_id or "",
    )
    return "\n".join(field for field in fields if field is not None).encode()


def chain_link(previous: bytes | None, content: bytes, state: bytes | None) -> bytes:
    """hash(n) = SHA-256(hash(n-1) || content(n) || state(n)), hash(0) being empty."""
    return hashlib.sha256((previous or b"") + content + (state or b"")).digest()


def event_hash(previous: bytes | None, event: RecordedEvent) -> bytes:
    """The chained hash of `event`, computed as the SQL function `beacon_event_hash` does, so the chain
    can be verified (and the in-memory store can build one) without asking the database."""
    content = chain_content(
        position=event.position,
        stream_id=event.stream_id,
        version=event.version,
        topic=event.topic,
        stream_type=event.stream_type,
        recorded_at=event.recorded_at,
        actor_text=jsonb_text(event.actor),
        request_id=event.request_id,
    )
    return chain_link(previous, content, event.state)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def jsonb_text(value: Any) -> str:
    """`value::jsonb::text` as Postgres prints it: keys ordered by length then bytes, `", "` and
    `": "` separators, non-ASCII unescaped. Covers the JSON-native values actors are made of."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        escaped = "".join(_JSON_ESCAPES.get(char) or (f"\\u{ord(char):04x}" if char < " " else char) for char in value)
        return f'"{escaped}"'
    if isinstance(value, dict):
        keys = sorted(value, key=lambda key: (len(key.encode()), key.encode()))
        return "{" + ", ".join(f"{jsonb_text(key)}: {jsonb_text(value[key])}" for key in keys) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(jsonb_text(item) for item in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__} as jsonb text")


def _record(row: asyncpg.Record) -> RecordedEvent:
    return RecordedEvent(
        position=row["notification_id"],
        stream_id=row["originator_id"],
        stream_type=row["stream_type"],
        version=row["originator_version"],
        topic=row["topic"],
        state=row["state"],
        recorded_at=row["recorded_at"],
        actor=msgspec.json.decode(row["actor"]),
        request_id=row["request_id"],
        hash=row["hash"],
    )


@dataclass(frozen=True)
class _Append:
    """One caller's append, waiting in the queue for its batch; `outcome` is what the caller awaits."""

    stream_id: UUID
    stream_type: str
    expected_version: int
    stored: list[StoredEvent]
    recorded_at: datetime
    actor: str
    request_id: str | None
    idempotency: IdempotencyKey | None
    outcome: asyncio.Future[AppendResult]


def _arguments(batch: Sequence[_Append]) -> tuple[Any, ...]:
    """`beacon_append_many`'s parallel arrays: one element per append, the events flattened."""
    events = [item for pending in batch for item in pending.stored]
    return (
        [pending.stream_id for pending in batch],
        [pending.stream_type for pending in batch],
        [pending.expected_version for pending in batch],
        [len(pending.stored) for pending in batch],
        [item.topic for item in events],
        [item.state for item in events],
        [pending.recorded_at for pending in batch],
        [pending.actor for pending in batch],
        [pending.request_id for pending in batch],
        [pending.idempotency.scope if pending.idempotency else None for pending in batch],
        [pending.idempotency.key if pending.idempotency else None for pending in batch],
    )


def _outcome(pending: _Append, rows: Sequence[asyncpg.Record]) -> AppendResult | Exception:
    """What one append of a batch did, from its rows of `beacon_append_many`'s answer."""
    if not rows:
        return RuntimeError(f"beacon_append_many answered nothing for stream {pending.stream_id}")
    if rows[0]["conflict"]:
        return ConcurrencyConflict(pending.stream_id, pending.expected_version)
    if rows[0]["replayed"]:
        return AppendResult(stream_id=rows[0]["stream_id"], replayed=True)
    return AppendResult(stream_id=pending.stream_id, positions=tuple(row["event_position"] for row in rows))


def _failure(pending: _Append, error: Exception) -> Exception:
    """The exception one caller gets when its batch's call failed with `error`."""
    if isinstance(error, asyncpg.UniqueViolationError):
        # The lock makes this unreachable in practice; should it happen, the stream moved on.
        conflict = ConcurrencyConflict(pending.stream_id, pending.expected_version)
        conflict.__cause__ = error
        return conflict
    return error


def _about_one_append(error: Exception) -> bool:
    """Whether `error` may be caused by one append's data, so re-sending the others alone can work."""
    return isinstance(error, asyncpg.PostgresError) and (error.sqlstate or "")[:2] not in _NOT_ABOUT_THE_DATA


def _settle(pending: _Append, outcome: AppendResult | BaseException) -> None:
    if pending.outcome.done():  # its caller was cancelled while the batch was in flight
        return
    if isinstance(outcome, BaseException):
        pending.outcome.set_exception(outcome)
    else:
        pending.outcome.set_result(outcome)


class PostgresEventStore:
    """`domain.base.EventStore` on Postgres, plus the log readers projections and the audit API use.

    Appends are group-committed: the table lock (docs/architecture.md#2-serialised-appends) lets one append
    commit at a time, so concurrent `append` calls queue while one batch is in flight and go together in the
    next, one transaction and one WAL flush for all of them. A lone caller's batch of one is sent at
    once."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._queue: deque[_Append] = deque()
        self._flusher: asyncio.Task[None] | None = None

    async def load(
        self, stream_id: UUID, *, up_to_version: int | None = None, as_of: datetime | None = None
    ) -> list[Aggregate.Event]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM beacon_events WHERE originator_id = $1"
            " AND ($2::bigint IS NULL OR originator_version <= $2)"
            " AND ($3::timestamptz IS NULL OR recorded_at <= $3)"
            " ORDER BY originator_version",
            stream_id,
            up_to_version,
            as_of,
        )
        return [_record(row).decode() for row in rows]

    async def append(
        self,
        events: Sequence[DomainEventProtocol[UUID]],
        *,
        stream_type: str,
        expected_version: int,
        context: CommandContext,
        idempotency: IdempotencyKey | None = None,
    ) -> AppendResult:
        stream_id, stored = to_stored_events(events, expected_version)
        pending = _Append(
            stream_id=stream_id,
            stream_type=stream_type,
            expected_version=expected_version,
            stored=stored,
            recorded_at=context.now,
            actor=msgspec.json.encode(context.actor.as_data()).decode(),
            request_id=context.request_id,
            idempotency=idempotency,
            outcome=asyncio.get_running_loop().create_future(),
        )
        self._queue.append(pending)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_queue(), name="beacon-append-flusher")
        return await pending.outcome

    async def _flush_queue(self) -> None:
        """Send the queued appends a batch at a time until none are left; whatever queues while a batch
        is in flight goes in the next one. Every append taken off the queue is settled, whatever happens."""
        while self._queue:
            batch: list[_Append] = []
            while self._queue and len(batch) < MAX_BATCH:
                pending = self._queue.popleft()
                if not pending.outcome.done():  # a caller cancelled before its batch left appends nothing
                    batch.append(pending)
            try:
                await self._send(batch)
            except Exception as error:  # a bug in here: still answer this batch, then go on with the next
                for pending in batch:
                    _settle(pending, error)
            except BaseException:  # the flusher itself is cancelled (shutdown): leave no caller waiting
                for pending in (*batch, *self._queue):
                    pending.outcome.cancel()
                self._queue.clear()
                raise

    async def _send(self, batch: list[_Append]) -> None:
        """One `beacon_append_many` call for `batch`, each caller settled with its own outcome."""
        if not batch:
            return
        try:
            rows = await self._pool.fetch(_APPEND_MANY, *_arguments(batch))
        except Exception as error:
            if len(batch) > 1 and _about_one_append(error):
                # One append's data failed the whole transaction, so nothing was written: send each
                # alone so only the faulty one gets the error.
                for pending in batch:
                    await self._send([pending])
                return
            for pending in batch:  # connection lost, timeout, ...: nothing was acknowledged to anyone
                _settle(pending, _failure(pending, error))
            return
        by_item: defaultdict[int, list[asyncpg.Record]] = defaultdict(list)
        for row in rows:
            by_item[row["item"]].append(row)
        for index, pending in enumerate(batch, start=1):
            _settle(pending, _outcome(pending, by_item[index]))

    async def find_idempotent(self, idempotency: IdempotencyKey) -> UUID | None:
        stream_id: UUID | None = await self._pool.fetchval(
            "SELECT stream_id FROM beacon_idempotency_keys WHERE scope = $1 AND key = $2",
            idempotency.scope,
            idempotency.key,
        )
        return stream_id

    async def read_all(
        self,
        after: int = 0,
        limit: int = 500,
        *,
        stream_id: UUID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        through: datetime | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> list[RecordedEvent]:
        """Up to `limit` events with position > `after`, in position (= commit) order.

        `since` is inclusive and `until` exclusive on `recorded_at`; `through` is the inclusive bound
        time travel needs ("as of T" includes an event recorded at T). Pass `conn` to read inside the
        caller's transaction (the projection runner does, so its checkpoint and reads agree)."""
        query = (
            f"SELECT {_COLUMNS} FROM beacon_events WHERE notification_id > $1"
            " AND ($2::uuid IS NULL OR originator_id = $2)"
            " AND ($3::timestamptz IS NULL OR recorded_at >= $3)"
            " AND ($4::timestamptz IS NULL OR recorded_at < $4)"
            " AND ($6::timestamptz IS NULL OR recorded_at <= $6)"
            " ORDER BY notification_id LIMIT $5"
        )
        args: tuple[Any, ...] = (after, stream_id, since, until, limit, through)
        rows = await (conn.fetch(query, *args) if conn is not None else self._pool.fetch(query, *args))
        return [_record(row) for row in rows]

    async def read_stream_records(self, stream_id: UUID) -> list[RecordedEvent]:
        """One stream's rows in version order, with their audit columns (the history endpoints)."""
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM beacon_events WHERE originator_id = $1 ORDER BY originator_version",
            stream_id,
        )
        return [_record(row) for row in rows]

    async def max_position(self) -> int:
        """The position of the last committed event, 0 for an empty log."""
        position: int = await self._pool.fetchval("SELECT coalesce(max(notification_id), 0) FROM beacon_events")
        return position
