"""Read-your-writes (DESIGN D6): a write does not answer before the read models have reached the
position it appended. Each process learns projection progress from `NOTIFY beacon_projections`
(sent in the projection's own transaction) and, as a safety net, by reading the checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from projections.runner import CONNECTION_ERRORS, PROJECTIONS_CHANNEL, checkpoints

log = logging.getLogger("beacon.watermark")

RELISTEN_INTERVAL = 1.0  # seconds between tries to listen again after the listening connection was lost
LISTEN_TIMEOUT = 2.0  # seconds to get a connection to listen on (a waiting writer can overrun its wait by this)


class Watermarks:
    """How far each read model has got, as this process last heard; writers wait on it."""

    def __init__(self, pool: asyncpg.Pool, names: set[str], *, poll_interval: float = 0.05) -> None:
        self.pool = pool
        self.names = names
        self.poll_interval = poll_interval
        self.positions: dict[str, int] = dict.fromkeys(names, 0)
        # Replaced on every change: a waiter holds the event current when it started waiting, so a
        # change between its check and its wait is never missed.
        self._changed = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._next_listen_attempt = 0.0
        self._refreshing: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Listen for checkpoint notifications; without them (database unreachable) waits poll instead."""
        listener = None
        try:
            listener = await self.pool.acquire(timeout=LISTEN_TIMEOUT)
            await listener.add_listener(PROJECTIONS_CHANNEL, self._on_notify)
        except CONNECTION_ERRORS as error:
            log.warning("watermarks cannot listen (%r); read-your-writes falls back to polling", error)
            if listener is not None:
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await self.pool.release(listener)
            return
        self._listener = listener

    async def _listen_again(self) -> None:
        """Listen on a new connection once the old one is gone (a database restart, a terminated
        backend); without it every later write would wait for the poll. At most one try a second."""
        if self._listening():
            return
        now = asyncio.get_running_loop().time()
        if now < self._next_listen_attempt:
            return
        self._next_listen_attempt = now + RELISTEN_INTERVAL
        if self._listener is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self.pool.release(self._listener)
            self._listener = None
        await self.start()

    def _listening(self) -> bool:
        if self._listener is None:
            return False
        try:
            return not self._listener.is_closed()
        except asyncpg.InterfaceError:  # the pool already took the dead connection back
            return False

    async def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self._listener.remove_listener(PROJECTIONS_CHANNEL, self._on_notify)
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self.pool.release(self._listener)
            self._listener = None

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        name, _, position = payload.rpartition(":")
        if name in self.positions and position.isdigit():
            self._advance(name, int(position))

    def _advance(self, name: str, position: int) -> None:
        if position > self.positions[name]:
            self.positions[name] = position
            self._changed.set()
            self._changed = asyncio.Event()

    def reached(self, position: int) -> bool:
        return all(self.positions[name] >= position for name in self.names)

    async def refresh(self) -> None:
        """Read the checkpoints; concurrent callers share one query."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._read_checkpoints())
        await asyncio.shield(self._refreshing)

    async def _read_checkpoints(self) -> None:
        async with self.pool.acquire() as conn:
            try:
                known = await checkpoints(conn)
            except asyncpg.UndefinedTableError:
                return  # no runner has ever started on this database: nothing has been projected
        for name, position in known.items():
            if name in self.positions:
                self._advance(name, position)

    async def wait_for(self, position: int, timeout: float) -> bool:
        """True once every read model reflects `position`; False if `timeout` passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        warned = False
        while not self.reached(position):
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("read models did not reach position %s within %.1fs", position, timeout)
                return False
            try:
                async with asyncio.timeout(min(remaining, self.poll_interval)):  # not wait_for: see scheduler.py
                    await self._changed.wait()
                continue  # a notification moved a read model: check again before asking the database
            except TimeoutError:
                pass
            if not self.reached(position):
                try:
                    await self._listen_again()
                    await self.refresh()
                except CONNECTION_ERRORS as error:
                    # The write is recorded either way; keep listening until the deadline.
                    if not warned:
                        log.warning("cannot read projection checkpoints: %r", error)
                        warned = True
        return True
