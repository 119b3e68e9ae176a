"""Waiting for what happens in the background (a runner, a scheduler, another process): poll a fact until
it holds, and fail the test with TimeoutError if it never does. No test asserts how long it took."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

import asyncpg

from projections.registry import all_projections


async def wait_until(
    check: Callable[[], bool] | Callable[[], Awaitable[bool]], timeout: float = 15.0, interval: float = 0.01
) -> None:
    """Poll `check` (plain or async) until it holds."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(interval)


async def wait_until_blocked_on_a_lock(observer: asyncpg.Connection, pid: int) -> None:
    """Poll the server until backend `pid` waits on a lock (a fact, not a timing guess)."""

    async def blocked() -> bool:
        query = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1"
        return bool(await observer.fetchval(query, pid))

    await wait_until(blocked)


async def projections_behind(pool: asyncpg.Pool) -> tuple[int, set[str]]:
    """The log's head, and the projections whose checkpoint is short of it."""
    names = {projection.name for projection in all_projections()}
    head: int = await pool.fetchval("SELECT coalesce(max(notification_id), 0) FROM beacon_events")
    if not await pool.fetchval("SELECT to_regclass('beacon_projection_checkpoints') IS NOT NULL"):
        return head, names  # no runner has made its tables yet
    rows = await pool.fetch("SELECT name, position FROM beacon_projection_checkpoints")
    return head, names - {row["name"] for row in rows if row["position"] >= head}
