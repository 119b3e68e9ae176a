"""The projection runner (DESIGN D4).

Each projection folds the log into its own tables. The runner owns checkpoints and transactions:
a batch of events and the checkpoint that guards it commit together, so a crash never applies an
event twice or skips one. One runner per projection is active across all processes (a session
advisory lock); the others stand by. It wakes on `NOTIFY beacon_events` and polls as a safety net,
so a lost notification only delays. A projection that fails on an event stops loudly — position,
event and error in the log, in `statuses` and in `lag()` — and is never skipped past.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
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

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # includes ConnectionDoesNotExistError
    asyncpg.InterfaceError,  # "connection is closed", "released back to the pool"
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown (pg_terminate_backend), query canceled
    asyncpg.exceptions.TransactionRollbackError,  # deadlock, serialization failure
    OSError,  # includes ConnectionError and TimeoutError
    # A pooled connection whose backend was terminated while idle can fail with "cannot switch to state …;
    # another operation is in progress" (asyncpg issue #1069): it is a dead connection too.
    asyncpg.exceptions.InternalClientError,
)
"""Failures of the database or the connection rather than of a projection's logic: the runner retries
them from the checkpoint instead of stopping the projection."""


class Projection(Protocol):
    """One read model: the tables it owns and how a batch of events changes them."""

    name: str
    tables: tuple[str, ...]
    schema_sql: str
    """`CREATE TABLE IF NOT EXISTS …` with unqualified names, so a rebuild can run it in a scratch schema."""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        """Fold `events` into the tables, inside the runner's transaction. Never commits.

        A failed batch is rolled back and re-applied one event at a time, so `apply` must keep no state
        outside the database that a rollback would leave behind."""
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
        self.error = error


def advisory_key(name: str) -> int:
    """A stable 63-bit advisory-lock key per projection name."""
    return _key(f"beacon.projection:{name}")


def _key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


_ENSURE_TABLES_KEY = _key("beacon.ensure_tables")


async def use_schema(conn: asyncpg.Connection, schema: str) -> None:
    """Point unqualified names at `schema` for this transaction (the live schema is `public`)."""
    if schema != "public":
        await conn.execute(f"SET LOCAL search_path TO {quote_ident(schema)}, public")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def ensure_tables(conn: asyncpg.Connection, projections: Sequence[Projection], schema: str = "public") -> None:
    """Create the checkpoint table and every projection's tables in `schema` (idempotent)."""
    async with conn.transaction():
        # Two processes starting at once would race CREATE … IF NOT EXISTS into a unique violation.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _ENSURE_TABLES_KEY)
        if schema != "public":
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        await use_schema(conn, schema)
        await conn.execute(CHECKPOINTS_SQL)
        for projection in projections:
            await conn.execute(projection.schema_sql)


@dataclass
class CatchUpState:
    """One projection's place in a shared catch-up pass (`catch_up_many`)."""

    name: str
    position: int = 0
    """Its checkpoint as of the last committed batch."""
    limit: int | None = None
    """Where to stop (inclusive), None for the end of the log."""
    events: int = 0
    """Events applied to it in this pass (the ones it ignores included: they advance it too)."""
    apply_seconds: float = 0.0
    """Time spent in its `apply` in this pass."""
    reached_limit: bool = False
    """The pass has read past `limit`: nothing is left for it (even below a gap in the positions)."""


async def catch_up(
    conn: asyncpg.Connection,
    store: PostgresEventStore,
    projection: Projection,
    *,
    batch_size: int = 500,
    schema: str = "public",
    progress: Callable[[int], None] | None = None,
) -> int:
    """Apply every event past the checkpoint, one transaction per batch; return the new checkpoint.

    Safe to call without the advisory lock (the checkpoint row is locked FOR UPDATE), which is how
    rebuilds into scratch schemas use it. `progress` gets the checkpoint after each committed batch.
    Raises `ProjectionFailed` (after committing the events before the failing one) on a poison event."""

    def report(states: Sequence[CatchUpState]) -> None:
        if progress is not None:
            progress(states[0].position)

    states = await catch_up_many(conn, store, [projection], batch_size=batch_size, schema=schema, progress=report)
    return states[projection.name].position


async def catch_up_many(
    conn: asyncpg.Connection,
    store: PostgresEventStore,
    projections: Sequence[Projection],
    *,
    batch_size: int = 500,
    schema: str = "public",
    up_to: Mapping[str, int] | None = None,
    progress: Callable[[Sequence[CatchUpState]], None] | None = None,
) -> dict[str, CatchUpState]:
    """`catch_up` for several projections in one pass over the log: each batch is read (and each event
    decoded) once and applied to every projection whose checkpoint is behind it, and every checkpoint
    moves in the batch's transaction. A rebuild of N projections thus reads the log once instead of N
    times. `up_to[name]` stops that projection at a position.

    `progress` gets every projection's state after each committed batch. A poison event stops the pass
    with `ProjectionFailed` after the batch commits (the failing projection up to the event before it,
    the others with the whole batch; should several fail, the first is raised and the rest logged)."""
    if len({projection.name for projection in projections}) != len(projections):
        raise ValueError("catch_up_many needs distinct projection names")
    names = [projection.name for projection in projections]
    states = {name: CatchUpState(name, limit=up_to.get(name) if up_to is not None else None) for name in names}
    while True:
        failures: list[ProjectionFailed] = []
        advanced: list[CatchUpState] = []
        async with conn.transaction():
            await use_schema(conn, schema)
            await conn.execute(
                "INSERT INTO beacon_projection_checkpoints (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
                names,
            )
            # Locked in name order, so two passes over overlapping projections cannot deadlock.
            for row in await conn.fetch(
                "SELECT name, position FROM beacon_projection_checkpoints WHERE name = ANY($1::text[])"
                " ORDER BY name FOR UPDATE",
                names,
            ):
                states[row["name"]].position = row["position"]
            behind = [p for p in projections if not states[p.name].reached_limit]
            if not behind:
                return states
            after = min(states[p.name].position for p in behind)
            events = await store.read_all(after=after, limit=batch_size, conn=conn)
            if not events:
                return states
            work: list[tuple[Projection, CatchUpState, Sequence[RecordedEvent]]] = []
            for projection in behind:
                state = states[projection.name]
                todo = [
                    event
                    for event in events
                    if event.position > state.position and (state.limit is None or event.position <= state.limit)
                ]
                if todo:
                    work.append((projection, state, todo))
                if state.limit is not None and events[-1].position >= state.limit:
                    state.reached_limit = True
            for (projection, state, part), (applied, error) in zip(
                work, await _apply_shared(conn, work), strict=True
            ):
                if error is not None:
                    failures.append(ProjectionFailed(projection.name, part[len(applied)], error))
                if applied:
                    state.position = applied[-1].position
                    state.events += len(applied)
                    advanced.append(state)
            if advanced:
                await conn.execute(
                    "UPDATE beacon_projection_checkpoints AS c SET position = a.position, updated_at = now()"
                    " FROM unnest($1::text[], $2::bigint[]) AS a(name, position) WHERE c.name = a.name",
                    [state.name for state in advanced],
                    [state.position for state in advanced],
                )
                if schema == "public":
                    await conn.execute(
                        "SELECT pg_notify($1, n) FROM unnest($2::text[]) AS n",
                        PROJECTIONS_CHANNEL,
                        [f"{state.name}:{state.position}" for state in advanced],
                    )
        if advanced and progress is not None:
            progress([states[name] for name in names])
        for failure in failures[1:]:
            log.error("%s", failure, exc_info=failure.error)
        if failures:
            raise failures[0] from failures[0].error
        if len(events) < batch_size:
            return states


async def _apply_shared(
    conn: asyncpg.Connection, work: Sequence[tuple[Projection, CatchUpState, Sequence[RecordedEvent]]]
) -> list[tuple[Sequence[RecordedEvent], Exception | None]]:
    """Apply each projection's events, all in one savepoint (two round trips per batch, not two per
    projection). If any fails, roll them all back and apply each on its own with `_apply_batch`, so the
    failing one is pinpointed and the others keep their batch."""
    if len(work) == 1:
        projection, state, events = work[0]
        started = time.perf_counter()
        try:
            return [await _apply_batch(conn, projection, events)]
        finally:
            state.apply_seconds += time.perf_counter() - started
    try:
        async with conn.transaction():
            for projection, state, events in work:
                started = time.perf_counter()
                try:
                    await projection.apply(conn, events)
                finally:
                    state.apply_seconds += time.perf_counter() - started
        return [(events, None) for _, _, events in work]
    except CONNECTION_ERRORS:
        raise
    except Exception as error:
        log.warning("a shared batch failed (%r); applying each projection's part on its own", error)
    results: list[tuple[Sequence[RecordedEvent], Exception | None]] = []
    for projection, state, events in work:
        started = time.perf_counter()
        results.append(await _apply_batch(conn, projection, events))
        state.apply_seconds += time.perf_counter() - started
    return results


async def _apply_batch(
    conn: asyncpg.Connection, projection: Projection, events: Sequence[RecordedEvent]
) -> tuple[Sequence[RecordedEvent], Exception | None]:
    """Apply `events` in a savepoint. If the batch fails, roll it back and re-apply it one event at a
    time, each in its own savepoint, to pinpoint the failing event: return the events applied before it
    and its error. Connection failures are raised, never blamed on an event."""
    try:
        async with conn.transaction():
            await projection.apply(conn, events)
        return events, None
    except CONNECTION_ERRORS:
        raise
    except Exception as batch_error:
        log.warning(
            "projection %s failed on the batch %s..%s (%r); re-applying it one event at a time",
            projection.name,
            events[0].position,
            events[-1].position,
            batch_error,
        )
    for index, event in enumerate(events):
        try:
            async with conn.transaction():
                await projection.apply(conn, [event])
        except CONNECTION_ERRORS:
            raise
        except Exception as error:
            return events[:index], error
    log.warning("projection %s applied the batch one event at a time after it failed as a whole", projection.name)
    return events, None


@dataclass
class ProjectionStatus:
    """What this process knows of one projection, for `/readyz`, the CLI and tests."""

    name: str
    position: int = 0
    """The checkpoint as of this process's last committed batch (0 until it has been active)."""
    active: bool = False
    """True while this process holds the projection's advisory lock."""
    error: str | None = None
    """Why the projection stopped (the failing position and error); None while it runs."""
    passes: int = 0
    """Completed catch-up passes while active: a live runner keeps counting, a stuck one does not."""
    standby_checks: int = 0
    """Times this process found another process holding the lock."""


@dataclass(frozen=True)
class ProjectionLag:
    """How far one projection is behind the log, for `/readyz` and the CLI."""

    name: str
    checkpoint: int
    head: int
    lag: int
    """Positions between the checkpoint and the head (an upper bound on unapplied events)."""
    active: bool | None = None
    """Whether this process runs it; None when asked without a runner."""
    error: str | None = None


async def lag(
    pool: asyncpg.Pool,
    store: PostgresEventStore,
    projections: Sequence[Projection],
    statuses: dict[str, ProjectionStatus] | None = None,
) -> list[ProjectionLag]:
    """Checkpoint, head position and lag of each projection, read from the database (so any process can
    ask, runner or not); with `statuses`, also whether this process runs it and why it stopped."""
    # Checkpoints first, head second: a commit in between overstates the lag, never hides it.
    async with pool.acquire() as conn:
        exists = await conn.fetchval("SELECT to_regclass('public.beacon_projection_checkpoints') IS NOT NULL")
        positions = await checkpoints(conn) if exists else {}
    head = await store.max_position()
    report = []
    for projection in projections:
        checkpoint = positions.get(projection.name, 0)
        status = statuses.get(projection.name) if statuses is not None else None
        report.append(
            ProjectionLag(
                name=projection.name,
                checkpoint=checkpoint,
                head=head,
                lag=max(0, head - checkpoint),
                active=status.active if status is not None else None,
                error=status.error if status is not None else None,
            )
        )
    return report


@dataclass
class ProjectionRunner:
    """Keeps every projection current in this process, or stands by while another process does."""

    pool: asyncpg.Pool
    store: PostgresEventStore
    projections: Sequence[Projection]
    poll_interval: float = 0.5
    batch_size: int = 500
    statuses: dict[str, ProjectionStatus] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        async with self.pool.acquire() as conn:
            await ensure_tables(conn, self.projections)
        for projection in self.projections:
            self.statuses[projection.name] = ProjectionStatus(projection.name)
        self._tasks.append(asyncio.create_task(self._run(), name="projections"))
        self._tasks.append(asyncio.create_task(self._listen(), name="projection-listener"))

    async def stop(self) -> None:
        """Cancel the pass (an open batch rolls back) and release the advisory locks."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def lag(self) -> list[ProjectionLag]:
        return await lag(self.pool, self.store, self.projections, self.statuses)

    def wake(self) -> None:
        self._wake.set()

    def _on_event(self, *_: object) -> None:
        self.wake()

    async def _listen(self) -> None:
        """Turn `NOTIFY beacon_events` into wake-ups; if the connection drops, reconnect (polling covers the gap)."""
        while True:
            try:
                async with self.pool.acquire() as conn:
                    await self._listen_until_lost(conn)
                log.warning("projection listener lost its connection; reconnecting")
            except CONNECTION_ERRORS as error:
                log.warning("projection listener cannot listen: %r; retrying", error)
            await asyncio.sleep(self.poll_interval)

    async def _listen_until_lost(self, conn: asyncpg.Connection) -> None:
        # A terminated pool connection is detached from its proxy at once, so `is_closed()` would raise;
        # the termination callback is the one signal that survives.
        lost = asyncio.Event()

        def on_lost(_conn: object) -> None:
            lost.set()

        conn.add_termination_listener(on_lost)
        try:
            await conn.add_listener(EVENTS_CHANNEL, self._on_event)
            self.wake()  # whatever committed while nobody listened
            await lost.wait()
        finally:
            if not lost.is_set():  # the connection goes back to the pool
                conn.remove_termination_listener(on_lost)
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await conn.remove_listener(EVENTS_CHANNEL, self._on_event)

    async def _run(self) -> None:
        """Every projection this process holds the lock of, caught up together: each batch of the log
        is read and decoded once and applied to all of them in one transaction (`catch_up_many`), so a
        write costs one projection transaction, not one per projection. Each projection still has its
        own advisory lock, checkpoint and failure: a poison event stops only its projection."""
        while True:
            try:
                await self._run_on_one_connection()
            except CONNECTION_ERRORS as error:
                log.warning("projections lost their connection: %r; retrying", error)
            except Exception as error:
                # Not a projection's logic (that is ProjectionFailed) but the runner's own reading of the
                # log; retrying would fail the same way, so stop loudly.
                for status in self.statuses.values():
                    if status.error is None:
                        status.error = f"projection {status.name} stopped after position {status.position}: {error!r}"
                log.exception("projections stopped")
                return
            finally:
                for status in self.statuses.values():
                    status.active = False
            await asyncio.sleep(self.poll_interval)

    async def _run_on_one_connection(self) -> None:
        held: set[str] = set()  # session advisory locks live and die with this connection
        async with self.pool.acquire() as conn:
            try:
                while True:
                    self._wake.clear()
                    await self._take_free_locks(conn, held)
                    active = [p for p in self.projections if p.name in held and self.statuses[p.name].error is None]
                    if active:
                        await self._pass(conn, active)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.poll_interval):  # not wait_for: see scheduler.py
                            await self._wake.wait()
            finally:
                # Releasing the connection to the pool also unlocks (asyncpg's reset runs
                # pg_advisory_unlock_all), and a dead connection holds no lock; this is the prompt path.
                if held:
                    with contextlib.suppress(*CONNECTION_ERRORS):
                        await conn.execute("SELECT pg_advisory_unlock_all()")

    async def _take_free_locks(self, conn: asyncpg.Connection, held: set[str]) -> None:
        """Become active for every projection no other process runs; stand by for the rest."""
        for projection in self.projections:
            status = self.statuses[projection.name]
            if projection.name in held or status.error is not None:
                continue
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", advisory_key(projection.name)):
                held.add(projection.name)
                status.active = True
            else:
                status.standby_checks += 1

    async def _pass(self, conn: asyncpg.Connection, active: Sequence[Projection]) -> None:
        def progress(states: Sequence[CatchUpState]) -> None:
            for state in states:
                self.statuses[state.name].position = state.position

        try:
            states = await catch_up_many(conn, self.store, active, batch_size=self.batch_size, progress=progress)
        except ProjectionFailed as failure:
            status = self.statuses[failure.projection]
            status.error = str(failure)
            status.active = False
            log.error("%s", failure, exc_info=failure.error)
            self.wake()  # the others go on at once, without it
            return
        for name, state in states.items():
            self.statuses[name].position = state.position
            self.statuses[name].passes += 1


async def checkpoints(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT name, position FROM beacon_projection_checkpoints")
    return {row["name"]: row["position"] for row in rows}
