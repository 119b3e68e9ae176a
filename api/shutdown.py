"""Shutdown steps that cannot hang a process: a stuck task or a held connection must never keep
`beacon serve` (or a test's app) from exiting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

import asyncpg

log = logging.getLogger("beacon.shutdown")

SHUTDOWN_STEP_SECONDS = 5.0


async def bounded(step: Awaitable[None], what: str) -> None:
    """A shutdown step that cannot hang the process: after `SHUTDOWN_STEP_SECONDS` it is abandoned
    (what it held is closed with the pools right after)."""
    try:
        await asyncio.wait_for(step, SHUTDOWN_STEP_SECONDS)
    except TimeoutError:
        log.warning("shutdown: %s did not stop within %.0fs; going on", what, SHUTDOWN_STEP_SECONDS)


async def close_pool(pool: asyncpg.Pool) -> None:
    """Close gracefully, or terminate if a connection is still held (a stuck task must not block exit)."""
    try:
        await asyncio.wait_for(pool.close(), SHUTDOWN_STEP_SECONDS)
    except TimeoutError:
        log.warning("shutdown: pool connections still held after %.0fs; terminating them", SHUTDOWN_STEP_SECONDS)
        pool.terminate()
