"""The nasty cases, on the real Postgres only: racing writers on one stream, fifty identical creates,
and a transaction that commits late (docs/architecture.md: serialised appends and optimistic concurrency;
a concurrent change is never lost, concurrent identical creates make exactly one resource)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from domain.base import AppendResult, IdempotencyKey, WriteConflict, execute, load, save
from infra.event_store import PostgresEventStore, event_hash
from tests.support.builders import OPERATOR, T0, context_at
from tests.support.polling import wait_until_blocked_on_a_lock
from tests.support.tally import APPEND, Tally, append_args, new_tally


class LoadsMeetFirst:
    """A store whose first two loads wait for each other, so two writers are guaranteed to decide on
    the same version and race their appends."""

    def __init__(self, inner: PostgresEventStore) -> None:
        self.inner = inner
        self.loads = 0
        self.barrier = asyncio.Barrier(2)

    async def load(self, stream_id: UUID, **kwargs: Any) -> Any:
        events = await self.inner.load(stream_id, **kwargs)
        self.loads += 1
        if self.loads <= 2:
            await self.barrier.wait()
        return events

    async def append(self, *args: Any, **kwargs: Any) -> AppendResult:
        return await self.inner.append(*args, **kwargs)

    async def find_idempotent(self, idempotency: IdempotencyKey) -> UUID | None:
        return await self.inner.find_idempotent(idempotency)


async def test_two_writers_racing_on_one_stream_both_land_through_a_retry(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    tally = new_tally()
    await save(store, tally, context_at(0))
    racing = LoadsMeetFirst(store)

    def mark(label: str) -> Any:
        return lambda current: current.mark(label, at=T0, by=OPERATOR)

    await asyncio.gather(
        execute(racing, Tally, tally.id, mark("left"), context_at(1)),
        execute(racing, Tally, tally.id, mark("right"), context_at(1)),
    )

    assert racing.loads == 3  # both decided on version 1; the loser reloaded once and decided again
    final = await load(store, Tally, tally.id)
    assert sorted(final.marks) == ["left", "right"]
    assert [r.version for r in await store.read_stream_records(tally.id)] == [1, 2, 3]


async def test_many_racing_writers_lose_nothing_and_keep_versions_contiguous(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    tally = new_tally()
    await save(store, tally, context_at(0))
    labels = [f"w{writer}-{n}" for writer in range(8) for n in range(5)]

    async def write(label: str) -> str | None:
        try:
            await execute(store, Tally, tally.id, lambda t: t.mark(label, at=T0, by=OPERATOR), context_at(1))
        except WriteConflict:
            return None
        return label

    landed = [label for label in await asyncio.gather(*(write(label) for label in labels)) if label]

    final = await load(store, Tally, tally.id)
    assert landed  # retries let writers through even under heavy contention
    assert sorted(final.marks) == sorted(landed)  # every success is there, nothing else, no duplicate
    assert [r.version for r in await store.read_stream_records(tally.id)] == list(range(1, len(landed) + 2))


async def test_fifty_identical_creates_append_exactly_once(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    key = IdempotencyKey(kind="incident", status_page_id="01PAGE", key="same-key")

    results = await asyncio.gather(
        *(save(store, new_tally(f"attempt {n}"), context_at(0), idempotency=key) for n in range(50))
    )

    created = [result for result in results if not result.replayed]
    assert len(created) == 1
    assert {result.stream_id for result in results} == {created[0].stream_id}
    assert sum(result.replayed for result in results) == 49
    log = await store.read_all()
    assert [(r.stream_id, r.version) for r in log] == [(created[0].stream_id, 1)]
    assert await store.find_idempotent(key) == created[0].stream_id


async def test_a_late_commit_is_never_skipped_by_a_reader_following_positions(
    pool: asyncpg.Pool, database_url: str
) -> None:
    store = PostgresEventStore(pool)
    early, late = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        transaction = early.transaction()
        await transaction.start()
        first_position = await early.fetchval(APPEND, *append_args("early", T0))

        second = asyncio.create_task(late.fetchval(APPEND, *append_args("late", T0 + timedelta(seconds=1))))
        await wait_until_blocked_on_a_lock(early, late.get_server_pid())
        assert not second.done()
        # Nothing is visible yet, so a reader cannot move its "last seen position" past the early event.
        assert await store.read_all() == []

        await transaction.commit()
        second_position = await second

        log = await store.read_all()
        assert [r.position for r in log] == [first_position, second_position]
        assert first_position < second_position
        assert log[1].hash == event_hash(log[0].hash, log[1])  # the late append chained onto the early one
    finally:
        await early.close()
        await late.close()


async def test_an_append_in_a_repeatable_read_transaction_is_refused(pool: asyncpg.Pool) -> None:
    """Its snapshot would predate the lock, so it could chain onto a stale hash (a forked chain)."""
    store = PostgresEventStore(pool)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.PostgresError) as raised:
            async with conn.transaction(isolation="repeatable_read"):
                await conn.fetchval(APPEND, *append_args("stale", T0))
    assert raised.value.sqlstate == "B0002"
    assert await store.read_all() == []


async def test_beacon_append_still_raises_b0409_for_a_stale_expected_version(pool: asyncpg.Pool) -> None:
    """SQL callers of the single append (migration 0002 made it a batch of one) keep its contract."""
    store = PostgresEventStore(pool)
    args = append_args("once", T0)
    stream_id = args[0]
    first = await pool.fetchval(APPEND, *args)
    with pytest.raises(asyncpg.PostgresError) as raised:
        await pool.fetchval(APPEND, *args)
    assert raised.value.sqlstate == "B0409"
    assert f"stream {stream_id} is at version 1, expected 0" in str(raised.value)
    assert [r.position for r in await store.read_all()] == [first]
