"""One shared pass over the log for several projections (`catch_up_many`, what rebuilds use): it leaves
each projection exactly where its own `catch_up` would, stops each at its `up_to`, and a poison event
stops only its projection's checkpoint while the others keep the batch. The notice lists' aggregate
cache never serves an aggregate the log does not confirm."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
import pytest

from bench.replay import write_mixed_log
from infra.event_store import PostgresEventStore
from projections import notice_list
from projections.incident_list import incident_list
from projections.rebuild import compare
from projections.registry import all_projections
from projections.runner import ProjectionFailed, catch_up, catch_up_many, checkpoints, ensure_tables, use_schema
from tests.support.projections import EventCounter, counts, seen
from tests.support.tally import write_tally

SHARED = "shared_pass"


async def test_a_shared_pass_equals_one_catch_up_per_projection(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    await write_mixed_log(store, 800, seed=21)
    projections: list[Any] = [*all_projections(), EventCounter()]
    async with pool.acquire() as conn:
        await ensure_tables(conn, projections)
        for projection in projections:
            await catch_up(conn, store, projection, batch_size=64)
        await ensure_tables(conn, projections, SHARED)
        states = await catch_up_many(conn, store, projections, batch_size=100, schema=SHARED)
        end = await store.max_position()
        assert {name: state.position for name, state in states.items()} == {p.name: end for p in projections}
        assert all(state.events == end for state in states.values())  # the mixed log has no gaps
        assert await checkpoints(conn) == {p.name: end for p in projections}
    for projection in projections:
        assert await compare(pool, projection, scratch=SHARED) == [], projection.name


async def test_each_projection_stops_at_its_own_limit(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    _, positions = await write_tally(store, "limits", marks=9)
    early, late, open_ended = EventCounter("early"), EventCounter("late"), EventCounter("open_ended")
    async with pool.acquire() as conn:
        await ensure_tables(conn, [early, late, open_ended])
        states = await catch_up_many(
            conn, store, [early, late, open_ended], batch_size=3, up_to={"early": positions[2], "late": positions[7]}
        )
        assert await seen(conn, early) == positions[:3]
        assert await seen(conn, late) == positions[:8]
        assert await seen(conn, open_ended) == positions
    assert (states["early"].position, states["late"].position, states["open_ended"].position) == (
        positions[2],
        positions[7],
        positions[-1],
    )


async def test_a_limit_in_a_gap_of_positions_ends_the_pass(pool: asyncpg.Pool) -> None:
    """A rolled-back append leaves a position no event has; a limit there must not loop for ever."""
    store = PostgresEventStore(pool)
    _, before = await write_tally(store, "before", marks=1)
    await pool.execute("SELECT nextval(pg_get_serial_sequence('beacon_events', 'notification_id'))")  # the gap
    _, after = await write_tally(store, "after", marks=4)
    counter = EventCounter()
    async with pool.acquire() as conn:
        await ensure_tables(conn, [counter])
        states = await catch_up_many(conn, store, [counter], batch_size=2, up_to={counter.name: before[-1] + 1})
        assert await seen(conn, counter) == before
    assert states[counter.name].position == before[-1] < after[0]


async def test_a_poison_event_stops_its_projection_and_the_others_keep_the_batch(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    tally, positions = await write_tally(store, "poison", marks=5)
    healthy = EventCounter("healthy")
    poisoned = EventCounter("poisoned", poison_position=positions[3])
    async with pool.acquire() as conn:
        await ensure_tables(conn, [healthy, poisoned])
        with pytest.raises(ProjectionFailed) as failed:
            await catch_up_many(conn, store, [healthy, poisoned], batch_size=100)
        assert (failed.value.projection, failed.value.position) == ("poisoned", positions[3])
        assert await checkpoints(conn) == {"healthy": positions[-1], "poisoned": positions[2]}
        assert await seen(conn, healthy) == positions
        assert await seen(conn, poisoned) == positions[:3]
        assert await counts(conn, healthy) == {tally.id: len(positions)}


async def test_a_cached_aggregate_the_log_does_not_confirm_is_not_used(pool: asyncpg.Pool) -> None:
    """The cache is keyed by stream id and lives in the process, so another database (or a log the cache
    never saw) can hold the same stream id at the same version with other events: the hash decides."""
    store = PostgresEventStore(pool)
    await write_mixed_log(store, 400, seed=22)
    projection = incident_list()
    async with pool.acquire() as conn:
        await ensure_tables(conn, [projection])
        await catch_up(conn, store, projection, batch_size=50)
        live = {row["id"]: row["document"] for row in await conn.fetch("SELECT id, document FROM incident_list")}
        # Poison every cached aggregate: right stream and version, wrong name, and a hash the log lacks.
        assert notice_list._folded
        for entry in notice_list._folded.values():
            entry.aggregate.name = "not from this log"  # type: ignore[attr-defined]
            entry.hash = b"\0" * 32
        await ensure_tables(conn, [projection], SHARED)
        await catch_up(conn, store, projection, batch_size=50, schema=SHARED)
        async with conn.transaction():
            await use_schema(conn, SHARED)
            rebuilt = {row["id"]: row["document"] for row in await conn.fetch("SELECT id, document FROM incident_list")}
    assert rebuilt == live
    assert "not from this log" not in {msgspec.json.decode(document)["name"] for document in rebuilt.values()}
