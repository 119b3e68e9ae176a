"""Blue/green projection builds (docs/adr/0006-projection-versions.md): a version of a projection is folded
from the whole log into a shadow schema while whatever serves keeps serving, then moved in at one commit,
so no reader ever sees it partial. Used for a version no database has yet (the worker, `VersionBuilder`)
and for `beacon projections rebuild` (projections/rebuild.py), which thus never empties live tables.

Also here: the readers' heartbeat (`ReaderHeartbeat`: each process records the versions its code reads)
and `retire`, with which the worker drops a version once no live process reads it and a newer one serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

from infra.event_store import PostgresEventStore
from infra.follow import CONNECTION_ERRORS, lock_key
from projections.public_documents import CHANNEL as DOCUMENTS_CHANNEL
from projections.runner import (
    PROJECTIONS_CHANNEL,
    CatchUpState,
    Projection,
    ProjectionRunner,
    advisory_key,
    catch_up_many,
    ensure_tables,
)
from projections.versions import LIVE, is_built, key, quote_ident, schema_of, shadow_schema, version_of, versioned

log = logging.getLogger("beacon.projections")

LIVE_HEARTBEATS = 3
"""A process whose heartbeat is older than this many intervals no longer counts as reading anything."""


def _build_lock(version_key: str) -> int:
    """Held while one version is built into its shadow schema: two builds of one version never share it."""
    return lock_key(f"beacon.projection-build:{version_key}")


async def build(
    conn: asyncpg.Connection,
    store: PostgresEventStore,
    projection: Projection,
    *,
    batch_size: int,
    progress: Callable[[Sequence[CatchUpState]], None] | None = None,
) -> int:
    """Fold the whole log into the version's shadow schema, one transaction per batch, with nothing live
    touched; then `swap_in`. Returns the position it was moved in at."""
    [versioned_projection] = versioned([projection])
    shadow = shadow_schema(versioned_projection)
    lock = _build_lock(versioned_projection.name)
    await conn.execute("SELECT pg_advisory_lock($1)", lock)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(shadow)} CASCADE")
        await ensure_tables(conn, [versioned_projection], shadow)
        await catch_up_many(
            conn, store, [versioned_projection], batch_size=batch_size, schema=shadow, progress=progress
        )
        return await swap_in(conn, store, versioned_projection, batch_size=batch_size)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock)


async def swap_in(
    conn: asyncpg.Connection, store: PostgresEventStore, projection: Projection, *, batch_size: int
) -> int:
    """In one transaction: lock the live checkpoint (a runner of this version waits at its next batch), fold
    into the shadow what the log gained since the build, move the live tables out and the shadow's in
    (ALTER TABLE … SET SCHEMA: no copy), drop the old ones, set the checkpoint, record the version, and tell
    every process (`beacon_projections`, and a full reload of a public-documents source of that name).

    Readers see the old tables or the new ones, never a mix: a reader's statement that waits for the move
    resolves the name again once it commits. The checkpoint only moves forward: the shadow is caught up to
    the head while the live checkpoint, which never passes the head, is locked."""
    version_key = key(projection)
    shadow = shadow_schema(projection)
    live = schema_of(projection)
    retired = shadow.removesuffix("_next") + "_old"
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO public.beacon_projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING", version_key
        )
        live_position: int = await conn.fetchval(
            "SELECT position FROM public.beacon_projection_checkpoints WHERE name = $1 FOR UPDATE", version_key
        )
        states = await catch_up_many(conn, store, [projection], batch_size=batch_size, schema=shadow)
        position = states[version_key].position
        if position < live_position:
            raise RuntimeError(f"{version_key}: the shadow reached {position}, behind the live {live_position}")
        await conn.execute(
            f"CREATE SCHEMA IF NOT EXISTS {quote_ident(live)};"
            f" DROP SCHEMA IF EXISTS {quote_ident(retired)} CASCADE; CREATE SCHEMA {quote_ident(retired)}"
        )
        for table in projection.tables:
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{quote_ident(live)}.{quote_ident(table)}"):
                await conn.execute(
                    f"ALTER TABLE {quote_ident(live)}.{quote_ident(table)} SET SCHEMA {quote_ident(retired)}"
                )
            await conn.execute(f"ALTER TABLE {quote_ident(shadow)}.{quote_ident(table)} SET SCHEMA {quote_ident(live)}")
        await conn.execute(f"DROP SCHEMA {quote_ident(retired)} CASCADE; DROP SCHEMA {quote_ident(shadow)} CASCADE")
        await conn.execute(
            "UPDATE public.beacon_projection_checkpoints SET position = $2, updated_at = now() WHERE name = $1",
            version_key,
            position,
        )
        await conn.execute(
            """INSERT INTO public.beacon_projection_versions (key, name, version, schema_name, tables)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (key) DO UPDATE SET tables = EXCLUDED.tables, built_at = now()""",
            version_key,
            getattr(projection, "base_name", projection.name),
            version_of(projection),
            live,
            list(projection.tables),
        )
        await conn.execute(
            "SELECT pg_notify($1, $2), pg_notify($3, $4)",
            PROJECTIONS_CHANNEL,
            f"{version_key}:{position}",
            DOCUMENTS_CHANNEL,
            f"{version_key}:{position}:0:1",  # every document may have changed: the caches reload the source
        )
    log.info("projection %s: moved in at position %s (schema %s)", version_key, position, live)
    return position


async def unbuilt(pool: asyncpg.Pool, projections: Sequence[Projection]) -> set[str]:
    """Keys of the versions among `projections` that no database build has completed yet."""
    async with pool.acquire() as conn:
        return {key(p) for p in projections if not await is_built(conn, p)}


@dataclass
class VersionBuilder:
    """In the worker: builds each version its code has and the database lacks, one at a time, beside the
    runner (which serves every other projection meanwhile), then hands it to the runner. Holding the
    version's advisory lock while building, it is the version's runner: another worker of the same code
    stands by, and takes over (building from zero) if this one dies."""

    pool: asyncpg.Pool
    store: PostgresEventStore
    projections: Sequence[Projection]
    runner: ProjectionRunner
    batch_size: int = 2500
    retry_interval: float = 1.0
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.runner.unbuilt:
            self._task = asyncio.create_task(self._run(), name="projection-version-builder")

    async def stop(self) -> None:
        await _cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        todo = [p for p in versioned(self.projections) if p.name in self.runner.unbuilt]
        while todo:
            projection = todo[0]
            try:
                if await self._build_one(projection):
                    todo.pop(0)
                    self.runner.built(projection.name)
                    continue
            except CONNECTION_ERRORS as error:
                log.warning("projection %s: build interrupted (%r); trying again", projection.name, error)
            except Exception:
                log.exception("projection %s: build failed; trying again", projection.name)
                if self.runner.on_failure is not None:
                    self.runner.on_failure(projection.name)
            await asyncio.sleep(self.retry_interval)

    async def _build_one(self, projection: Projection) -> bool:
        """Build the version if no other process runs it; True once it is built (here or elsewhere)."""
        async with self.pool.acquire() as conn:
            if await is_built(conn, projection):
                return True
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", advisory_key(projection.name)):
                return False  # another worker builds it
            try:
                log.info(
                    "projection %s: building version %s in a shadow schema", projection.name, version_of(projection)
                )
                await build(conn, self.store, projection, batch_size=self.batch_size)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", advisory_key(projection.name))
        return True


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_until_built(pool: asyncpg.Pool, projections: Sequence[Projection], interval: float) -> None:
    """Until every version this code reads is built: a process must not serve a partial or another
    version's read model (docs/adr/0006-projection-versions.md), so it is not ready before."""
    logged = False
    while missing := await unbuilt(pool, projections):
        if not logged:
            log.warning("waiting for projection versions to be built: %s", ", ".join(sorted(missing)))
            logged = True
        await asyncio.sleep(interval)


@dataclass
class ReaderHeartbeat:
    """Records, every `interval`, that this process reads the given versions; with `retire_old` (the worker)
    also drops versions nobody reads any more (`retire`)."""

    pool: asyncpg.Pool
    keys: list[str]
    interval: float
    retire_old: bool = False
    process: str = field(default_factory=lambda: uuid.uuid4().hex)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._run(), name="projection-readers-heartbeat")

    async def beat(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO public.beacon_projection_readers (process, keys, last_seen) VALUES ($1, $2, now())
                   ON CONFLICT (process) DO UPDATE SET keys = EXCLUDED.keys, last_seen = now()""",
                self.process,
                self.keys,
            )
            if self.retire_old:
                await retire(conn, self.interval * LIVE_HEARTBEATS)

    async def stop(self) -> None:
        await _cancel(self._task)
        self._task = None
        with contextlib.suppress(*CONNECTION_ERRORS, asyncpg.PostgresError):
            async with self.pool.acquire(timeout=2) as conn:
                await conn.execute("DELETE FROM public.beacon_projection_readers WHERE process = $1", self.process)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except (*CONNECTION_ERRORS, asyncpg.PostgresError) as error:
                log.warning("projection readers' heartbeat failed: %r", error)


async def retire(conn: asyncpg.Connection, live_seconds: float) -> list[str]:
    """Drop every version no live process has read for `live_seconds` while a newer version of the same
    projection is read by a live process: its tables (its schema, or its tables in `public`), checkpoint,
    stop and record. A version whose runner is still active somewhere (its advisory lock is held) is left
    for the next beat. Returns the keys dropped."""
    rows = await conn.fetch(
        """WITH live AS (
               SELECT DISTINCT unnest(keys) AS key FROM public.beacon_projection_readers
               WHERE last_seen > now() - make_interval(secs => $1))
           SELECT v.key, v.schema_name, v.tables FROM public.beacon_projection_versions AS v
           WHERE v.key NOT IN (SELECT key FROM live)
             AND EXISTS (SELECT 1 FROM public.beacon_projection_versions AS w JOIN live USING (key)
                         WHERE w.name = v.name AND w.version > v.version)""",
        live_seconds,
    )
    dropped = []
    for row in rows:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", advisory_key(row["key"])):
            continue
        try:
            async with conn.transaction():
                if row["schema_name"] == LIVE:
                    for table in row["tables"]:
                        await conn.execute(f"DROP TABLE IF EXISTS public.{quote_ident(table)} CASCADE")
                else:
                    await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(row['schema_name'])} CASCADE")
                for table in ("beacon_projection_checkpoints", "beacon_projection_stops"):
                    await conn.execute(f"DELETE FROM public.{table} WHERE name = $1", row["key"])
                await conn.execute("DELETE FROM public.beacon_projection_versions WHERE key = $1", row["key"])
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", advisory_key(row["key"]))
        log.info("projection version %s dropped: no live process reads it", row["key"])
        dropped.append(row["key"])
    return dropped
