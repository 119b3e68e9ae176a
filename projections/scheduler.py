"""The maintenance scheduler: a process manager that starts and completes maintenance windows on time
(DESIGN D7).

Every `interval`, and whenever the `maintenance_schedule` projection moves, it reads the windows due
at the injected clock's `now` and issues the ordinary automation command for each, as `system`. One
scheduler is active across processes (a session advisory lock); the others stand by. Correctness does
not rest on the lock or on the schedule being current: the aggregate decides, under optimistic
concurrency, whether a step is due, so a racing scheduler, a manual update or a stale schedule row
makes the command a no-op — never a second start, never a step backwards. After downtime the first
pass catches up: a window whose start passed is started and, if its end passed too, completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from domain.base import SYSTEM, CommandContext
from domain.maintenance import advance_maintenance_automatically
from infra.clock import Clock
from infra.event_store import PostgresEventStore
from infra.follow import CONNECTION_ERRORS
from infra.ids import new_ulid
from projections.maintenance_schedule import MaintenanceSchedule, due
from projections.runner import PROJECTIONS_CHANNEL

log = logging.getLogger("beacon.scheduler")

SCHEDULE = MaintenanceSchedule.name
LOCK_KEY = int.from_bytes(hashlib.sha256(b"beacon.scheduler:maintenance").digest()[:8], "big") >> 1
"""The advisory lock that makes one scheduler active across processes."""


@dataclass
class SchedulerStatus:
    """What this process's scheduler has done, for tests and operators."""

    active: bool = False
    """True while this process holds the scheduler's advisory lock."""
    passes: int = 0
    """Completed passes over the due windows while active."""
    steps: int = 0
    """Automatic starts and completions this process recorded."""
    standby_checks: int = 0
    """Times this process found another scheduler active."""
    last_error: str | None = None
    """The last window that could not be advanced, and why (it is retried on the next pass)."""


@dataclass
class MaintenanceScheduler:
    """Moves due maintenance windows forward in this process, or stands by while another process does."""

    pool: asyncpg.Pool
    store: PostgresEventStore
    clock: Clock
    interval: float = 1.0
    dsn: str | None = None
    """Where to open the scheduler's own connection for its lock and wake-ups. The projection runner
    already holds one pool connection per projection; the scheduler's would starve the requests of a
    small pool, so servers pass the database URL. None borrows a pool connection (tests)."""
    status: SchedulerStatus = field(default_factory=SchedulerStatus)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="maintenance-scheduler")

    async def stop(self) -> None:
        """Cancel the loop (a command in flight either committed or did not) and release the lock."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def wake(self) -> None:
        """Run a pass now rather than at the next interval (tests that move a fake clock call this)."""
        self._wake.set()

    async def run_once(self, db: asyncpg.Pool | asyncpg.Connection | None = None) -> int:
        """One pass: every window due now, each advanced as far as it is due. Returns the steps recorded.

        Safe without the advisory lock — two concurrent passes record each step once — which is what the
        lock-free tests rely on. A window that fails (a rule or a conflict that outlasted the retries) is
        logged and retried on the next pass; the others still move."""
        steps = 0
        for maintenance_id in await due(db or self.pool, self.clock.now()):
            try:
                steps += await self.advance(maintenance_id)
            except CONNECTION_ERRORS:
                raise
            except Exception as error:
                # One window's failure (a conflict that outlasted the retries, a bug) must not hold up the
                # others; it is logged loudly and retried next pass.
                self.status.last_error = f"maintenance window {maintenance_id}: {error!r}"
                log.exception("scheduler could not advance maintenance window %s", maintenance_id)
        self.status.steps += steps
        return steps

    async def advance(self, maintenance_id: UUID) -> int:
        """Every automatic step due for one window at the clock's now; 0 if none is (stale row, manual
        update, another scheduler first)."""
        now = self.clock.now()
        _, steps = await advance_maintenance_automatically(
            self.store,
            maintenance_id=maintenance_id,
            new_update_id=lambda: new_ulid(now),
            context=CommandContext(now=now, actor=SYSTEM, request_id=None),
        )
        if steps:
            log.info("maintenance window %s: %d automatic step(s) recorded", maintenance_id, steps)
        return steps

    def _on_projection(self, _conn: object, _pid: object, _channel: object, payload: object) -> None:
        if isinstance(payload, str) and payload.startswith(SCHEDULE + ":"):
            self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._run_while_locked()
            except CONNECTION_ERRORS as error:
                log.warning("maintenance scheduler lost its connection: %r; retrying", error)
            except Exception as error:
                # Windows must still start on time after whatever this was, so log it loudly and retry.
                self.status.last_error = f"maintenance scheduler pass failed: {error!r}"
                log.exception("maintenance scheduler pass failed; retrying")
            await asyncio.sleep(self.interval)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self.dsn is None:
            async with self.pool.acquire() as conn:
                yield conn
            return
        conn = await asyncpg.connect(self.dsn)
        try:
            yield conn
        finally:
            await conn.close()  # closing also releases the lock

    async def _run_while_locked(self) -> None:
        async with self._connection() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                self.status.standby_checks += 1
                return  # another process schedules; stand by and try again later
            try:
                self.status.active = True
                # The lock's connection is idle between passes, so it also carries the wake-ups: the
                # schedule projection notifies each time it commits, e.g. a window created already due.
                await conn.add_listener(PROJECTIONS_CHANNEL, self._on_projection)
                while True:
                    self._wake.clear()
                    await self.run_once(conn)
                    self.status.passes += 1
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
                    # arrives as the event is set (gh-86296), and `stop` then waited out the whole interval.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.interval):
                            await self._wake.wait()
            finally:
                self.status.active = False
                # Returning the connection to the pool also unlocks and unlistens (asyncpg's reset);
                # a dead connection holds no lock. This is the prompt path.
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await conn.remove_listener(PROJECTIONS_CHANNEL, self._on_projection)
                    await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
