"""The maintenance scheduler: a process manager that starts and completes maintenance windows on time
(docs/architecture.md#7-time-and-automation).

Every `interval`, and whenever the `maintenance_schedule` projection changes the schedule, it reads the
windows due at the injected clock's `now` and issues the ordinary automation command for each, as
`system`; then it ticks the public site's clock (`projections.public_site.tick`: indexes whose local day
has turned). One scheduler is active across processes (a session advisory lock); the others stand by.
Correctness does not rest on the lock or on the schedule being current: the aggregate decides, under
optimistic concurrency, whether a step is due, so a racing scheduler, a manual update or a stale schedule
row makes the command a no-op — never a second start, never a step backwards. After downtime the first
pass catches up: a window whose start passed is started and, if its end passed too, completed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from domain.base import SYSTEM, CommandContext
from domain.maintenance import advance_maintenance_automatically
from infra.clock import Clock
from infra.event_store import PostgresEventStore
from infra.follow import CONNECTION_ERRORS, Connect, Follower, Session, lock_key
from infra.ids import new_ulid
from projections import public_site
from projections.maintenance_schedule import CHANNEL as SCHEDULE_CHANNEL
from projections.maintenance_schedule import due

log = logging.getLogger("beacon.scheduler")

LOCK_KEY = lock_key("beacon.scheduler:maintenance")
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
    connect: Connect | None = None
    """Opens the scheduler's own connection for its lock and wake-ups. The projection runner already holds
    one pool connection per projection; the scheduler's would starve the requests of a small pool, so
    servers pass `infra.follow.dedicated`. None borrows a pool connection (tests)."""
    status: SchedulerStatus = field(default_factory=SchedulerStatus)
    _follower: Follower | None = None

    async def start(self) -> None:
        self._follower = Follower(
            "maintenance-scheduler",
            self.connect or self.pool.acquire,
            # The lock's connection is idle between passes, so it also carries the wake-ups: the schedule
            # projection notifies when a batch changed the schedule, e.g. a window created already due.
            channels=[SCHEDULE_CHANNEL],
            poll_interval=self.interval,
            retry_interval=self.interval,
            on_disconnect=self._inactive,
        )
        await self._follower.start(self._step)

    async def stop(self) -> None:
        """Stop (a command in flight either committed or did not) and release the lock."""
        if self._follower is not None:
            await self._follower.stop()
            self._follower = None

    def wake(self) -> None:
        """Run a pass now rather than at the next interval (tests that move a fake clock call this)."""
        if self._follower is not None:
            self._follower.wake()

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

    def _inactive(self) -> None:
        self.status.active = False  # a lost connection took the lock with it

    async def _step(self, session: Session) -> None:
        """One pass if this process holds the scheduler's lock; otherwise stand by and try again later."""
        if not await session.lock(LOCK_KEY):
            self.status.standby_checks += 1
            return
        self.status.active = True
        try:
            await self.run_once(session.conn)
            # The public site's clock: each page's index turns its 90-day bars over at its local midnight.
            await public_site.tick(session.conn, self.clock.now())
        except CONNECTION_ERRORS:
            raise
        except Exception as error:
            # Windows must still start on time after whatever this was, so log it loudly and retry next pass.
            self.status.last_error = f"maintenance scheduler pass failed: {error!r}"
            log.exception("maintenance scheduler pass failed; retrying")
            return
        self.status.passes += 1
