"""Read-your-writes (docs/architecture.md#6-read-your-writes): a write does not answer before the read
models it waits for have reached the position it appended. Each process learns projection progress from
`NOTIFY beacon_projections` (sent in the projection's own transaction) and, as a safety net, by reading the
checkpoints. A stopped projection is never waited for: it would hold every later write for the whole
timeout."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from infra.follow import CONNECTION_ERRORS, Follower, Session, wait_set
from projections.runner import PROJECTIONS_CHANNEL, parse_progress

log = logging.getLogger("beacon.watermark")

RELISTEN_INTERVAL = 1.0  # at most seconds between tries to listen again while the database is unreachable
LISTEN_TIMEOUT = 2.0  # seconds to get a connection to listen on


class Watermarks:
    """How far each read model that writes wait for has got, as this process last heard; writers wait on it."""

    def __init__(self, pool: asyncpg.Pool, names: set[str], *, poll_interval: float = 0.05) -> None:
        self.pool = pool
        self.names = names
        self.poll_interval = poll_interval
        self.positions: dict[str, int] = dict.fromkeys(names, 0)
        self.stopped: set[str] = set()
        """Projections recorded as stopped: a write does not wait for them until they run again."""
        # Replaced on every change: a waiter holds the event current when it started waiting, so a
        # change between its check and its wait is never missed.
        self._changed = asyncio.Event()
        self._refreshing: asyncio.Future[None] | None = None
        self._follower = Follower(
            "watermarks",
            lambda: pool.acquire(timeout=LISTEN_TIMEOUT),
            channels=[PROJECTIONS_CHANNEL],
            on_notify=self._on_notify,
            retry_interval=RELISTEN_INTERVAL,
        )

    async def start(self) -> None:
        """Listen for checkpoint notifications (again, in the background, whenever the connection is lost);
        without them (database unreachable) waits poll instead."""
        await self._follower.start(self._on_listening, wait=True)

    async def stop(self) -> None:
        await self._follower.stop()

    @property
    def listening(self) -> bool:
        """True while the notifications' connection is alive: the database answers (as of its last word)."""
        return self._follower.connected

    async def _on_listening(self, session: Session) -> None:
        if session.fresh:  # what moved while nobody listened
            try:
                await self.refresh()
            except CONNECTION_ERRORS as error:
                log.warning("cannot read projection checkpoints: %r", error)

    def _on_notify(self, _channel: str, payload: str) -> bool:
        progress = parse_progress(payload)
        if progress is not None and progress[0] in self.positions:
            name, position = progress
            if position is None:
                self._stop(name)
            else:
                self._advance(name, position, running=True)
        return False  # handled here: the follower's step has nothing to do

    def _changed_now(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _advance(self, name: str, position: int, *, running: bool) -> None:
        """A checkpoint read or heard; `running` when it comes from the projection moving (or resuming)."""
        if running and name in self.stopped:
            self.stopped.discard(name)
            log.info("read-your-writes waits for %s again", name)
        if position > self.positions[name]:
            self.positions[name] = position
            self._changed_now()

    def _stop(self, name: str) -> None:
        if name not in self.stopped:
            self.stopped.add(name)
            log.warning("projection %s stopped: writes no longer wait for it", name)
            self._changed_now()

    def reached(self, position: int) -> bool:
        return all(self.positions[name] >= position or name in self.stopped for name in self.names)

    def reached_by(self, name: str, position: int) -> int:
        """How far towards `position` one projection has got, as far as a write waits for it (0 if writes do
        not wait for it): what a cache that follows that projection can be expected to reflect."""
        return min(position, self.positions[name]) if name in self.positions else 0

    async def refresh(self) -> None:
        """Read the checkpoints and the stops; concurrent callers share one query."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._read_checkpoints())
        await asyncio.shield(self._refreshing)

    async def _read_checkpoints(self) -> None:
        async with self.pool.acquire() as conn:
            try:
                rows = await conn.fetch(
                    "SELECT c.name, c.position, s.name IS NOT NULL AS stopped FROM beacon_projection_checkpoints c"
                    " LEFT JOIN beacon_projection_stops s USING (name) WHERE c.name = ANY($1::text[])",
                    list(self.names),
                )
            except asyncpg.UndefinedTableError:
                return  # no runner has ever started on this database: nothing has been projected
        for row in rows:
            if row["stopped"]:
                self._stop(row["name"])
            self._advance(row["name"], row["position"], running=not row["stopped"])

    async def wait_for(self, position: int, timeout: float) -> bool:
        """True once every read model that writes wait for reflects `position` or has stopped; False if
        `timeout` passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        warned = False
        while not self.reached(position):
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("read models did not reach position %s within %.1fs", position, timeout)
                return False
            if await wait_set(self._changed, min(remaining, self.poll_interval)):
                continue  # a notification moved a read model: check again before asking the database
            if not self.reached(position):
                try:
                    await self.refresh()
                except CONNECTION_ERRORS as error:
                    # The write is recorded either way; keep listening until the deadline.
                    if not warned:
                        log.warning("cannot read projection checkpoints: %r", error)
                        warned = True
        return True
