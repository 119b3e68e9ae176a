"""The projection runner (DESIGN D4).

Each projection folds the log into its own tables. The runner owns checkpoints and transactions:
a batch of events and the checkpoint that guards it commit together, so a crash never applies an
event twice or skips one. One runner per projection is active across all processes (a session
advisory lock); the others stand by. It wakes on `NOTIFY beacon_events` and polls as a safety net,
so a lost notification only delays. A projection that fails on an event stops loudly — position,
event and error in the log and in `status()` — and is never skipped past.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg

from infra.event_store import PostgresEventStore, RecordedEvent

log = logging.getLogger("beacon.projections")

CHECKPOINTS_SQL = """
CREATE TABLE IF NOT EXISTS beacon_projection_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
)"""

PROJECTIONS_CHANNEL = "beacon_projections"
EVENTS_CHANNEL = "beacon_events"


class Projection(Protocol):
    """One read model: the tables it owns and how a batch of events changes them."""

    name: str
    tables: tuple[str, ...]
    schema_sql: str
    """`CREATE TABLE IF NOT EXISTS …` with unqualified names, so a rebuild can run it in a scratch schema."""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        """Fold `events` into the tables, inside the runner's transaction. Never commits."""
        ...


class ProjectionFailed(Exception):
    """Raised when a projection cannot apply an event; the projection stops there."""

    def __init__(self, projection: str, event: RecordedEvent, error: BaseException) -> None:
        super().__init__(
            f"projection {projection} stopped at position {event.position} "
            f"({event.topic} on {event.stream_id} v{event.version}): {error!r}"
        )
        self.projection = projection
        self.position = event.position


def advisory_key(name: str) -> int:
    """A stable 63-bit advisory-lock key per projection name."""
    return int.from_bytes(hashlib.sha256(f"beacon.projection:{name}".encode()).digest()[:8], "big") >> 1


async def use_schema(conn: asyncpg.Connection, schema: str) -> None:
    """Point unqualified names at `schema` for this transaction (the live schema is `public`)."""
    if schema != "public":
        await conn.execute(f"SET LOCAL search_path TO {quote_ident(schema)}, public")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def ensure_tables(conn: asyncpg.Connection, projections: Sequence[Projection], schema: str = "public") -> None:
    async with conn.transaction():
        if schema != "public":
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        await use_schema(conn, schema)
        await conn.execute(CHECKPOINTS_SQL)
        for projection in projections:
            await conn.execute(projection.schema_sql)


async def catch_up(
    conn: asyncpg.Connection,
    store: PostgresEventStore,
    projection: Projection,
    *,
    batch_size: int = 500,
    schema: str = "public",
) -> int:
    """Apply every event past the checkpoint, one transaction per batch; return the new checkpoint.

    Safe to call without the advisory lock (the checkpoint row is locked FOR UPDATE), which is how
    rebuilds into scratch schemas use it."""
    while True:
        async with conn.transaction():
            await use_schema(conn, schema)
            await conn.execute(
                "INSERT INTO beacon_projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING",
                projection.name,
            )
            position: int = await conn.fetchval(
                "SELECT position FROM beacon_projection_checkpoints WHERE name = $1 FOR UPDATE",
                projection.name,
            )
            events = await store.read_all(after=position, limit=batch_size, conn=conn)
            if not events:
                return position
            try:
                await projection.apply(conn, events)
            except (asyncpg.PostgresConnectionError, ConnectionError, OSError):
                raise
            except Exception as error:
                raise ProjectionFailed(projection.name, _first_failing(events), error) from error
            position = events[-1].position
            await conn.execute(
                "UPDATE beacon_projection_checkpoints SET position = $2, updated_at = now() WHERE name = $1",
                projection.name,
                position,
            )
            if schema == "public":
                await conn.execute("SELECT pg_notify($1, $2)", PROJECTIONS_CHANNEL, f"{projection.name}:{position}")
        if len(events) < batch_size:
            return position


def _first_failing(events: Sequence[RecordedEvent]) -> RecordedEvent:
    # A batch fails as a whole; name its first event. Re-running one by one would pinpoint it, but
    # the batch is rolled back either way and the operator gets the range from the log.
    return events[0]


@dataclass
class ProjectionStatus:
    name: str
    position: int = 0
    active: bool = False
    error: str | None = None


@dataclass
class ProjectionRunner:
    """Keeps every projection current in this process, or stands by while another process does."""

    pool: asyncpg.Pool
    store: PostgresEventStore
    projections: Sequence[Projection]
    poll_interval: float = 0.5
    batch_size: int = 500
    statuses: dict[str, ProjectionStatus] = field(default_factory=dict)
    _wake: dict[str, asyncio.Event] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        async with self.pool.acquire() as conn:
            await ensure_tables(conn, self.projections)
        for projection in self.projections:
            self.statuses[projection.name] = ProjectionStatus(projection.name)
            self._wake[projection.name] = asyncio.Event()
            self._tasks.append(asyncio.create_task(self._run(projection), name=f"projection:{projection.name}"))
        self._tasks.append(asyncio.create_task(self._listen(), name="projection-listener"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def wake(self) -> None:
        for event in self._wake.values():
            event.set()

    def _on_event(self, *_: object) -> None:
        self.wake()

    async def _listen(self) -> None:
        """Turn `NOTIFY beacon_events` into wake-ups; if the connection drops, reconnect (polling covers the gap)."""
        while True:
            try:
                async with self.pool.acquire() as conn:
                    await conn.add_listener(EVENTS_CHANNEL, self._on_event)
                    try:
                        while not conn.is_closed():
                            await asyncio.sleep(self.poll_interval)
                    finally:
                        if not conn.is_closed():
                            await conn.remove_listener(EVENTS_CHANNEL, self._on_event)
            except (asyncpg.PostgresError, OSError, ConnectionError) as error:
                log.warning("projection listener lost its connection: %r", error)
            await asyncio.sleep(self.poll_interval)

    async def _run(self, projection: Projection) -> None:
        status = self.statuses[projection.name]
        wake = self._wake[projection.name]
        while True:
            try:
                await self._run_while_locked(projection, status, wake)
            except ProjectionFailed as failure:
                status.error = str(failure)
                status.active = False
                log.error("%s", failure, exc_info=failure.__cause__)
                return
            except (asyncpg.PostgresError, OSError, ConnectionError, asyncpg.InterfaceError) as error:
                status.active = False
                log.warning("projection %s lost its connection: %r; retrying", projection.name, error)
            await asyncio.sleep(self.poll_interval)

    async def _run_while_locked(self, projection: Projection, status: ProjectionStatus, wake: asyncio.Event) -> None:
        async with self.pool.acquire() as conn:
            locked = await conn.fetchval("SELECT pg_try_advisory_lock($1)", advisory_key(projection.name))
            if not locked:
                return  # another process is active; stand by and try again later
            try:
                status.active = True
                while True:
                    wake.clear()
                    status.position = await catch_up(conn, self.store, projection, batch_size=self.batch_size)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), self.poll_interval)
            finally:
                status.active = False
                if not conn.is_closed():
                    with contextlib.suppress(asyncpg.PostgresError, OSError):
                        await conn.execute("SELECT pg_advisory_unlock($1)", advisory_key(projection.name))


async def checkpoints(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT name, position FROM beacon_projection_checkpoints")
    return {row["name"]: row["position"] for row in rows}
