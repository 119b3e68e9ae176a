"""How API processes on one database share each key's rate limit without a database round trip per request
(docs/adr/0005-rate-limits-across-processes.md).

Every few seconds each process writes a heartbeat row: that it is alive, and each busy key's demand at
this process (requests per second, let through or not). In the same statement it reads the live rows of
every process, and from them computes its share of each key's limit (`shares`), which its token buckets
then enforce (`api/rate_limit.py`). Shares follow a key's traffic: a key whose requests all reach one
process of four gets nearly its whole limit there. If the database cannot be reached for longer than a
heartbeat's lifetime, the process cannot know who else serves, and falls back to enforcing the whole
limit itself: serving never waits on the heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import asyncpg

from api.errors import DATABASE_UNAVAILABLE
from api.rate_limit import TokenBuckets
from api.services import Services
from api.shutdown import bounded

log = logging.getLogger("beacon.rate_limits")

IDLE_FLOOR = 0.02
"""The part of a busy key's limit spread evenly over all live processes, whatever its traffic. A process
that has not seen the key lately keeps `IDLE_FLOOR / n` of it, so a client whose connection moves to that
process is served at once while the next heartbeats move the share; the process the key's traffic reaches
gets at least `1 - IDLE_FLOOR` of the limit."""

MISSED_BEATS = 3
"""A process whose heartbeat is older than this many intervals is taken for gone."""

_BEAT = """
WITH registered AS (
    INSERT INTO beacon_rate_limit_processes (process_id, host, pid, seen_at, live_processes, demand)
    VALUES ($1, $2, $3, now(), $4, $5::jsonb)
    ON CONFLICT (process_id) DO UPDATE
        SET seen_at = now(), live_processes = EXCLUDED.live_processes, demand = EXCLUDED.demand
), forgotten AS (
    DELETE FROM beacon_rate_limit_processes WHERE seen_at < now() - make_interval(secs => $6::float8 * 10)
)
SELECT demand::text FROM beacon_rate_limit_processes
WHERE process_id <> $1 AND seen_at >= now() - make_interval(secs => $6::float8)
"""
"""Register this process and read every other live one's demand, in one round trip. (Postgres runs a data-
modifying `WITH` whether or not the query reads it; `$6` is a heartbeat's lifetime in seconds, a fraction
too: an integer parameter would round it to nothing.)"""

Demand = Mapping[str, Mapping[str, float]]
"""One process's report: limit name (`api_key`, `retrospective_incidents`) → key id → requests per second."""


def shares(
    demands: Sequence[Mapping[str, float]], mine: int, *, rate: float | None = None
) -> tuple[dict[str, float], float]:
    """Process `mine`'s share of each key's limit, from every live process's demand for one limit; and the
    share of a key no process reported (an even split). For each key the shares of all processes add up
    to one: `IDLE_FLOOR` split evenly, the rest in proportion to demand.

    With the limit's `rate` (requests per second), a key using less than its limit also gets an even split
    of what it leaves unused, wherever its traffic was: a client that made a few calls on one connection and
    then opens others (which the kernel hands to other processes) is not refused at a process that has not
    seen it yet while it is far below its limit. The shares can then add up to more than one, by at most the
    unused part, so a key idle until now can be let through up to twice its burst once; as soon as its demand
    reaches the limit nothing is unused and the shares add up to one again."""
    count = len(demands)
    even = 1.0 / count
    result: dict[str, float] = {}
    for key in set().union(*demands):
        total = sum(demand.get(key, 0.0) for demand in demands)
        if total > 0:
            share = IDLE_FLOOR * even + (1 - IDLE_FLOOR) * demands[mine].get(key, 0.0) / total
            unused = 0.0 if rate is None else max(0.0, 1.0 - total / rate)
            result[key] = max(share, unused * even)
    return result, even


def cautious_shares(
    fresh: Mapping[str, float],
    stored: Mapping[str, float],
    others: Sequence[Mapping[str, float]],
    current: tuple[Mapping[str, float], float],
    *,
    rate: float | None = None,
) -> tuple[dict[str, float], float]:
    """This process's next shares, from its demand now (`fresh`), the demand it reported at its last
    heartbeat (`stored`, what the others have seen of it), the other live processes' latest reports and the
    shares it enforces now (`current`: per key, and the default). A share goes down at once, to what the
    fresh demand gives; it goes up only as far as the stored demand gives, one heartbeat later, once the
    others have had the report to give theirs up. The others compute at other moments from reports of other
    ages: were each to go by its fresh demand alone, processes whose traffic grew together would each see
    itself as the busy one and together allow several times the limit."""
    now, even = shares([fresh, *others], 0, rate=rate)
    before, _ = shares([stored, *others], 0, rate=rate)
    held, held_default = current
    return {
        key: min(now.get(key, even), max(before.get(key, even), held.get(key, held_default)))
        for key in now.keys() | before.keys() | held.keys()
    }, even


class RateShare:
    """The heartbeat of one API process: a periodic task on the API pool that keeps `limits` (by name) at
    this process's share. `live` is how many processes the shares were last computed for (0: none yet, or
    fallen back to the whole limit)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        limits: Mapping[str, TokenBuckets],
        *,
        interval: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.limits = dict(limits)
        self.interval = interval
        self.lifetime = MISSED_BEATS * interval
        self.monotonic = monotonic
        self.process_id = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.live = 0
        self._last_beat: float | None = None
        self._reported: dict[str, dict[str, float]] = {}
        """This process's demand as of its last successful heartbeat: what the others see of it."""
        self._last_success: float | None = None
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register (so the first requests are already held to this process's share), then beat in a task."""
        await self.tick()
        self._task = asyncio.create_task(self._run(), name="rate limit heartbeat")

    async def stop(self) -> None:
        """Stop beating and remove this process's row, so the others take over its share at their next beat."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # Without the database the row stays until it expires, a few heartbeats from now: nothing to report.
        with contextlib.suppress(*DATABASE_UNAVAILABLE, asyncpg.PostgresError):
            async with asyncio.timeout(self.interval):
                await self.pool.execute(
                    "DELETE FROM beacon_rate_limit_processes WHERE process_id = $1", self.process_id
                )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.tick()

    async def tick(self) -> None:
        """One heartbeat. A failure is logged once per outage; once the last success is older than a
        heartbeat's lifetime the others may have come or gone, so this process enforces the whole limit."""
        try:
            async with asyncio.timeout(self.lifetime):
                await self.beat()
        except (*DATABASE_UNAVAILABLE, asyncpg.PostgresError) as error:
            if not self._failing:
                log.warning("rate limit heartbeat failed (%r); enforcing the last shares, then whole limits", error)
                self._failing = True
            stale = self._last_success is None or self.monotonic() - self._last_success > self.lifetime
            if stale and self.live:
                for buckets in self.limits.values():
                    buckets.apply_shares({}, 1.0, self.monotonic())
                self.live = 0
                self._reported = {}
            return
        if self._failing:
            log.info("rate limit heartbeat recovered: %d live processes", self.live)
            self._failing = False

    async def beat(self) -> None:
        """Report this process's demand, read every live process's, and apply the shares."""
        now = self.monotonic()
        elapsed = self.interval if self._last_beat is None else now - self._last_beat
        self._last_beat = now
        demand = {name: buckets.demand(elapsed) for name, buckets in self.limits.items()}
        rows = await self.pool.fetch(
            _BEAT,
            self.process_id,
            self.host,
            os.getpid(),
            self.live or 1,
            json.dumps(demand),
            self.lifetime,
        )
        others: list[Demand] = [json.loads(row["demand"]) for row in rows]
        applied = self.monotonic()
        for name, buckets in self.limits.items():
            stored = self._reported.get(name, {})
            theirs = [other.get(name, {}) for other in others]
            ours = cautious_shares(demand[name], stored, theirs, buckets.shares(), rate=buckets.rate)
            buckets.apply_shares(*ours, applied)
        self._reported = demand
        self.live = 1 + len(others)
        self._last_success = applied


@contextlib.asynccontextmanager
async def sharing_rate_limits(services: Services) -> AsyncIterator[RateShare]:
    """While the block runs, `services`' per-key limits are this process's share of limits shared with every
    API process on the database."""
    heartbeat = RateShare(
        services.pool,
        {"api_key": services.rate_limits, "retrospective_incidents": services.retrospective_limits},
        interval=services.settings.rate_limit_heartbeat_seconds,
    )
    await heartbeat.start()
    try:
        yield heartbeat
    finally:
        await bounded(heartbeat.stop(), "rate limit heartbeat")
