"""An in-memory event store with the Postgres store's behaviour (positions, versions, idempotency,
conflicts, the hash chain), so domain handler tests run without a database. The shared contract suite
in `tests/integration/test_event_store_contract.py` holds both stores to the same tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, DomainEventProtocol

from domain.base import AppendResult, CommandContext, ConcurrencyConflict, IdempotencyKey
from infra.db import Fetcher
from infra.event_store import RecordedEvent, event_hash, to_stored_events


class InMemoryEventStore:
    """`domain.base.EventStore` in a list. Appends never await, so each one is atomic on the event loop
    exactly as the table lock makes it on Postgres; hashes are computed like `beacon_event_hash`."""

    def __init__(self) -> None:
        self._log: list[RecordedEvent] = []
        self._streams: dict[UUID, list[RecordedEvent]] = {}
        self._idempotency: dict[tuple[str, str], UUID] = {}

    async def load(
        self, stream_id: UUID, *, up_to_version: int | None = None, as_of: datetime | None = None
    ) -> list[Aggregate.Event]:
        return [
            record.decode()
            for record in self._streams.get(stream_id, [])
            if (up_to_version is None or record.version <= up_to_version)
            and (as_of is None or record.recorded_at <= as_of)
        ]

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
        if idempotency is not None:
            existing = self._idempotency.get((idempotency.scope, idempotency.key))
            if existing is not None:
                return AppendResult(stream_id=existing, replayed=True)
        stream = self._streams.get(stream_id, [])
        if len(stream) != expected_version:
            raise ConcurrencyConflict(stream_id, expected_version)
        previous = self._log[-1].hash if self._log else None
        # As in beacon_append: recorded_at never goes backwards in log order.
        recorded_at = max(context.now, self._log[-1].recorded_at) if self._log else context.now
        records: list[RecordedEvent] = []
        for item in stored:
            record = RecordedEvent(
                position=len(self._log) + len(records) + 1,
                stream_id=stream_id,
                stream_type=stream_type,
                version=item.originator_version,
                topic=item.topic,
                state=item.state,
                recorded_at=recorded_at,
                actor=context.actor.as_data(),
                request_id=context.request_id,
                hash=b"",
            )
            previous = event_hash(previous, record)
            records.append(replace(record, hash=previous))
        self._log.extend(records)
        self._streams.setdefault(stream_id, []).extend(records)
        if idempotency is not None:
            self._idempotency[(idempotency.scope, idempotency.key)] = stream_id
        return AppendResult(stream_id=stream_id, positions=tuple(record.position for record in records))

    async def find_idempotent(self, idempotency: IdempotencyKey) -> UUID | None:
        return self._idempotency.get((idempotency.scope, idempotency.key))

    async def read_all(
        self,
        after: int = 0,
        limit: int = 500,
        *,
        stream_id: UUID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        through: datetime | None = None,
        conn: Fetcher | None = None,
    ) -> list[RecordedEvent]:
        """Same contract as `PostgresEventStore.read_all`; `conn` is accepted and ignored."""
        selected: list[RecordedEvent] = []
        # Positions are 1-based indexes into the log, so `after` is where to start.
        for record in self._log[max(after, 0):]:
            if len(selected) >= limit:
                break
            if stream_id is not None and record.stream_id != stream_id:
                continue
            if since is not None and record.recorded_at < since:
                continue
            if until is not None and record.recorded_at >= until:
                continue
            if through is not None and record.recorded_at > through:
                continue
            selected.append(record)
        return selected

    async def read_stream_records(self, stream_id: UUID) -> list[RecordedEvent]:
        return list(self._streams.get(stream_id, []))

    async def max_position(self) -> int:
        return len(self._log)

