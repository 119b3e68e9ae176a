"""The projection runner against the real Postgres (docs/architecture.md#decisions: serialised appends,
projections and checkpoints, read-your-writes): every event applied once, in commit order, even when a
transaction commits late, a runner dies mid-batch, two runners compete, an event is poison or a notification
is lost; and read-your-writes waits for the runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
import pytest

from infra.db import create_pool
from infra.event_store import PostgresEventStore
from infra.settings import Settings
from projections.runner import (
    PROJECTIONS_CHANNEL,
    ProjectionRunner,
    advisory_key,
    catch_up,
    checkpoints,
    ensure_tables,
    lag,
    runner_passes,
    stops,
)
from projections.watermark import Watermarks
from tests.support.builders import T0
from tests.support.polling import wait_until, wait_until_blocked_on_a_lock
from tests.support.projections import EventCounter, Gate, applied_by, counts, seen
from tests.support.tally import APPEND, append_args, write_tally


async def checkpoint_of(pool: asyncpg.Pool, name: str) -> int:
    async with pool.acquire() as conn:
        return (await checkpoints(conn)).get(name, 0)


def reached(pool: asyncpg.Pool, name: str, position: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await checkpoint_of(pool, name) >= position

    return check


@asynccontextmanager
async def running(runner: ProjectionRunner) -> AsyncIterator[ProjectionRunner]:
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


async def test_each_event_is_applied_once_in_order_and_ignored_events_advance_the_checkpoint(
    pool: asyncpg.Pool,
) -> None:
    store = PostgresEventStore(pool)
    counter = EventCounter()
    creations = EventCounter("creations", only_topics=frozenset({"test.Tally.Created"}))
    first, first_positions = await write_tally(store, "first", marks=3)
    second, second_positions = await write_tally(store, "second", marks=1)
    head = second_positions[-1]  # a Marked event, which `creations` ignores

    report = await lag(pool, store, [counter, creations])
    assert [(r.name, r.checkpoint, r.head, r.lag) for r in report] == [
        ("event_counter", 0, head, head),
        ("creations", 0, head, head),
    ]

    runner = ProjectionRunner(pool, store, [counter, creations], poll_interval=0.05, batch_size=3)
    async with running(runner):
        await wait_until(reached(pool, "event_counter", head))
        await wait_until(reached(pool, "creations", head))
        report = await runner.lag()

    async with pool.acquire() as conn:
        assert await seen(conn, counter) == first_positions + second_positions
        assert await counts(conn, counter) == {first.id: 4, second.id: 2}
        assert await seen(conn, creations) == [first_positions[0], second_positions[0]]
        assert await counts(conn, creations) == {first.id: 1, second.id: 1}
        assert await checkpoints(conn) == {"event_counter": head, "creations": head}
    assert all(len(batch) <= 3 for batch in counter.batches)  # several transactions, none re-applied
    assert [(r.name, r.checkpoint, r.head, r.lag, r.active, r.error) for r in report] == [
        ("event_counter", head, head, 0, True, None),
        ("creations", head, head, 0, True, None),
    ]


async def test_a_late_commit_holds_the_runner_back_until_it_commits(pool: asyncpg.Pool, database_url: str) -> None:
    store = PostgresEventStore(pool)
    counter = EventCounter()
    early, late = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        async with running(ProjectionRunner(pool, store, [counter], poll_interval=0.05)) as runner:
            status = runner.statuses[counter.name]
            transaction = early.transaction()
            await transaction.start()
            early_position = await early.fetchval(APPEND, *append_args("early", T0))
            second = asyncio.create_task(late.fetchval(APPEND, *append_args("late", T0 + timedelta(seconds=1))))
            await wait_until_blocked_on_a_lock(early, late.get_server_pid())

            # Two whole passes of the runner start and end while the early transaction is still open.
            passes = status.passes
            runner.wake()
            await wait_until(lambda: _at_least(status.passes, passes + 2))
            assert await seen(early, counter) == []
            assert await checkpoint_of(pool, counter.name) == 0

            await transaction.commit()
            late_position = await second
            await wait_until(reached(pool, counter.name, late_position))

        assert early_position < late_position
        assert await seen(early, counter) == [early_position, late_position]
    finally:
        await early.close()
        await late.close()


async def _at_least(value: int, floor: int) -> bool:
    return value >= floor


@pytest.mark.parametrize(
    "crash", ["runner_cancelled", "connection_killed_between_queries", "connection_killed_in_query"]
)
async def test_a_runner_dying_mid_batch_applies_nothing_twice(
    pool: asyncpg.Pool, database_url: str, crash: str
) -> None:
    store = PostgresEventStore(pool)
    _, positions = await write_tally(store, "before the crash", marks=4)
    gate = Gate(sleep_in_query=crash == "connection_killed_in_query")
    counter = EventCounter(after_event=gate)
    observer = await asyncpg.connect(database_url)
    try:
        runner = ProjectionRunner(pool, store, [counter], poll_interval=0.05)
        await runner.start()
        try:
            await asyncio.wait_for(gate.inside.wait(), 10)  # the first event is written, not committed
            if crash == "runner_cancelled":
                await runner.stop()
                assert await checkpoint_of(pool, counter.name) == 0
                assert await seen(observer, counter) == []
                runner = ProjectionRunner(pool, store, [counter], poll_interval=0.05)
                await runner.start()
            else:
                if crash == "connection_killed_in_query":
                    await wait_until(lambda: _sleeping(observer, gate.backend_pid))
                assert await observer.fetchval("SELECT pg_terminate_backend($1)", gate.backend_pid)
                gate.open.set()
            await wait_until(reached(pool, counter.name, positions[-1]))
            assert runner.statuses[counter.name].error is None
        finally:
            await runner.stop()

        assert counter.batches[0] == counter.batches[-1] == positions  # the batch really ran twice
        await ensure_tables(observer, [counter], "rebuild")
        assert await catch_up(observer, store, counter, schema="rebuild") == positions[-1]
        assert await seen(observer, counter) == await seen(observer, counter, "rebuild") == positions
        assert await counts(observer, counter) == await counts(observer, counter, "rebuild")
    finally:
        await observer.close()


async def _sleeping(observer: asyncpg.Connection, pid: int | None) -> bool:
    return bool(await observer.fetchval("SELECT wait_event = 'PgSleep' FROM pg_stat_activity WHERE pid = $1", pid))


async def test_only_one_runner_applies_and_the_standby_takes_over_from_the_checkpoint(
    pool: asyncpg.Pool, database_url: str, settings: Settings
) -> None:
    store = PostgresEventStore(pool)
    on_a, on_b = EventCounter(tag="a"), EventCounter(tag="b")
    other_process_pool = await create_pool(database_url, settings)
    try:
        runner_a = ProjectionRunner(pool, store, [on_a], poll_interval=0.05)
        runner_b = ProjectionRunner(
            other_process_pool, PostgresEventStore(other_process_pool), [on_b], poll_interval=0.05
        )
        await runner_a.start()
        await wait_until(lambda: _at_least(runner_a.statuses[on_a.name].passes, 1))
        await runner_b.start()
        try:
            _, before = await write_tally(store, "while a is active", marks=2)
            await wait_until(reached(pool, on_a.name, before[-1]))
            await wait_until(lambda: _at_least(runner_b.statuses[on_b.name].standby_checks, 2))
            assert runner_a.statuses[on_a.name].active
            assert not runner_b.statuses[on_b.name].active
            assert on_b.batches == []
            assert await _advisory_holders(pool, on_a.name) == 1

            await runner_a.stop()
            _, after = await write_tally(store, "after a stopped", marks=2)
            await wait_until(reached(pool, on_b.name, after[-1]))
            assert runner_b.statuses[on_b.name].active
        finally:
            await runner_a.stop()
            await runner_b.stop()
        async with pool.acquire() as conn:
            assert await applied_by(conn, on_a) == [(p, "a") for p in before] + [(p, "b") for p in after]
    finally:
        await other_process_pool.close()


async def _advisory_holders(pool: asyncpg.Pool, name: str) -> int:
    key = advisory_key(name)
    holders: int = await pool.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1",
        key >> 32,
        key & 0xFFFFFFFF,
    )
    return holders


async def test_a_poison_event_stops_its_projection_at_that_event_and_only_that_projection(
    pool: asyncpg.Pool,
) -> None:
    store = PostgresEventStore(pool)
    _, positions = await write_tally(store, "poisoned", marks=4)
    poison = positions[2]
    poisoned = EventCounter("poisoned", poison_position=poison)
    healthy = EventCounter("healthy")
    runner = ProjectionRunner(pool, store, [poisoned, healthy], poll_interval=0.05)
    async with running(runner):
        status = runner.statuses[poisoned.name]
        await wait_until(reached(pool, healthy.name, positions[-1]))
        await wait_until(lambda: _at_least(int(status.error is not None), 1))
        _, later = await write_tally(store, "after the poison", marks=0)
        await wait_until(reached(pool, healthy.name, later[-1]))
        report = {r.name: r for r in await runner.lag()}

    assert status.error is not None and f"position {poison}" in status.error
    assert not status.active
    async with pool.acquire() as conn:
        # The events before the poison are applied and checkpointed; the poison and all after it are not.
        assert await checkpoint_of(pool, poisoned.name) == positions[1]
        assert await seen(conn, poisoned) == positions[:2]
        assert await seen(conn, healthy) == positions + later
    assert report[poisoned.name].checkpoint == positions[1]
    assert report[poisoned.name].lag == later[-1] - positions[1]
    assert report[poisoned.name].error == status.error
    assert report[healthy.name].lag == 0


async def test_a_lost_notification_only_delays_until_the_next_poll(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    counter = EventCounter()
    async with running(ProjectionRunner(pool, store, [counter], poll_interval=0.5)):
        _, first = await write_tally(store, "first", marks=0)
        await wait_until(reached(pool, counter.name, first[-1]))

        listener = await _listener_pid(pool)
        assert listener is not None
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", listener)
        await wait_until(lambda: _gone(pool, listener))
        _, second = await write_tally(store, "second", marks=0)
        await wait_until(reached(pool, counter.name, second[-1]), timeout=2.0)

        # ...and the listener comes back on a new connection.
        await wait_until(lambda: _listening_again(pool, listener))
    async with pool.acquire() as conn:
        assert await seen(conn, counter) == first + second


async def _listener_pid(pool: asyncpg.Pool, channel: str = "beacon_events") -> int | None:
    pid: int | None = await pool.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND query = $1 AND pid <> pg_backend_pid()",
        f'LISTEN "{channel}"',
    )
    return pid


async def _gone(pool: asyncpg.Pool, pid: int) -> bool:
    return not await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)


async def _listening_again(pool: asyncpg.Pool, old_pid: int) -> bool:
    pid = await _listener_pid(pool)
    return pid is not None and pid != old_pid


async def test_watermarks_wait_for_the_runner_to_pass_a_position(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    counter = EventCounter()
    watermarks = Watermarks(pool, {counter.name}, poll_interval=0.05)
    await watermarks.start()
    try:
        # No runner has ever run on this database: the write is not reflected, and the wait says so.
        _, unseen = await write_tally(store, "nobody projects me", marks=0)
        assert await watermarks.wait_for(unseen[-1], timeout=0.3) is False

        async with running(ProjectionRunner(pool, store, [counter], poll_interval=0.05)):
            _, written = await write_tally(store, "read your writes", marks=1)
            assert await watermarks.wait_for(written[-1], timeout=10) is True
            async with pool.acquire() as conn:
                assert await seen(conn, counter) == unseen + written  # visible the moment wait_for returns
    finally:
        await watermarks.stop()


async def test_watermarks_listen_again_after_losing_their_connection(pool: asyncpg.Pool) -> None:
    watermarks = Watermarks(pool, {"counter"}, poll_interval=0.05)
    await watermarks.start()
    try:
        listener = await _listener_pid(pool, PROJECTIONS_CHANNEL)
        assert listener is not None
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", listener)
        await wait_until(lambda: _gone(pool, listener))

        # The next wait polls, finds its listening connection gone and listens on a new one...
        assert await watermarks.wait_for(1, timeout=0.3) is False
        assert await _listener_pid(pool, PROJECTIONS_CHANNEL) not in (None, listener)
        # ...where notifications arrive again: with no runner and no checkpoint, only one can move it.
        await pool.execute("SELECT pg_notify($1, 'counter:7')", PROJECTIONS_CHANNEL)
        assert await watermarks.wait_for(7, timeout=5) is True
    finally:
        await watermarks.stop()


async def test_a_standby_watermark_without_a_notification_still_learns_from_checkpoints(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    counter = EventCounter()
    _, written = await write_tally(store, "caught up before anyone listened", marks=1)
    async with pool.acquire() as conn:
        await ensure_tables(conn, [counter])
        await catch_up(conn, store, counter)
    watermarks = Watermarks(pool, {counter.name}, poll_interval=0.05)
    await watermarks.start()
    try:
        assert await watermarks.wait_for(written[-1], timeout=10) is True
    finally:
        await watermarks.stop()


async def test_stopping_as_a_wake_up_arrives_still_stops(pool: asyncpg.Pool) -> None:
    # As for the scheduler (tests/integration/test_scheduler.py): a wake-up landing with the cancellation
    # must not keep the runner going; with asyncio.wait_for on Python 3.11 it waited out the poll interval.
    counter = EventCounter()
    runner = ProjectionRunner(pool, PostgresEventStore(pool), [counter], poll_interval=3600)
    await runner.start()
    await wait_until(lambda: _passes_at_least(runner, counter.name, 1))

    runner.wake()
    stopping = asyncio.create_task(runner.stop())
    done, _ = await asyncio.wait([stopping], timeout=10)
    if not done:
        await runner.stop()  # a second cancellation ends it, so the failure below cannot hang the teardown
    assert done == {stopping}, "stop() hung: the cancellation was lost"


async def _passes_at_least(runner: ProjectionRunner, name: str, passes: int) -> bool:
    return runner.statuses[name].passes >= passes


async def test_writes_wait_on_no_stopped_projection_in_any_process_and_again_once_it_resumes(
    pool: asyncpg.Pool,
) -> None:
    store = PostgresEventStore(pool)
    _, positions = await write_tally(store, "poisoned", marks=2)
    poisoned = EventCounter("poisoned", poison_position=positions[1])
    healthy = EventCounter("healthy")
    names = {poisoned.name, healthy.name}
    here = Watermarks(pool, names, poll_interval=0.05)
    await here.start()
    try:
        async with running(ProjectionRunner(pool, store, [poisoned, healthy], poll_interval=0.05)) as runner:
            await wait_until(lambda: _at_least(int(runner.statuses[poisoned.name].error is not None), 1))
            _, later = await write_tally(store, "after the poison", marks=0)
            # Far longer than the test may take: had the write waited on the stopped projection, wait_for
            # would have run the whole 30 s out and answered False.
            assert await here.wait_for(later[-1], timeout=30) is True
            assert here.stopped == {poisoned.name}  # heard `poisoned:stopped`
            # A process that starts later learns the stop from the table, not from a notification.
            elsewhere = Watermarks(pool, names, poll_interval=0.05)
            await elsewhere.start()
            try:
                assert await elsewhere.wait_for(later[-1], timeout=30) is True
                assert elsewhere.stopped == {poisoned.name}
            finally:
                await elsewhere.stop()
            report = {r.name: r for r in await lag(pool, store, [poisoned, healthy])}
        assert report[poisoned.name].stopped and report[poisoned.name].failed_position == positions[1]
        assert report[poisoned.name].lag == later[-1] - positions[0] and report[poisoned.name].lag_seconds > 0
        assert not report[healthy.name].stopped and report[healthy.name].failed_position is None

        # The fix is deployed and the worker restarts: the projection resumes from its checkpoint and
        # writes wait for it again.
        fixed = EventCounter("poisoned")
        async with running(ProjectionRunner(pool, store, [fixed, healthy], poll_interval=0.05)):
            await wait_until(lambda: _holds(not here.stopped))
            _, resumed = await write_tally(store, "after the fix", marks=0)
            assert await here.wait_for(resumed[-1], timeout=30) is True
            assert here.positions[poisoned.name] >= resumed[-1]
        async with pool.acquire() as conn:
            assert await seen(conn, fixed) == positions + later + resumed
            assert await stops(conn) == {}
        assert not any(r.stopped for r in await lag(pool, store, [fixed, healthy]))
    finally:
        await here.stop()


async def test_a_projection_writes_do_not_wait_for_runs_in_a_pass_of_its_own(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    gate = Gate()
    slow = EventCounter("outbox", writes_wait=False, after_event=gate)
    read_model = EventCounter("read_model")
    assert [[p.name for p in group] for group in runner_passes([slow, read_model])] == [["read_model"], ["outbox"]]
    watermarks = Watermarks(pool, {read_model.name}, poll_interval=0.05)
    await watermarks.start()
    try:
        async with running(ProjectionRunner(pool, store, [slow, read_model], poll_interval=0.05)) as runner:
            _, first = await write_tally(store, "held", marks=0)
            await asyncio.wait_for(gate.inside.wait(), 10)  # the slow projection sits inside its transaction
            _, second = await write_tally(store, "not held", marks=0)
            # The read model commits both writes while the slow one's transaction is still open: they are
            # not in one transaction, so its work cannot delay their commit.
            assert await watermarks.wait_for(second[-1], timeout=30) is True
            assert await checkpoint_of(pool, read_model.name) == second[-1]
            assert await checkpoint_of(pool, slow.name) < first[-1]
            gate.open.set()
            await wait_until(reached(pool, slow.name, second[-1]))
            assert runner.statuses[slow.name].error is None
        async with pool.acquire() as conn:
            assert await seen(conn, slow) == first + second
            assert await seen(conn, read_model) == first + second
    finally:
        await watermarks.stop()


async def _holds(condition: bool) -> bool:
    return condition
