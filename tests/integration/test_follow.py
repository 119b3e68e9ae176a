"""`infra.follow.Follower`, the one loop behind the projection runner, the scheduler, the widget cache and
the watermarks, against the real Postgres: it wakes on a notification or `wake()`, polls without one,
connects again after its backend is terminated, stops even as a wake-up lands, lets one session of many
hold an advisory lock and releases it on stop."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import asyncpg
import pytest

from infra.db import create_pool
from infra.follow import Follower, Session, dedicated, lock_key, wait_set
from infra.settings import Settings
from tests.support.polling import wait_until

CHANNEL = "beacon_follow_test"
KEY = lock_key("beacon.test:follow")


class Turns:
    """A step that records each turn: its connection's backend pid and whether the session was fresh."""

    def __init__(self, *, lock: bool = False) -> None:
        self.lock = lock
        self.turns: list[tuple[int, bool]] = []
        self.holding: bool | None = None

    async def __call__(self, session: Session) -> None:
        self.turns.append((session.conn.get_server_pid(), session.fresh))
        if self.lock:
            self.holding = await session.lock(KEY)

    def count(self) -> int:
        return len(self.turns)


@asynccontextmanager
async def following(follower: Follower, step: Turns) -> AsyncIterator[Follower]:
    await follower.start(step, wait=True)
    try:
        yield follower
    finally:
        await follower.stop()


def test_lock_key_is_the_first_63_bits_of_the_names_sha256() -> None:
    # Stable across processes and releases: a standby computes the key the active process locked.
    expected = int.from_bytes(hashlib.sha256(b"beacon.projection:incident_list").digest()[:8], "big") >> 1
    assert lock_key("beacon.projection:incident_list") == expected
    assert 0 <= lock_key("anything") < 2**63
    assert lock_key("a") != lock_key("b")


async def test_wait_set_says_whether_the_event_came_or_the_time_ran_out() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_set(event, 10) is True


async def test_a_cancellation_landing_as_the_event_is_set_is_not_lost() -> None:
    # asyncio.wait_for on Python 3.11 returned the event's result and dropped this cancellation (gh-86296).
    event = asyncio.Event()
    waiting = asyncio.create_task(wait_set(event, 3600))
    await asyncio.sleep(0)  # the task is now waiting on the event
    event.set()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_a_notification_or_wake_runs_the_step_and_nothing_else_does(pool: asyncpg.Pool) -> None:
    step = Turns()
    async with following(Follower("test", pool.acquire, channels=[CHANNEL]), step) as follower:
        assert step.turns[0][1] is True  # the first turn on a connection is fresh
        await pool.execute("SELECT pg_notify($1, 'x')", CHANNEL)
        await wait_until(lambda: step.count() == 2)
        follower.wake()
        await wait_until(lambda: step.count() == 3)
        await asyncio.sleep(0.2)  # no poll interval: nothing else runs the step
        assert step.count() == 3
        assert [fresh for _, fresh in step.turns] == [True, False, False]


async def test_on_notify_decides_which_notifications_wake_the_step(pool: asyncpg.Pool) -> None:
    heard: list[str] = []

    def on_notify(_channel: str, payload: str) -> bool:
        heard.append(payload)
        return payload == "wake"

    step = Turns()
    async with following(Follower("test", pool.acquire, channels=[CHANNEL], on_notify=on_notify), step):
        await pool.execute("SELECT pg_notify($1, 'ignore')", CHANNEL)
        await wait_until(lambda: heard == ["ignore"])
        assert step.count() == 1
        await pool.execute("SELECT pg_notify($1, 'wake')", CHANNEL)
        await wait_until(lambda: step.count() == 2)


async def test_without_notifications_the_step_runs_every_poll_interval(pool: asyncpg.Pool) -> None:
    step = Turns()
    async with following(Follower("test", pool.acquire, poll_interval=0.02), step):
        await wait_until(lambda: step.count() >= 4)
    assert len({pid for pid, _ in step.turns}) == 1  # all on one connection


async def test_a_terminated_backend_is_replaced_and_the_next_turn_is_fresh(pool: asyncpg.Pool) -> None:
    step = Turns()
    follower = Follower("test", pool.acquire, channels=[CHANNEL], retry_interval=0.05)
    async with following(follower, step):
        assert follower.connected
        first_pid = step.turns[0][0]
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", first_pid)
        # No poll interval: only the termination callback can end the wait and bring the new connection.
        await wait_until(lambda: step.count() >= 2)
        second_pid, fresh = step.turns[1]
        assert second_pid != first_pid and fresh is True
        assert follower.connections == 2
        # And it listens there: a notification wakes it again.
        await pool.execute("SELECT pg_notify($1, 'x')", CHANNEL)
        await wait_until(lambda: step.count() >= 3)
        assert step.turns[2] == (second_pid, False)
        assert follower.connected
    assert not follower.connected


async def test_stopping_as_a_wake_up_arrives_still_stops(pool: asyncpg.Pool) -> None:
    step = Turns()
    follower = Follower("test", pool.acquire, poll_interval=3600)
    await follower.start(step, wait=True)
    follower.wake()  # completes the wait in the loop turn the cancellation lands in
    stopping = asyncio.create_task(follower.stop())
    done, _ = await asyncio.wait([stopping], timeout=10)
    if not done:
        await follower.stop()  # a second cancellation ends it, so the failure below cannot hang the teardown
    assert done == {stopping}, "stop() hung: the cancellation was lost"


async def test_one_session_holds_the_lock_and_the_other_takes_it_once_released(
    pool: asyncpg.Pool, database_url: str
) -> None:
    one, two = Turns(lock=True), Turns(lock=True)
    first = Follower("one", pool.acquire, poll_interval=0.02)
    second = Follower("two", partial(dedicated, database_url), poll_interval=0.02)
    await first.start(one, wait=True)
    try:
        await second.start(two, wait=True)
        try:
            await wait_until(lambda: two.count() >= 3)
            assert one.holding is True and two.holding is False
            await first.stop()
            await wait_until(lambda: two.holding is True)
        finally:
            await second.stop()
    finally:
        await first.stop()


async def test_stop_releases_the_locks_even_where_the_pool_skips_its_reset(
    database_url: str, settings: Settings
) -> None:
    # A stateless pool (the API's) returns connections without asyncpg's reset, so a session lock would
    # outlive its follower on the pooled connection unless the follower unlocks it itself.
    stateless = await create_pool(database_url, settings, stateless=True, max_size=1)
    try:
        step = Turns(lock=True)
        async with following(Follower("test", stateless.acquire), step):
            assert step.holding is True
        async with stateless.acquire() as conn:  # the very connection the follower held
            assert conn.get_server_pid() == step.turns[0][0]
            # Only this connection's locks: other tests' runners on the same server hold advisory locks too.
            held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            assert not await conn.fetchval(held)
    finally:
        await stateless.close()


async def test_a_step_failing_on_a_connection_error_connects_again_and_any_other_error_stops_it(
    pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    failures = [ConnectionResetError("gone"), ValueError("a bug")]
    turns: list[bool] = []

    async def step(session: Session) -> None:
        turns.append(session.fresh)
        raise failures.pop(0)

    disconnects: list[int] = []
    follower = Follower(
        "failing", pool.acquire, retry_interval=0.05, on_disconnect=lambda: disconnects.append(len(turns))
    )
    with caplog.at_level(logging.WARNING, logger="beacon.follow"):
        await follower.run(step)  # returns: the second error is not the database's
    assert turns == [True, True]  # the retry was a new, fresh connection
    assert disconnects == [1, 2]
    assert "failing stopped" in caplog.text
