"""Single-event appends per second through `PostgresEventStore.append` against plain asyncpg INSERTs into
an unindexed table, with 1 and 8 concurrent writers, in the same run on the same server. Goal: Beacon
>= 0.5x the plain rate at 8 writers.

Appends are serialised by a table lock (docs/architecture.md#2-serialised-appends), held through each
commit's WAL flush, so appends cannot share Postgres's own group commit the way concurrent plain INSERTs
do. The store therefore group-commits them itself (ADR 0003): concurrent appends queue while one batch
is in flight and go together in the next `beacon_append_many` call, one transaction and one WAL flush
for the batch. With 8 writers that is where the rate comes from; with 1 writer every batch holds one
append.

    .venv/bin/python -m bench.append [seconds-per-measurement]

Uses DATABASE_URL, or the embedded server when unset; works in its own scratch database, dropped at the end.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
from eventsourcing.domain import Aggregate, event

from bench.scratch import scratch_database
from domain.base import SYSTEM, ActorData, BeaconAggregate, CommandContext
from infra.db import create_pool, database_url
from infra.event_store import MAPPER, PostgresEventStore
from infra.migrate import migrate
from infra.settings import Settings

WRITERS = (1, 8)
NOW = datetime(2026, 1, 28, 10, 0, tzinfo=UTC)
MESSAGE = "Investigating elevated error rates"


class Counter(BeaconAggregate):
    """The benchmark's aggregate: one small event per append, like an incident update."""

    TOPIC = "bench.Counter"
    STREAM_TYPE = "bench_counter"

    class Created(Aggregate.Created):
        TOPIC = "bench.Counter.Created"
        by: ActorData

    @event(Created)
    def __init__(self, *, id: uuid.UUID, by: ActorData, timestamp: datetime) -> None:
        self.count = 0

    class Incremented(Aggregate.Event):
        TOPIC = "bench.Counter.Incremented"
        message: str
        by: ActorData

    @event(Incremented)
    def _incremented(self, *, message: str, by: ActorData, timestamp: datetime) -> None:
        self.count += 1


Step = Callable[[], Awaitable[None]]


async def _rate(writers: int, seconds: float, make_writer: Callable[[], Awaitable[Step]]) -> float:
    """Appends per second of `writers` concurrent loops, each calling its own step until time is up."""
    steps = [await make_writer() for _ in range(writers)]
    deadline = time.perf_counter() + seconds
    counts = [0] * writers

    async def run(index: int) -> None:
        step = steps[index]
        while time.perf_counter() < deadline:
            await step()
            counts[index] += 1

    started = time.perf_counter()
    await asyncio.gather(*(run(index) for index in range(writers)))
    return sum(counts) / (time.perf_counter() - started)


async def main(seconds: float) -> None:
    settings = Settings.from_env()
    server = database_url(settings)
    async with scratch_database(server) as url:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
            await conn.execute(
                "CREATE TABLE bench_plain (stream_id uuid, version bigint, topic text, state bytea,"
                " recorded_at timestamptz, actor jsonb)"
            )
        finally:
            await conn.close()
        pool = await create_pool(url, replace(settings, pool_size=max(WRITERS) + 2))
        try:
            await _compare(pool, seconds)
        finally:
            await pool.close()


async def _compare(pool: asyncpg.Pool, seconds: float) -> None:
    store = PostgresEventStore(pool)
    context = CommandContext(now=NOW, actor=SYSTEM, request_id="bench")
    sample = Counter(id=uuid.uuid4(), by=SYSTEM.as_data(), timestamp=NOW)
    sample._incremented(message=MESSAGE, by=SYSTEM.as_data(), timestamp=NOW)
    stored = MAPPER.to_stored_event(sample.collect_events()[-1])

    async def beacon_writer() -> Step:
        counter = Counter(id=uuid.uuid4(), by=SYSTEM.as_data(), timestamp=NOW)
        await store.append(
            counter.collect_events(), stream_type=Counter.STREAM_TYPE, expected_version=0, context=context
        )

        async def step() -> None:
            counter._incremented(message=MESSAGE, by=SYSTEM.as_data(), timestamp=NOW)
            await store.append(
                counter.collect_events(),
                stream_type=Counter.STREAM_TYPE,
                expected_version=counter.version - 1,
                context=context,
            )

        return step

    async def plain_writer() -> Step:
        stream_id, version = uuid.uuid4(), 0

        async def step() -> None:
            nonlocal version
            version += 1
            await pool.execute(
                "INSERT INTO bench_plain VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
                stream_id,
                version,
                stored.topic,
                stored.state,
                NOW,
                '{"type": "system"}',
            )

        return step

    await _rate(2, min(seconds, 1.0), beacon_writer)  # warm up connections and prepared statements
    await _rate(2, min(seconds, 1.0), plain_writer)
    print(f"{'writers':>7}  {'beacon append/s':>15}  {'plain INSERT/s':>14}  {'ratio':>5}")
    for writers in WRITERS:
        beacon = await _rate(writers, seconds, beacon_writer)
        plain = await _rate(writers, seconds, plain_writer)
        print(f"{writers:>7}  {beacon:>15,.0f}  {plain:>14,.0f}  {beacon / plain:>5.2f}")
    print("goal: ratio >= 0.5 at 8 writers")


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0))
