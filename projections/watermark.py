"""Read-your-writes (DESIGN D6): a write does not answer before the read models have reached the
position it appended. Each process learns projection progress from `NOTIFY beacon_projections`
(sent in the projection's own transaction) and, as a safety net, by reading the checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg

from projections.runner import PROJECTIONS_CHANNEL, checkpoints

log = logging.getLogger("beacon.watermark")


class Watermarks:
    def __init__(self, pool: asyncpg.Pool, names: set[str], *, poll_interval: float = 0.05) -> None:
        self.pool = pool
        self.names = names
        self.poll_interval = poll_interval
        self.positions: dict[str, int] = dict.fromkeys(names, 0)
        self._changed = asyncio.Condition()
        self._listener: asyncpg.Connection | None = None

    async def start(self) -> None:
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            self._listener = await self.pool.acquire()
            await self._listener.add_listener(PROJECTIONS_CHANNEL, self._on_notify)

    async def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(asyncpg.PostgresError, OSError, asyncpg.InterfaceError):
                await self._listener.remove_listener(PROJECTIONS_CHANNEL, self._on_notify)
            await self.pool.release(self._listener)
            self._listener = None

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        name, _, position = payload.rpartition(":")
        if name in self.positions and int(position) > self.positions[name]:
            self.positions[name] = int(position)
            asyncio.get_running_loop().create_task(self._notify_waiters())

    async def _notify_waiters(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def reached(self, position: int) -> bool:
        return all(self.positions[name] >= position for name in self.names)

    async def refresh(self) -> None:
        async with self.pool.acquire() as conn:
            for name, position in (await checkpoints(conn)).items():
                if name in self.positions and position > self.positions[name]:
                    self.positions[name] = position

    async def wait_for(self, position: int, timeout: float) -> bool:
        """True once every read model reflects `position`; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while not self.reached(position):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("read models did not reach position %s within %.1fs", position, timeout)
                return False
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(remaining, self.poll_interval))
            if not self.reached(position):
                await self.refresh()
        return True
