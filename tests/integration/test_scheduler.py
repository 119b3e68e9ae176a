"""Maintenance automation on the real Postgres with a fake clock
(docs/architecture.md#7-time-and-automation): windows start at `start_at` and complete at `end_at` as
`system`, each step with its update, exactly once — with two schedulers, a manual update racing them, a
stale schedule, or a server that slept through the window."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg

from domain.base import CommandContext, load
from domain.maintenance import (
    COMPLETED_MESSAGE,
    STARTED_MESSAGE,
    Maintenance,
    MaintenanceStatus,
    edit_maintenance,
    schedule_maintenance,
)
from domain.notice import publish_notice_update
from infra.clock import FakeClock
from infra.db import create_pool
from infra.event_store import PostgresEventStore
from infra.ids import new_ulid
from infra.settings import Settings
from process_managers.maintenance_scheduler import MaintenanceScheduler
from projections.maintenance_schedule import MaintenanceSchedule, due
from projections.runner import ProjectionRunner, catch_up, ensure_tables
from tests.support.builders import OPERATOR, T0
from tests.support.polling import wait_until

START = T0 + timedelta(hours=1)
END = T0 + timedelta(hours=2)
PAGE = new_ulid(T0)
COMPONENT = new_ulid(T0)

STARTED = "beacon.Maintenance.Started"
COMPLETED = "beacon.Maintenance.Completed"
SYSTEM_DATA = {"type": "system"}


def by_operator(clock: FakeClock) -> CommandContext:
    return CommandContext(now=clock.now(), actor=OPERATOR, request_id="req-test")


async def schedule(
    store: PostgresEventStore,
    clock: FakeClock,
    *,
    start: datetime = START,
    end: datetime = END,
    automate: bool = True,
) -> UUID:
    maintenance_id = uuid4()
    await schedule_maintenance(
        store,
        maintenance_id=maintenance_id,
        status_page_id=PAGE,
        page_components=frozenset({COMPONENT}),
        name="Database upgrade",
        message="We will upgrade the primary database.",
        status=MaintenanceStatus.SCHEDULED.value,
        affected_component_ids=[COMPONENT],
        start_at=start,
        end_at=end,
        automate_maintenance_status=automate,
        notify_subscribers=False,
        idempotency_key=str(maintenance_id),
        update_id=new_ulid(clock.now()),
        context=by_operator(clock),
    )
    return maintenance_id


async def project(pool: asyncpg.Pool) -> None:
    """Bring the schedule up to the log, as the projection runner would."""
    async with pool.acquire() as conn:
        await ensure_tables(conn, [MaintenanceSchedule()])
        await catch_up(conn, PostgresEventStore(pool), MaintenanceSchedule())


async def topics(store: PostgresEventStore, maintenance_id: UUID) -> list[str]:
    return [record.topic for record in await store.read_stream_records(maintenance_id)]


async def automatic_events(store: PostgresEventStore, maintenance_id: UUID) -> list[tuple[str, datetime]]:
    """Every `system`-authored event of the window: (topic, recorded at)."""
    return [
        (record.topic, record.recorded_at)
        for record in await store.read_stream_records(maintenance_id)
        if record.actor == SYSTEM_DATA
    ]


@asynccontextmanager
async def beacon_worker(
    pool: asyncpg.Pool, clock: FakeClock, interval: float = 0.05
) -> AsyncIterator[MaintenanceScheduler]:
    """What `beacon worker` runs for automation: the schedule projection and the scheduler."""
    store = PostgresEventStore(pool)
    runner = ProjectionRunner(pool, store, [MaintenanceSchedule()], poll_interval=0.05)
    scheduler = MaintenanceScheduler(pool, store, clock, interval=interval)
    await runner.start()
    await scheduler.start()
    try:
        yield scheduler
    finally:
        await scheduler.stop()
        await runner.stop()


async def test_a_window_starts_at_start_at_and_completes_at_end_at_as_system_with_an_update(
    pool: asyncpg.Pool,
) -> None:
    store = PostgresEventStore(pool)
    clock = FakeClock(T0)
    scheduler = MaintenanceScheduler(pool, store, clock)
    maintenance_id = await schedule(store, clock)
    await project(pool)

    clock.set(START - timedelta(microseconds=1))
    assert await scheduler.run_once() == 0
    assert (await load(store, Maintenance, maintenance_id)).maintenance_status is MaintenanceStatus.SCHEDULED

    clock.set(START)
    assert await scheduler.run_once() == 1
    started = await load(store, Maintenance, maintenance_id)
    assert started.maintenance_status is MaintenanceStatus.IN_PROGRESS
    assert started.last_update.message == STARTED_MESSAGE
    assert started.last_update.by == SYSTEM_DATA
    assert started.last_update.published_at == START
    assert started.component_statuses == {COMPONENT: "under_maintenance"}

    await project(pool)
    clock.set(END - timedelta(microseconds=1))
    assert await scheduler.run_once() == 0
    clock.set(END + timedelta(seconds=3))
    assert await scheduler.run_once() == 1
    completed = await load(store, Maintenance, maintenance_id)
    assert completed.maintenance_status is MaintenanceStatus.COMPLETE
    assert completed.last_update.message == COMPLETED_MESSAGE
    assert completed.last_update.by == SYSTEM_DATA
    assert completed.component_statuses == {COMPONENT: "operational"}
    assert [update.message for update in completed.updates] == [
        "We will upgrade the primary database.",
        STARTED_MESSAGE,
        COMPLETED_MESSAGE,
    ]
    assert await automatic_events(store, maintenance_id) == [(STARTED, START), (COMPLETED, END + timedelta(seconds=3))]
    assert completed.last_update.published_at == END  # recorded 3 s late, published at the instant it was due

    await project(pool)
    assert await due(pool, END + timedelta(days=365)) == []  # nothing left for automation


async def test_automation_never_moves_a_window_backwards(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    clock = FakeClock(START)
    scheduler = MaintenanceScheduler(pool, store, clock)
    maintenance_id = await schedule(store, clock, start=START, end=END)
    await project(pool)
    assert await scheduler.run_once() == 1

    # The window is moved to start tomorrow while it is in progress: it stays in progress.
    await edit_maintenance(
        store,
        maintenance_id=maintenance_id,
        name="Database upgrade",
        start_at=START + timedelta(days=1),
        end_at=END + timedelta(days=1),
        context=by_operator(clock),
    )
    await project(pool)
    clock.set(END + timedelta(hours=1))
    assert await scheduler.run_once() == 0
    assert (await load(store, Maintenance, maintenance_id)).maintenance_status is MaintenanceStatus.IN_PROGRESS

    clock.set(END + timedelta(days=1))
    assert await scheduler.run_once() == 1
    await project(pool)
    clock.set(T0)  # a clock that jumps back does not reopen it
    assert await scheduler.run_once() == 0
    assert (await load(store, Maintenance, maintenance_id)).maintenance_status is MaintenanceStatus.COMPLETE
    assert [topic for topic, _ in await automatic_events(store, maintenance_id)] == [STARTED, COMPLETED]


async def test_a_manual_update_wins_even_against_a_stale_schedule(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    clock = FakeClock(T0)
    scheduler = MaintenanceScheduler(pool, store, clock)
    maintenance_id = await schedule(store, clock)
    await project(pool)

    clock.set(T0 + timedelta(minutes=10))
    await publish_notice_update(
        store,
        Maintenance,
        maintenance_id,
        page_components=_no_lookup,
        message="Cancelled: the upgrade is no longer needed.",
        status=MaintenanceStatus.COMPLETE.value,
        notify_subscribers=False,
        update_id=new_ulid(clock.now()),
        context=by_operator(clock),
    )
    versions = len(await topics(store, maintenance_id))

    clock.set(END + timedelta(hours=1))
    # The schedule has not seen the manual update yet and still lists the window: the aggregate decides.
    assert await due(pool, clock.now()) == [maintenance_id]
    assert await scheduler.run_once() == 0
    await project(pool)
    assert await due(pool, clock.now()) == []
    assert await scheduler.run_once() == 0

    maintenance = await load(store, Maintenance, maintenance_id)
    assert maintenance.maintenance_status is MaintenanceStatus.COMPLETE
    assert maintenance.last_update.message == "Cancelled: the upgrade is no longer needed."
    assert len(await topics(store, maintenance_id)) == versions
    assert await automatic_events(store, maintenance_id) == []


async def _no_lookup(status_page_id: str) -> frozenset[str]:
    raise AssertionError("an update that names no components needs no lookup")


async def test_two_passes_racing_without_the_lock_record_each_step_once(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    clock = FakeClock(T0)
    windows = [await schedule(store, clock) for _ in range(5)]
    await project(pool)
    clock.set(END)  # both steps due at once

    first, second = MaintenanceScheduler(pool, store, clock), MaintenanceScheduler(pool, store, clock)
    steps = await asyncio.gather(first.run_once(), second.run_once(), first.run_once())

    assert sum(steps) == 2 * len(windows)
    for maintenance_id in windows:
        assert [topic for topic, _ in await automatic_events(store, maintenance_id)] == [STARTED, COMPLETED]


async def test_two_schedulers_on_one_database_start_a_window_once(
    pool: asyncpg.Pool, database_url: str, settings: Settings
) -> None:
    store = PostgresEventStore(pool)
    clock = FakeClock(T0)
    maintenance_id = await schedule(store, clock)
    other_pool = await create_pool(database_url, settings)  # a second process
    try:
        async with beacon_worker(pool, clock) as one, beacon_worker(other_pool, clock) as two:
            await wait_until(lambda: _settled(one, two))
            clock.set(START)
            one.wake()
            two.wake()

            async def started() -> bool:
                return STARTED in await topics(store, maintenance_id)

            await wait_until(started)
            active, standby = (one, two) if one.status.active else (two, one)
            passes, checks = active.status.passes, standby.status.standby_checks
            await wait_until(lambda: _moved_on(active, passes + 3, standby, checks + 2))
    finally:
        await other_pool.close()

    assert [topic for topic, _ in await automatic_events(store, maintenance_id)] == [STARTED]
    assert active.status.steps == 1
    assert standby.status.steps == 0


async def _settled(one: MaintenanceScheduler, two: MaintenanceScheduler) -> bool:
    """One scheduler is active and the other has found it so."""
    return (one.status.active and two.status.standby_checks > 0) or (
        two.status.active and one.status.standby_checks > 0
    )


async def _moved_on(active: MaintenanceScheduler, passes: int, standby: MaintenanceScheduler, checks: int) -> bool:
    return active.status.passes >= passes and standby.status.standby_checks >= checks


async def test_after_downtime_a_window_is_started_then_completed_once_on_start(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    clock = FakeClock(T0)
    async with beacon_worker(pool, clock) as scheduler:
        maintenance_id = await schedule(store, clock)
        await wait_until(lambda: _in_schedule(pool, maintenance_id))
        target = scheduler.status.passes + 2
        await wait_until(lambda: _passes_at_least(scheduler, target))
    # Beacon is stopped; the window's start and end pass while it is down.
    assert await automatic_events(store, maintenance_id) == []
    clock.set(END + timedelta(hours=6))

    async with beacon_worker(pool, clock) as scheduler:

        async def completed() -> bool:
            return COMPLETED in await topics(store, maintenance_id)

        await wait_until(completed)
        target = scheduler.status.passes + 3
        await wait_until(lambda: _passes_at_least(scheduler, target))

    assert await automatic_events(store, maintenance_id) == [(STARTED, clock.now()), (COMPLETED, clock.now())]
    maintenance = await load(store, Maintenance, maintenance_id)
    assert maintenance.maintenance_status is MaintenanceStatus.COMPLETE
    assert [update.message for update in maintenance.updates][1:] == [STARTED_MESSAGE, COMPLETED_MESSAGE]
    assert maintenance.component_statuses == {COMPONENT: "operational"}
    # Recorded at the restart, but the public history says when it happened: the window lasted an hour.
    assert [update.published_at for update in maintenance.updates][1:] == [START, END]
    [period] = maintenance.component_maintenance_periods
    assert (period.start_at, period.end_at) == (START, END)


async def test_a_window_created_already_due_starts_without_waiting_for_the_interval(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    clock = FakeClock(START + timedelta(minutes=5))
    # An interval far longer than the wait below: only the schedule projection's notification can wake it.
    async with beacon_worker(pool, clock, interval=3600) as scheduler:
        await wait_until(lambda: _passes_at_least(scheduler, 1))
        maintenance_id = await schedule(store, clock)

        async def started() -> bool:
            return STARTED in await topics(store, maintenance_id)

        await wait_until(started, timeout=20)
    assert await automatic_events(store, maintenance_id) == [(STARTED, clock.now())]


async def test_only_a_batch_that_changed_the_schedule_wakes_the_scheduler(pool: asyncpg.Pool) -> None:
    """Under write load the shared projection pass commits many times a second; a scheduler woken by each of
    those commits ran its queries as often, for nothing. A window automation has no step for (not
    automated) moves the projection's checkpoint but not its schedule: no pass. An automated one: a pass."""
    store = PostgresEventStore(pool)
    clock = FakeClock(T0)
    async with beacon_worker(pool, clock, interval=3600) as scheduler:
        await wait_until(lambda: _passes_at_least(scheduler, 1))
        passes = scheduler.status.passes

        await schedule(store, clock, automate=False)
        head = await store.max_position()

        async def projected() -> bool:
            query = "SELECT position FROM beacon_projection_checkpoints WHERE name = $1"
            return bool(await pool.fetchval(query, MaintenanceSchedule.name) >= head)

        await wait_until(projected)
        await asyncio.sleep(0.2)  # a wake-up sent at that commit would have run a pass by now
        assert scheduler.status.passes == passes

        await schedule(store, clock)  # automated: its row is new, so the scheduler looks
        await wait_until(lambda: _passes_at_least(scheduler, passes + 1))


async def test_a_window_moved_while_the_scheduler_was_down_starts_when_it_was_moved(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    clock = FakeClock(T0)
    scheduler = MaintenanceScheduler(pool, store, clock)
    maintenance_id = await schedule(store, clock)
    await project(pool)

    # The scheduler is down through START; 30 minutes later an operator moves the window to start at
    # START + 10 min, already past. It cannot have started before the PUT that said so.
    moved_at = START + timedelta(minutes=30)
    clock.set(moved_at)
    await edit_maintenance(
        store,
        maintenance_id=maintenance_id,
        name="Database upgrade",
        start_at=START + timedelta(minutes=10),
        end_at=END,
        context=by_operator(clock),
    )
    await project(pool)
    clock.set(END + timedelta(hours=1))
    assert await scheduler.run_once() == 2

    maintenance = await load(store, Maintenance, maintenance_id)
    assert [update.published_at for update in maintenance.updates][1:] == [moved_at, END]
    assert await automatic_events(store, maintenance_id) == [(STARTED, clock.now()), (COMPLETED, clock.now())]


async def _in_schedule(pool: asyncpg.Pool, maintenance_id: UUID) -> bool:
    return maintenance_id in await due(pool, datetime.max.replace(tzinfo=UTC))


async def _passes_at_least(scheduler: MaintenanceScheduler, passes: int) -> bool:
    return scheduler.status.passes >= passes


async def test_stopping_as_a_wake_up_arrives_still_stops(pool: asyncpg.Pool) -> None:
    # The wake-up completes the wait in the same loop turn the cancellation lands in: asyncio.wait_for
    # (Python 3.11) returned the wake-up and dropped the cancellation, and stop() waited out the interval.
    await project(pool)  # the schedule's table
    scheduler = MaintenanceScheduler(pool, PostgresEventStore(pool), FakeClock(START), interval=3600)
    await scheduler.start()
    await wait_until(lambda: _passes_at_least(scheduler, 1))

    scheduler.wake()
    stopping = asyncio.create_task(scheduler.stop())
    done, _ = await asyncio.wait([stopping], timeout=10)
    if not done:
        await scheduler.stop()  # a second cancellation ends it, so the failure below cannot hang the teardown
    assert done == {stopping}, "stop() hung: the cancellation was lost"
