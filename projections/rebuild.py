"""Rebuilding read models from the log (every read model can be dropped and rebuilt from it, byte for
byte: docs/architecture.md) and checking that claim: rebuild into a scratch schema and compare with the live tables.

The rebuild goes through the runner's own catch-up code (`catch_up_many`, which `catch_up` is one
projection of), so the check exercises the very code that keeps the live tables current. All
projections are rebuilt in one pass: each batch of the log is read and decoded once and handed to each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import asyncpg

from infra.event_store import PostgresEventStore
from projections.blue_green import build
from projections.runner import CatchUpState, Projection, advisory_key, catch_up_many, ensure_tables
from projections.versions import is_rebuildable, quote_ident, schema_of, versioned

REBUILD_BATCH = 2500
"""Events per rebuild transaction: bigger batches render each touched page and notice less often (measured
~10% faster than 1000 on the 100k bench log; 5000 gained nothing more)."""
SHOWN_ROWS = 5
LIVE_STALL_SECONDS = 60.0


@dataclass(frozen=True)
class RebuildProgress:
    """Where a rebuild is: the projection, the position reached, the log's end, and the pace so far."""

    projection: str
    position: int
    end: int
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


ProgressCallback = Callable[[RebuildProgress], None]


@dataclass
class RebuildStats:
    """What a rebuild did: events folded per projection and the wall time of the whole run."""

    events: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    positions: dict[str, int] = field(default_factory=dict)
    projection_seconds: dict[str, float] = field(default_factory=dict)
    """Time spent in each projection's `apply` (reading the log is shared and counted in none)."""

    @property
    def log_events(self) -> int:
        """Events in the log that were replayed (each projection reads them all)."""
        return max(self.events.values(), default=0)

    @property
    def events_per_second(self) -> float:
        """Log events per second through every projection: the figure the benchmark compares."""
        return self.log_events / self.seconds if self.seconds > 0 else 0.0


async def _log_end(conn: asyncpg.Connection) -> int:
    end: int = await conn.fetchval("SELECT coalesce(max(notification_id), 0) FROM beacon_events")
    return end


async def rebuild(
    pool: asyncpg.Pool,
    projections: Sequence[Projection],
    schema: str,
    *,
    progress: ProgressCallback | None = None,
    up_to: Mapping[str, int] | None = None,
    batch_size: int = REBUILD_BATCH,
) -> RebuildStats:
    """Drop and recreate `schema`, create every projection's tables there and fold the whole log into
    them (or each projection up to `up_to[name]`). The live tables are never touched."""
    if schema == "public":
        raise ValueError("rebuild() writes a scratch schema; use rebuild_live() for the live tables")
    stats = RebuildStats()
    started = time.perf_counter()
    async with pool.acquire() as conn:
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
        await ensure_tables(conn, projections, schema)
        await _catch_up_all(pool, conn, projections, schema, stats, progress, up_to, batch_size)
    stats.seconds = time.perf_counter() - started
    return stats


async def _catch_up_all(
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    projections: Sequence[Projection],
    schema: str,
    stats: RebuildStats,
    progress: ProgressCallback | None,
    up_to: Mapping[str, int] | None,
    batch_size: int,
) -> None:
    """Catch every projection up in one shared pass over the log, reporting each one's progress."""
    end = await _log_end(conn)
    started = time.perf_counter()
    reported: dict[str, int] = {}

    def report(states: Sequence[CatchUpState]) -> None:
        if progress is None:
            return
        elapsed = time.perf_counter() - started
        for state in states:
            if reported.get(state.name) != state.position:
                reported[state.name] = state.position
                limit = end if state.limit is None else min(end, state.limit)
                progress(RebuildProgress(state.name, state.position, limit, state.events, elapsed))

    states = await catch_up_many(
        conn,
        PostgresEventStore(pool),
        projections,
        batch_size=batch_size,
        schema=schema,
        up_to=up_to,
        progress=report,
    )
    for name, state in states.items():
        stats.positions[name] = state.position
        stats.events[name] = stats.events.get(name, 0) + state.events
        stats.projection_seconds[name] = stats.projection_seconds.get(name, 0.0) + state.apply_seconds


@dataclass(frozen=True)
class Difference:
    """One table (or checkpoint) where the live read model and its rebuild disagree."""

    projection: str
    table: str
    only_live: int
    only_scratch: int
    live_rows: tuple[tuple[str | None, ...], ...] = ()
    scratch_rows: tuple[tuple[str | None, ...], ...] = ()
    columns: tuple[str, ...] = ()
    note: str = ""

    def describe(self) -> str:
        lines = [
            f"{self.projection}: {self.table}: {self.only_live} row(s) only in live, "
            f"{self.only_scratch} only in the rebuild" + (f" ({self.note})" if self.note else "")
        ]
        if self.columns:
            lines.append("  columns: " + ", ".join(self.columns))
        lines += [f"  live    : {row}" for row in self.live_rows]
        lines += [f"  rebuilt : {row}" for row in self.scratch_rows]
        return "\n".join(lines)


@runtime_checkable
class NeverRebuiltFromZero(Protocol):
    """A projection whose tables are partly history rather than a fold (the notification outbox: what it
    handed the dispatcher must never be handed again). A rebuild calls `reset_for_rebuild` instead of
    emptying its tables, and `replay-check` compares what `replay_differences` says can be compared."""

    rebuildable: bool

    async def reset_for_rebuild(self, conn: asyncpg.Connection) -> None: ...

    async def replay_differences(
        self, conn: asyncpg.Connection, *, live: str, scratch: str, shown: int
    ) -> list[Difference]: ...


class CheckpointMoved(Exception):
    """Raised when the live projection's checkpoint is not where the rebuild stopped, so its tables cannot
    be compared row for row."""

    def __init__(self, projection: str, live: int, scratch: int) -> None:
        super().__init__(f"projection {projection}: live checkpoint {live}, rebuilt to {scratch}")
        self.projection = projection
        self.live = live
        self.scratch = scratch


async def _checkpoint(conn: asyncpg.Connection, schema: str, name: str) -> int:
    position: int | None = await conn.fetchval(
        f"SELECT position FROM {quote_ident(schema)}.beacon_projection_checkpoints WHERE name = $1", name
    )
    return position or 0


async def compare(
    pool: asyncpg.Pool,
    projection: Projection,
    *,
    live: str = "public",
    scratch: str,
    shown: int = SHOWN_ROWS,
) -> list[Difference]:
    """Row-level differences per table between `live` and `scratch` (empty = identical), read in one
    snapshot. Every column is compared as its text form, so bytes (the widget documents) must be equal.

    Raises `CheckpointMoved` when the two are not at the same position: then differences would only
    mean "one has seen more events". `live` is the schema of the projection's live version; its checkpoint
    is in `public` under the version's key (projections/versions.py), which is `projection.name` here."""
    differences: list[Difference] = []
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        live_position = await _checkpoint(conn, "public", projection.name)
        scratch_position = await _checkpoint(conn, scratch, projection.name)
        if live_position != scratch_position:
            raise CheckpointMoved(projection.name, live_position, scratch_position)
        if isinstance(projection, NeverRebuiltFromZero):
            return await projection.replay_differences(conn, live=live, scratch=scratch, shown=shown)
        for table in projection.tables:
            difference = await compare_tables(conn, projection.name, table, live, scratch, shown)
            if difference is not None:
                differences.append(difference)
    return differences


async def compare_tables(
    conn: asyncpg.Connection, name: str, table: str, live: str, scratch: str, shown: int
) -> Difference | None:
    """One table of a projection in `live` against its rebuild in `scratch`, row for row (None if equal)."""
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2"
        " ORDER BY ordinal_position",
        scratch,
        table,
    )
    columns = tuple(row["column_name"] for row in rows)
    live_columns = {
        row["column_name"]
        for row in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
            live,
            table,
        )
    }
    if set(columns) != live_columns:
        return Difference(
            name, table, 0, 0, note=f"columns differ: live {sorted(live_columns)}, rebuilt {sorted(columns)}"
        )
    select = ", ".join(f"{quote_ident(column)}::text" for column in columns)
    order = ", ".join(str(index) for index in range(1, len(columns) + 1))
    live_table = f"{quote_ident(live)}.{quote_ident(table)}"
    scratch_table = f"{quote_ident(scratch)}.{quote_ident(table)}"

    async def one_side(first: str, second: str) -> tuple[int, tuple[tuple[str | None, ...], ...]]:
        query = f"SELECT {select} FROM {first} EXCEPT ALL SELECT {select} FROM {second}"
        count: int = await conn.fetchval(f"SELECT count(*) FROM ({query}) AS d")
        sample = await conn.fetch(f"{query} ORDER BY {order} LIMIT {int(shown)}")
        return count, tuple(tuple(row) for row in sample)

    only_live, live_rows = await one_side(live_table, scratch_table)
    only_scratch, scratch_rows = await one_side(scratch_table, live_table)
    if not only_live and not only_scratch:
        return None
    return Difference(name, table, only_live, only_scratch, live_rows, scratch_rows, columns)


async def replay_check(
    pool: asyncpg.Pool,
    projections: Sequence[Projection],
    schema: str,
    *,
    progress: ProgressCallback | None = None,
    attempts: int = 5,
) -> tuple[RebuildStats, list[Difference]]:
    """Rebuild every projection into `schema` up to where its live checkpoint is, and compare. If a live
    projection moves on meanwhile (the worker is running), the rebuild follows it and compares again."""
    projections = versioned(projections)  # each under its version's key, compared with its version's schema
    async with pool.acquire() as conn:
        await ensure_tables(conn, projections)  # a projection never run live still has (empty) tables
        live = {p.name: await _checkpoint(conn, "public", p.name) for p in projections}
    stats = await rebuild(pool, projections, schema, progress=progress, up_to=live)
    differences: list[Difference] = []
    for projection in projections:
        for attempt in range(attempts):
            try:
                # State the log does not hold (the public site's clock); a later version's own code has it.
                after_rebuild = getattr(getattr(projection, "inner", projection), "after_rebuild", None)
                if after_rebuild is not None:
                    async with pool.acquire() as conn:
                        await after_rebuild(conn, live=schema_of(projection), scratch=schema)
                differences += await compare(pool, projection, live=schema_of(projection), scratch=schema)
                break
            except CheckpointMoved as moved:
                if attempt == attempts - 1 or moved.live < moved.scratch:
                    differences.append(
                        Difference(projection.name, "beacon_projection_checkpoints", 0, 0, note=str(moved))
                    )
                    break
                async with pool.acquire() as conn:
                    await _catch_up_all(
                        pool,
                        conn,
                        [projection],
                        schema,
                        stats,
                        progress,
                        {projection.name: moved.live},
                        REBUILD_BATCH,
                    )
    return stats, differences


class UnknownProjection(Exception):
    """Raised when a rebuild names a projection that is not registered."""


async def rebuild_live(
    pool: asyncpg.Pool,
    name: str,
    projections: Sequence[Projection],
    *,
    progress: ProgressCallback | None = None,
    batch_size: int = REBUILD_BATCH,
) -> RebuildStats:
    """Rebuild one live projection from zero: empty its tables and reset its checkpoint in one
    transaction, then fold the whole log into it again (see `rebuild_live_many`)."""
    return await rebuild_live_many(pool, [name], projections, progress=progress, batch_size=batch_size)


async def rebuild_live_many(
    pool: asyncpg.Pool,
    names: Sequence[str],
    projections: Sequence[Projection],
    *,
    progress: ProgressCallback | None = None,
    batch_size: int = REBUILD_BATCH,
) -> RebuildStats:
    """Rebuild the named live projections from zero, blue/green (projections/blue_green.py): each is folded
    into a shadow schema while its live tables keep serving and its runner, wherever it is, keeps them
    current; then the shadow is moved in at one commit. Readers see the old read model or the rebuilt one,
    never an empty or partial one. One pass over the log per projection (each has its own shadow).

    A projection never rebuilt from zero (`NeverRebuiltFromZero`, the notification outbox) keeps its tables:
    it is rebuilt in place (`_rebuild_in_place`), as its own `reset_for_rebuild` says."""
    by_name = {p.name: p for p in projections}
    for name in names:
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise UnknownProjection(f"no projection named {name!r} (registered: {known})")
    selected = [by_name[name] for name in dict.fromkeys(names)]
    stats = RebuildStats()
    started = time.perf_counter()
    store = PostgresEventStore(pool)
    async with pool.acquire() as conn:
        await ensure_tables(conn, selected)
        in_place = [p for p in selected if isinstance(p, NeverRebuiltFromZero) or not is_rebuildable(p)]
        if in_place:
            await _rebuild_in_place(pool, conn, in_place, stats, progress, batch_size)
        end = await _log_end(conn)
        for projection in selected:
            if projection in in_place:
                continue
            reached = CatchUpState(projection.name)
            began = time.perf_counter()

            def report(
                states: Sequence[CatchUpState],
                name: str = projection.name,
                began: float = began,
                reached: CatchUpState = reached,
            ) -> None:
                reached.position, reached.events, reached.apply_seconds = (
                    states[0].position,
                    states[0].events,
                    states[0].apply_seconds,
                )
                if progress is not None:
                    seconds = time.perf_counter() - began
                    progress(RebuildProgress(name, states[0].position, end, states[0].events, seconds))

            position = await build(conn, store, projection, batch_size=batch_size, progress=report)
            stats.positions[projection.name] = position
            stats.events[projection.name] = reached.events
            stats.projection_seconds[projection.name] = reached.apply_seconds
    stats.seconds = time.perf_counter() - started
    return stats


async def _rebuild_in_place(
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    selected: Sequence[Projection],
    stats: RebuildStats,
    progress: ProgressCallback | None,
    batch_size: int,
) -> None:
    """Reset each projection and its checkpoint in one transaction, then fold the log into it again.

    With a projection's advisory lock no runner can interfere, and this call does the catching up.
    If a running worker holds the lock, the reset still happens safely (the runner locks the checkpoint
    row per batch, so it waits for the reset and then sees position 0) and the worker refills the
    tables; this call waits for it and reports its progress."""
    locked: list[Projection] = []
    try:
        for projection in selected:
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", advisory_key(projection.name)):
                locked.append(projection)
        for projection in selected:
            await _reset(conn, projection)
        if locked:
            await _catch_up_all(pool, conn, locked, "public", stats, progress, None, batch_size)
        for projection in selected:
            if projection not in locked:
                await _follow_worker(conn, projection.name, stats, progress)
    finally:
        for projection in locked:
            await conn.execute("SELECT pg_advisory_unlock($1)", advisory_key(projection.name))


async def _reset(conn: asyncpg.Connection, projection: Projection) -> None:
    """Empty the projection's live tables (only its state tables, for one never rebuilt from zero) and move
    its checkpoint to 0, in one transaction."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO beacon_projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING", projection.name
        )
        await conn.execute(
            "SELECT 1 FROM beacon_projection_checkpoints WHERE name = $1 FOR UPDATE", projection.name
        )
        if isinstance(projection, NeverRebuiltFromZero):
            await projection.reset_for_rebuild(conn)
            tables = ""
        else:
            tables = ", ".join(f"public.{quote_ident(table)}" for table in projection.tables)
        if tables:
            # RESTART IDENTITY: serial keys restart as in a fresh rebuild, so the tables stay byte-equal.
            await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY")
        await conn.execute(
            "UPDATE beacon_projection_checkpoints SET position = 0, updated_at = now() WHERE name = $1",
            projection.name,
        )


class RebuildStalled(Exception):
    """Raised when the worker that holds a projection stops making progress during a live rebuild."""


async def _follow_worker(
    conn: asyncpg.Connection, name: str, stats: RebuildStats, progress: ProgressCallback | None
) -> None:
    end = await _log_end(conn)
    started = time.perf_counter()
    last_move = started
    position = 0
    while position < end:
        await asyncio.sleep(0.2)
        reached = await _checkpoint(conn, "public", name)
        now = time.perf_counter()
        if reached != position:
            last_move = now
            position = reached
            if progress is not None:
                events: int = await conn.fetchval(
                    "SELECT count(*) FROM beacon_events WHERE notification_id <= $1", position
                )
                progress(RebuildProgress(name, position, end, events, now - started))
        elif now - last_move > LIVE_STALL_SECONDS:
            raise RebuildStalled(
                f"projection {name} is held by another process but has not moved past position {position} "
                f"for {LIVE_STALL_SECONDS:.0f}s; check that process (`beacon worker` / `beacon serve`) and its logs"
            )
    stats.positions[name] = position
    stats.events[name] = await conn.fetchval("SELECT count(*) FROM beacon_events WHERE notification_id <= $1", position)
