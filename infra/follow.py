"""Following Postgres from a background task: the one loop behind the projection runner, the maintenance
scheduler, each web process's widget cache and the read-your-writes watermarks.

Each of them keeps a connection of its own, `LISTEN`s for wake-ups, polls as a safety net (a lost
notification only delays), may hold session advisory locks so that one process of many does the work, and
connects again when its connection dies. `Follower` is that loop, written once. The traps it avoids, each
of which a hand-written copy fell into:

- `asyncio.wait_for` on Python 3.11 drops a cancellation that lands in the loop turn in which the awaited
  event is set (CPython gh-86296): stopping a follower right as a wake-up arrived then waited out the whole
  poll interval. Every wait here is `asyncio.timeout` (`wait_set`).
- A pool connection whose backend was terminated is detached from its proxy at once, so asking it
  `is_closed()` raises; the termination callback is the one signal that survives, and it ends the wait
  at once instead of at the next poll.
- A connection returned to a pool whose reset is skipped (`infra.db.StatelessConnection`) keeps its
  listeners and session locks, so both are released explicitly on the way out (a dead one holds neither).
- A database that is down must not be retried in a tight loop, nor a single lost connection wait long:
  the first reconnect after a connection that lived is immediate, then the delay doubles up to
  `retry_interval`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import asyncpg

from infra.db import connection_options
from infra.settings import Settings

log = logging.getLogger("beacon.follow")

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # includes ConnectionDoesNotExistError
    asyncpg.InterfaceError,  # "connection is closed", "released back to the pool"
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown (pg_terminate_backend), query canceled
    asyncpg.exceptions.TransactionRollbackError,  # deadlock, serialization failure
    OSError,  # includes ConnectionError and TimeoutError
    # A pooled connection whose backend was terminated while idle can fail with "cannot switch to state …;
    # another operation is in progress" (asyncpg issue #1069): it is a dead connection too.
    asyncpg.exceptions.InternalClientError,
)
"""Failures of the database or the connection rather than of the follower's own logic: a follower
connects again and carries on after them."""

RETRY_FLOOR = 0.05
"""Seconds before the second reconnect in a row; the delay doubles from here up to `retry_interval`."""

Connect = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]
"""Opens the follower's connection: `pool.acquire` (a pooled one) or a dedicated `asyncpg.connect`."""


def lock_key(name: str) -> int:
    """A stable 63-bit `pg_advisory_lock` key for a name (the same in every process and release)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


async def wait_set(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until `event` is set (True) or `timeout` seconds pass (False; None waits without limit).

    `asyncio.timeout`, not `asyncio.wait_for`: on Python 3.11 wait_for returns the event and swallows a
    cancellation that arrives in the same turn (gh-86296), so the caller's task would not stop."""
    if timeout is None:
        await event.wait()
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
    return event.is_set()


@contextlib.asynccontextmanager
async def dedicated(
    dsn: str, settings: Settings | None = None, *, timeout: float = 60.0
) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, outside any pool (closing it releases its locks and listeners): for a
    follower that would otherwise hold one of a small pool's connections for as long as it runs. With
    `settings` it carries the pool's timeouts and name (`infra.db.connection_options`)."""
    options = connection_options(settings) if settings is not None else {}
    conn: asyncpg.Connection = await asyncpg.connect(dsn, timeout=timeout, **options)
    try:
        yield conn
    finally:
        await conn.close(timeout=timeout)


@dataclass
class Session:
    """One connection of a follower, as its step sees it."""

    conn: asyncpg.Connection
    fresh: bool = True
    """True on the first turn on this connection: whatever was notified before it listened is unknown."""
    locks: set[int] = field(default_factory=set)
    """The advisory locks this connection holds (they live and die with it)."""

    async def lock(self, key: int) -> bool:
        """Hold the session advisory lock `key` (True at once if already held), or False if another
        session holds it."""
        if key in self.locks:
            return True
        if await self.conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            self.locks.add(key)
            return True
        return False


Step = Callable[[Session], Awaitable[None]]
"""One turn of a follower's work: on connecting, on every wake-up and after every poll interval."""


class Follower:
    """A background task that follows the database: connect, `LISTEN` to `channels`, run `step`, wait for
    a wake-up or `poll_interval`, run `step` again, and on a lost connection do it all again."""

    def __init__(
        self,
        name: str,
        connect: Connect,
        *,
        channels: Sequence[str] = (),
        on_notify: Callable[[str, str], bool] | None = None,
        poll_interval: float | None = None,
        retry_interval: float = 1.0,
        retry_on: tuple[type[BaseException], ...] = CONNECTION_ERRORS,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        """`on_notify(channel, payload)` runs in the notification callback and returns whether to wake the
        step (None: every notification wakes it). `poll_interval` None waits for wake-ups only. Errors in
        `retry_on` mean "connect again"; any other error from a step is logged and stops the follower.
        `on_disconnect` runs each time a connection is given up (and on `stop`)."""
        self.name = name
        self.connect = connect
        self.channels = tuple(channels)
        self.on_notify = on_notify
        self.poll_interval = poll_interval
        self.retry_interval = retry_interval
        self.retry_on = retry_on
        self.on_disconnect = on_disconnect
        self.connections = 0
        """Connections this follower has listened on so far (tests and operators: it reconnected)."""
        self.connected = False
        """True while it follows on a live connection (its listeners are registered): the database answered
        then, and its loss would have ended the connection at once (the termination callback)."""
        self._wake = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, step: Step | None = None, *, wait: bool = False) -> None:
        """Follow in a new task. With `wait`, return once the first connection ran its first step or
        failed, so a caller can rely on listening having begun if the database answers."""
        self._task = asyncio.create_task(self.run(step), name=self.name)
        if wait:
            await self._first_attempt.wait()

    async def stop(self) -> None:
        """Cancel the task (a step in flight is interrupted; a transaction in it rolls back) and wait for it."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def wake(self) -> None:
        """Run the step now rather than at the next poll."""
        self._wake.set()

    async def run(self, step: Step | None = None) -> None:
        """The loop itself, until cancelled or a step fails with an error outside `retry_on`."""
        loop = asyncio.get_running_loop()
        delay = 0.0
        while True:
            began = loop.time()
            try:
                async with self.connect() as conn:
                    await self._follow(conn, step)
                log.warning("%s lost its connection; connecting again", self.name)
            except self.retry_on as error:
                log.warning("%s cannot follow the database (%r); connecting again", self.name, error)
            except Exception:
                log.exception("%s stopped", self.name)
                return
            finally:
                self._first_attempt.set()
                if self.on_disconnect is not None:
                    self.on_disconnect()
            # A connection that lived is replaced at once; one that failed young waits longer each time.
            lived = loop.time() - began >= self.retry_interval
            delay = 0.0 if lived else min(self.retry_interval, max(RETRY_FLOOR, delay * 2))
            await asyncio.sleep(delay)

    def _notified(self, _conn: object, _pid: object, channel: str, payload: str) -> None:
        if self.on_notify is None or self.on_notify(channel, payload):
            self._wake.set()

    async def _follow(self, conn: asyncpg.Connection, step: Step | None) -> None:
        lost = asyncio.Event()

        def on_lost(_conn: object) -> None:
            self.connected = False
            lost.set()
            self._wake.set()

        conn.add_termination_listener(on_lost)
        session = Session(conn)
        try:
            for channel in self.channels:
                await conn.add_listener(channel, self._notified)
            self.connections += 1
            self.connected = True
            while not lost.is_set():
                self._wake.clear()
                if step is not None:
                    await step(session)
                session.fresh = False
                self._first_attempt.set()
                await wait_set(self._wake, self.poll_interval)
        finally:
            self.connected = False
            if not lost.is_set():  # the connection goes back to its pool, or is closed
                conn.remove_termination_listener(on_lost)
                with contextlib.suppress(*CONNECTION_ERRORS):
                    for channel in self.channels:
                        await conn.remove_listener(channel, self._notified)
                    if session.locks:
                        await conn.execute(
                            "SELECT pg_advisory_unlock(k) FROM unnest($1::bigint[]) AS k", list(session.locks)
                        )
