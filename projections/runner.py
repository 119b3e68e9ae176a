"""The projection runner (docs/architecture.md#4-projections-and-checkpoints).

Each projection folds the log into its own tables. The runner owns checkpoints and transactions:
a batch of events and the checkpoint that guards it commit together, so a crash never applies an
event twice or skips one. One runner per projection is active across all processes (a session
advisory lock); the others stand by. It wakes on `NOTIFY beacon_events` and polls as a safety net,
so a lost notification only delays (the loop is `infra.follow.Follower`). A projection that fails on an
event stops loudly — position, event and error in the log, in `statuses`, in `beacon_projection_stops`
and in `lag()` — and is never skipped past.

The projections a write waits for (`Projection.writes_wait`) are caught up together in one pass; each of
the others runs in a pass of its own, with its own connection and transaction, so its work never delays
the commit a write's answer waits for (docs/adr/0002-one-pass-projection-runner.md).

`NOTIFY beacon_projections` payloads: `name:position` when a projection commits a batch or resumes,
`name:stopped` when it stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg

from infra.event_store import PostgresEventStore, RecordedEvent
from infra.follow import CONNECTION_ERRORS, Follower, Session, lock_key
from projections.versions import is_legacy, register, versioned
from projections.versions import quote_ident as quote_ident  # re-exported: modules quote names through the runner

log = logging.getLogger("beacon.projections")

CHECKPOINTS_SQL = """
CREATE TABLE IF NOT EXISTS beacon_projection_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS beacon_projection_stops (
    name       text        PRIMARY KEY,
    position   bigint,
    error      text        NOT NULL,
    stopped_at timestamptz NOT NULL DEFAULT now()
)"""
"""A checkpoint per projection, and a row per stopped projection: `position` is the event it failed on
(NULL when the runner itself failed), kept until a runner takes the projection up again. Every process
reads the stops, so a write waits on no stopped projection wherever that projection's runner is."""

PROJECTIONS_CHANNEL = "beacon_projections"
EVENTS_CHANNEL = "beacon_events"
STOPPED = "stopped"
"""The payload suffix on `beacon_projections` of a projection that stopped (`name:stopped`)."""


def parse_progress(payload: str) -> tuple[str, int | None] | None:
    """A `beacon_projections` payload as (name, position), position None for a stop; None if malformed."""
    name, _, rest = payload.rpartition(":")
    if not name:
        return None
    if rest == STOPPED:
        return name, None
    return (name, int(rest)) if rest.isdigit() else None


class Projection(Protocol):
    """One read model: the tables it owns and how a batch of events changes them.

    It may also declare `version: int` (default 1; bump it when what it stores changes, and the new version
    is built beside the old) and `rebuildable: bool` (default True; False for one never rebuilt from zero,
    such as a notification outbox): see projections/versions.py. One that writes do not wait for may ask for
    spaced passes: `min_pass_interval` (seconds between the starts of two passes; the wakes meanwhile
    coalesce into one pass, so a stream of commands costs a pass per interval, not a pass per commit) and
    `loop_share` (at most this share of the event loop it shares with the passes writes wait for, for one
    whose passes are CPU work: rendering). They are read with defaults, so they are not part of this
    protocol."""

    name: str
    writes_wait: bool
    """Whether a write waits for this projection before it answers (read-your-writes). True for the read
    models a command's answer and the reads after it depend on; False for work that must never hold up an
    answer (a notification outbox, rendered public pages), which then runs in a runner pass of its own."""
    tables: tuple[str, ...]
    schema_sql: str
    """`CREATE TABLE IF NOT EXISTS …` with unqualified names, so a rebuild can run it in a scratch schema."""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        """Fold `events` into the tables, inside the runner's transaction. Never commits.

        A failed batch is rolled back and re-applied one event at a time, so `apply` must keep no state
        outside the database that a rollback would leave behind.

        It may also declare `async def settle(conn)`: called in a transaction of its own once a catch-up pass
        has applied what it could (`catch_up_many`), for work a projection deferred across the pass's batches
        (the public site renders each dirty document once per rebuild, not once per batch). Read with a
        default, so not part of this protocol."""
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
    """The advisory-lock key of one projection: whoever holds it runs the projection."""
    return lock_key(f"beacon.projection:{name}")


_ENSURE_TABLES_KEY = lock_key("beacon.ensure_tables")


SCRATCH_SETTING = "beacon.scratch"
"""Set (transaction-local) to the schema a rebuild folds into: nothing in such a transaction may tell the live
processes anything (`projections.public_documents.notify` reads it)."""


async def use_schema(conn: asyncpg.Connection, schema: str) -> None:
    """Point unqualified names at `schema` for this transaction, ahead of the connection's own path. `public`
    means the live read models: the connection's path already resolves each to its version
    (projections/versions.py), so nothing changes."""
    if schema != "public":
        await conn.execute(
            "SELECT set_config('search_path', $1 || ', ' || current_setting('search_path'), true),"
            " set_config($2, $3, true)",
            quote_ident(schema),
            SCRATCH_SETTING,
            schema,
        )


async def ensure_tables(conn: asyncpg.Connection, projections: Sequence[Projection], schema: str = "public") -> None:
    """Create the checkpoint table and the projections' tables in `schema` (idempotent). For the live tables,
    only those of the versions that live in `public` (a later version is only ever built whole, by
    projections/blue_green.py), which are also recorded in `beacon_projection_versions`."""
    async with conn.transaction():
        # Two processes starting at once would race CREATE … IF NOT EXISTS into a unique violation.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _ENSURE_TABLES_KEY)
        if schema != "public":
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
            await conn.execute(f"SET LOCAL search_path TO {quote_ident(schema)}, public")
        else:
            # Unqualified CREATEs land in the first schema of the path, which may be a version's.
            await conn.execute("SET LOCAL search_path TO public")
            projections = [p for p in projections if is_legacy(p)]
        await conn.execute(CHECKPOINTS_SQL)
        for projection in projections:
            await conn.execute(projection.schema_sql)
        if schema == "public":
            await register(conn, projections)


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
    await _passes(conn, store, projections, states, batch_size, schema, progress)
    for projection in projections:
        settle = getattr(getattr(projection, "inner", projection), "settle", None)
        if settle is not None:
            started = time.perf_counter()
            async with conn.transaction():
                await use_schema(conn, schema)
                await settle(conn)
            states[projection.name].apply_seconds += time.perf_counter() - started
    return states


async def _passes(
    conn: asyncpg.Connection,
    store: PostgresEventStore,
    projections: Sequence[Projection],
    states: dict[str, CatchUpState],
    batch_size: int,
    schema: str,
    progress: Callable[[Sequence[CatchUpState]], None] | None,
) -> None:
    """`catch_up_many`'s batches, until every projection reached the log's end or its limit.

    Each batch is one transaction of as few round trips as the work allows (every one of them delays the
    writers waiting for the pass): the checkpoints locked and read, the events read, the projections applied
    without a savepoint (should one fail, the batch is rolled back and done again with each projection in a
    savepoint of its own, `_apply_shared`), the checkpoints moved and announced in one statement, the commit."""
    names = [projection.name for projection in projections]
    isolate = False
    while True:
        failures: list[ProjectionFailed] = []
        advanced: list[CatchUpState] = []
        try:
            async with conn.transaction():
                await use_schema(conn, schema)
                await _lock_checkpoints(conn, names, states)
                behind = [p for p in projections if not states[p.name].reached_limit]
                if not behind:
                    return
                after = min(states[p.name].position for p in behind)
                events = await store.read_all(after=after, limit=batch_size, conn=conn)
                if not events:
                    return
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
                results = await _apply_shared(conn, work, isolate=isolate)
                for projection in behind:
                    state = states[projection.name]
                    if state.limit is not None and events[-1].position >= state.limit:
                        state.reached_limit = True
                for (projection, state, part), (applied, error) in zip(work, results, strict=True):
                    if error is not None:
                        failures.append(ProjectionFailed(projection.name, part[len(applied)], error))
                    if applied:
                        state.position = applied[-1].position
                        state.events += len(applied)
                        advanced.append(state)
                if advanced:
                    await _move_checkpoints(conn, advanced, announce=schema == "public")
        except _Isolate:
            isolate = True  # the same batch again, each projection in a savepoint of its own
            continue
        isolate = False
        if advanced and progress is not None:
            progress([states[name] for name in names])
        for failure in failures[1:]:
            log.error("%s", failure, exc_info=failure.error)
        if failures:
            raise failures[0] from failures[0].error
        if len(events) < batch_size:
            return


async def _lock_checkpoints(conn: asyncpg.Connection, names: Sequence[str], states: dict[str, CatchUpState]) -> None:
    """Lock and read the projections' checkpoint rows, creating those that do not exist yet (a first pass)."""
    # Locked in name order, so two passes over overlapping projections cannot deadlock.
    query = (
        "SELECT name, position FROM beacon_projection_checkpoints WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE"
    )
    rows = await conn.fetch(query, names)
    if len(rows) < len(names):
        await conn.execute(
            "INSERT INTO beacon_projection_checkpoints (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", names
        )
        rows = await conn.fetch(query, names)
    for row in rows:
        states[row["name"]].position = row["position"]


async def _move_checkpoints(conn: asyncpg.Connection, advanced: Sequence[CatchUpState], *, announce: bool) -> None:
    """Move the checkpoints of the projections a batch advanced and, for the live tables (`announce`), send one
    `beacon_projections` notification per checkpoint moved (delivered at commit), in one statement."""
    moved = (
        "UPDATE beacon_projection_checkpoints AS c SET position = a.position, updated_at = now()"
        " FROM unnest($1::text[], $2::bigint[]) AS a(name, position) WHERE c.name = a.name"
    )
    names, positions = [state.name for state in advanced], [state.position for state in advanced]
    if announce:
        await conn.execute(
            f"WITH moved AS ({moved} RETURNING c.name, c.position)"
            " SELECT pg_notify($3, name || ':' || position) FROM moved",
            names,
            positions,
            PROJECTIONS_CHANNEL,
        )
    else:
        await conn.execute(moved, names, positions)


class _Isolate(Exception):
    """A projection failed in a batch applied without savepoints: do the batch again with them."""


async def _apply_shared(
    conn: asyncpg.Connection,
    work: Sequence[tuple[Projection, CatchUpState, Sequence[RecordedEvent]]],
    *,
    isolate: bool,
) -> list[tuple[Sequence[RecordedEvent], Exception | None]]:
    """Apply each projection's events. The usual batch, where nothing fails, is applied in the batch's own
    transaction, without a savepoint (no round trip of its own on the path writers wait for): should a
    projection fail, `_Isolate` rolls the whole batch back. Done again with `isolate`, each projection's part
    is applied on its own with `_apply_batch`, so the failing one is pinpointed and the others keep their
    batch."""
    results: list[tuple[Sequence[RecordedEvent], Exception | None]] = []
    for projection, state, events in work:
        started = time.perf_counter()
        try:
            if isolate:
                results.append(await _apply_batch(conn, projection, events))
                continue
            await projection.apply(conn, events)
            results.append((events, None))
        except CONNECTION_ERRORS:
            raise
        except Exception as error:
            log.warning(
                "projection %s failed on a batch (%r); doing the batch again in savepoints", projection.name, error
            )
            raise _Isolate from error
        finally:
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
    """What this process knows of one projection, for `/readyz?detail=1`, the CLI and tests."""

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
    """How far one projection is behind the log, for `/readyz?detail=1` and `beacon projections status`."""

    name: str
    checkpoint: int
    head: int
    lag: int
    """Positions between the checkpoint and the head (an upper bound on unapplied events)."""
    active: bool | None = None
    """Whether this process runs it; None when asked without a runner."""
    error: str | None = None
    """Why it stopped, None while it runs (as this process knows it, else as recorded in the database)."""
    stopped: bool = False
    failed_position: int | None = None
    """The event it stopped at (None while it runs, or when the runner itself failed)."""
    lag_seconds: float = 0.0
    """Age of the oldest event it has not applied (0 when caught up): how stale its read model is."""
    writes_wait: bool = True


@dataclass(frozen=True)
class ProjectionStop:
    """A stopped projection as recorded in `beacon_projection_stops`."""

    name: str
    position: int | None
    error: str


async def stops(conn: asyncpg.Connection) -> dict[str, ProjectionStop]:
    """Every stopped projection, by name."""
    rows = await conn.fetch("SELECT name, position, error FROM beacon_projection_stops")
    return {row["name"]: ProjectionStop(row["name"], row["position"], row["error"]) for row in rows}


async def record_stops(conn: asyncpg.Connection, stopped: Sequence[ProjectionStop]) -> None:
    """Record that projections stopped and tell every process (`name:stopped`), in one statement."""
    await conn.execute(
        """WITH stopped AS (
               INSERT INTO beacon_projection_stops (name, position, error)
               SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])
               ON CONFLICT (name) DO UPDATE
                   SET position = EXCLUDED.position, error = EXCLUDED.error, stopped_at = now()
               RETURNING name)
           SELECT pg_notify($4, name || ':' || $5) FROM stopped""",
        [stop.name for stop in stopped],
        [stop.position for stop in stopped],
        [stop.error for stop in stopped],
        PROJECTIONS_CHANNEL,
        STOPPED,
    )


async def resume(conn: asyncpg.Connection, name: str) -> None:
    """Forget that a projection stopped, now that a runner takes it up again (after a restart or a fix):
    tell every process where it is (`name:position`), so writes wait for it again. If the event is still
    poison, it stops again at once."""
    row = await conn.fetchrow(
        """WITH gone AS (DELETE FROM beacon_projection_stops WHERE name = $1 RETURNING name, position)
           SELECT gone.position AS failed, c.position, pg_notify($2, c.name || ':' || c.position)
           FROM gone JOIN beacon_projection_checkpoints AS c USING (name)""",
        name,
        PROJECTIONS_CHANNEL,
    )
    if row is not None:
        log.warning("projection %s resumes at position %s (it had stopped at %s)", name, row["position"], row["failed"])


async def lag(
    pool: asyncpg.Pool,
    store: PostgresEventStore,
    projections: Sequence[Projection],
    statuses: Mapping[str, ProjectionStatus] | None = None,
) -> list[ProjectionLag]:
    """Checkpoint, head position, lag and stop of each projection, read from the database (so any process
    can ask, runner or not); with `statuses` (this process's runner's, or empty without one), also whether
    this process runs it."""
    projections = versioned(projections)
    # Checkpoints first, head second: a commit in between overstates the lag, never hides it.
    async with pool.acquire() as conn:
        tables = await conn.fetchrow(
            "SELECT to_regclass('public.beacon_projection_checkpoints') IS NOT NULL AS checkpoints,"
            " to_regclass('public.beacon_projection_stops') IS NOT NULL AS stops"
        )
        positions = await checkpoints(conn) if tables["checkpoints"] else {}
        stopped = await stops(conn) if tables["stops"] else {}
        head = await store.max_position()
        behind = [p.name for p in projections if positions.get(p.name, 0) < head]
        ages: dict[str, float] = {
            row["name"]: row["seconds"]
            for row in await conn.fetch(
                """SELECT c.name, greatest(0, extract(epoch FROM now() - e.recorded_at))::float8 AS seconds
                   FROM unnest($1::text[], $2::bigint[]) AS c(name, position)
                   CROSS JOIN LATERAL (SELECT recorded_at FROM beacon_events WHERE notification_id > c.position
                                       ORDER BY notification_id LIMIT 1) AS e""",
                behind,
                [positions.get(name, 0) for name in behind],
            )
        }
    report = []
    for projection in projections:
        checkpoint = positions.get(projection.name, 0)
        status = statuses.get(projection.name) if statuses is not None else None
        stop = stopped.get(projection.name)
        error = status.error if status is not None and status.error is not None else None
        report.append(
            ProjectionLag(
                name=projection.name,
                checkpoint=checkpoint,
                head=head,
                lag=max(0, head - checkpoint),
                active=status.active if status is not None else (None if statuses is None else False),
                error=error or (stop.error if stop is not None else None),
                stopped=error is not None or stop is not None,
                failed_position=stop.position if stop is not None else None,
                lag_seconds=ages.get(projection.name, 0.0),
                writes_wait=projection.writes_wait,
            )
        )
    return report


def runner_passes(projections: Sequence[Projection]) -> list[list[Projection]]:
    """The projections writes wait for, caught up together in one shared pass; then each of the others in a
    pass of its own (ADR 0002), so a slow or stopped one never holds up a write's answer."""
    waited = [p for p in projections if p.writes_wait]
    return ([waited] if waited else []) + [[p] for p in projections if not p.writes_wait]


@dataclass
class ProjectionRunner:
    """Keeps every projection current in this process, or stands by while another process does."""

    pool: asyncpg.Pool
    store: PostgresEventStore
    projections: Sequence[Projection]
    poll_interval: float = 0.5
    batch_size: int = 500
    statuses: dict[str, ProjectionStatus] = field(default_factory=dict)
    """By each projection version's key (projections/versions.py): its name for version 1."""
    unbuilt: set[str] = field(default_factory=set)
    """Keys of versions not built yet (projections/blue_green.py builds them, then calls `built`): the runner
    leaves them alone until then, and gives each a pass of its own, so the shared pass never waits for a
    version that is still being built."""
    on_failure: Callable[[str], None] | None = None
    """Called with a projection's key each time it stops on a failure (the metrics count them)."""
    _followers: list[Follower] = field(default_factory=list)

    async def start(self) -> None:
        async with self.pool.acquire() as conn:
            await ensure_tables(conn, self.projections)
        keyed = versioned(self.projections)
        for projection in keyed:
            self.statuses[projection.name] = ProjectionStatus(projection.name)
        built = [p for p in keyed if p.name not in self.unbuilt]
        groups = runner_passes(built) + [[p] for p in keyed if p.name in self.unbuilt]
        for group in groups:
            name = "projections" if group[0].writes_wait else f"projection {group[0].name}"
            follower = Follower(
                name,
                self.pool.acquire,
                poll_interval=self.poll_interval,
                retry_interval=self.poll_interval,
                on_disconnect=self._inactive(group),
            )
            await follower.start(self._turn(group))
            self._followers.append(follower)
        # One listener wakes every pass: a connection per pass would cost more than the wake-ups save.
        listener = Follower(
            "projection-listener",
            self.pool.acquire,
            channels=[EVENTS_CHANNEL],
            on_notify=self._on_event,
            retry_interval=self.poll_interval,
        )
        await listener.start(self._on_listening)
        self._followers.append(listener)

    async def stop(self) -> None:
        """Cancel the passes (an open batch rolls back) and release the advisory locks."""
        for follower in self._followers:
            await follower.stop()
        self._followers.clear()

    async def lag(self) -> list[ProjectionLag]:
        return await lag(self.pool, self.store, self.projections, self.statuses)

    def wake(self) -> None:
        for follower in self._followers:
            follower.wake()

    def _failed(self, name: str) -> None:
        if self.on_failure is not None:
            self.on_failure(name)

    def built(self, key: str) -> None:
        """A version has been built and moved in: run it from now on."""
        self.unbuilt.discard(key)
        self.wake()

    def _on_event(self, _channel: str, _payload: str) -> bool:
        self.wake()
        return False  # the listener itself has nothing to do

    async def _on_listening(self, session: Session) -> None:
        if session.fresh:
            self.wake()  # whatever committed while nobody listened

    def _inactive(self, group: Sequence[Projection]) -> Callable[[], None]:
        def mark() -> None:  # a lost connection took its advisory locks with it
            for projection in group:
                self.statuses[projection.name].active = False

        return mark

    def _turn(self, group: Sequence[Projection]) -> Callable[[Session], Awaitable[None]]:
        """One turn of a pass: take the locks of the group's free projections, then catch those up together
        (`catch_up_many`): each batch of the log is read and decoded once and applied to all of them in one
        transaction, so a write costs one projection transaction, not one per projection. Each still has its
        own advisory lock, checkpoint and failure: a poison event stops only its projection."""

        spacing = max((getattr(p, "min_pass_interval", 0.0) for p in group), default=0.0)
        share = min((getattr(p, "loop_share", 1.0) for p in group), default=1.0)
        due = 0.0

        async def turn(session: Session) -> None:
            nonlocal due
            if spacing:
                # Spaced passes (the wakes meanwhile coalesce into one): the next pass starts `spacing` after this
                # one started, or later if this one took more than `share` of the time since.
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                started = time.monotonic()
            try:
                active = await self._take_free_locks(session, group)
                if active:
                    await self._pass(session.conn, active)
                if spacing:
                    ended = time.monotonic()
                    due = started + max(spacing, (ended - started) / share)
            except CONNECTION_ERRORS:
                raise
            except Exception as error:
                # Not a projection's logic (that is ProjectionFailed) but the runner's own reading of the log;
                # retrying would fail the same way, so stop loudly (the follower logs it and ends).
                running = [self.statuses[p.name] for p in group if self.statuses[p.name].error is None]
                for status in running:
                    status.error = f"projection {status.name} stopped after position {status.position}: {error!r}"
                    self._failed(status.name)
                await record_stops(session.conn, [ProjectionStop(s.name, None, s.error or "") for s in running])
                raise

        return turn

    async def _take_free_locks(self, session: Session, group: Sequence[Projection]) -> list[Projection]:
        """Become active for every projection of the group that no other process runs; stand by for the rest.
        Returns the group's projections this process runs and that have not stopped."""
        active = []
        for projection in group:
            status = self.statuses[projection.name]
            if status.error is not None or projection.name in self.unbuilt:
                continue
            key = advisory_key(projection.name)
            if key not in session.locks:
                if not await session.lock(key):
                    status.standby_checks += 1
                    continue
                status.active = True
                await resume(session.conn, projection.name)
            active.append(projection)
        return active

    async def _pass(self, conn: asyncpg.Connection, active: Sequence[Projection]) -> None:
        def progress(states: Sequence[CatchUpState]) -> None:
            for state in states:
                self.statuses[state.name].position = state.position

        try:
            # A projection may ask for smaller transactions (`batch_size`): the outbox, whose every event may
            # fan out to 100,000 rows, so its intents reach the dispatcher a few updates at a time.
            batch_size = min(getattr(p, "batch_size", self.batch_size) for p in active)
            states = await catch_up_many(conn, self.store, active, batch_size=batch_size, progress=progress)
        except ProjectionFailed as failure:
            # Recorded before this process gives up on it: should the record fail with the connection, the
            # projection is taken up and fails again on the next connection, and is recorded then.
            await record_stops(conn, [ProjectionStop(failure.projection, failure.position, str(failure))])
            status = self.statuses[failure.projection]
            status.error = str(failure)
            self._failed(failure.projection)
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
