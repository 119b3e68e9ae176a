"""Projection versions (docs/adr/0006-projection-versions.md): which tables, checkpoint and schema a
process's code reads for each projection, so that old and new code side by side during a rolling upgrade
each read a complete read model of their own version and never one of the other.

A projection may declare `version` (an int, default 1: bump it when its tables or what it renders into
them change) and `rebuildable` (default True; False for a projection that is never rebuilt from zero,
such as a notification outbox, which keeps its tables and its name whatever its version). Version 1 is
the layout Beacon had before versions: tables in `public`, checkpoint, stop, advisory lock and
notifications under the bare name, so processes of code that knows no versions keep reading and running
it. Version N >= 2 of projection `name` lives in schema `proj_{name}_v{N}` under the key `name@vN`, and
only ever as a whole: it is built in a shadow schema and moved in at one commit
(`projections/blue_green.py`).

Every process's connections put the schemas of the versions its code was built for ahead of `public` in
their `search_path` (`search_path`), so the unqualified names in the projections' queries resolve to the
right version with no query changed. Creating anything therefore names its schema or sets the path first
(`ensure_tables`, `infra.migrate.migrate`): an unqualified `CREATE TABLE` would land in the first schema of
the path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

from infra.event_store import RecordedEvent

if TYPE_CHECKING:
    from projections.runner import Projection

LIVE = "public"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def version_of(projection: Projection) -> int:
    """The version the projection's code declares (1 when it declares none)."""
    if isinstance(projection, Versioned):
        return projection.version
    return int(getattr(projection, "version", 1))


def is_rebuildable(projection: Projection) -> bool:
    """False for a projection that is never rebuilt from zero (it keeps its tables whatever its version)."""
    if isinstance(projection, Versioned):
        return projection.rebuildable
    return bool(getattr(projection, "rebuildable", True))


def base_name(projection: Projection) -> str:
    return projection.base_name if isinstance(projection, Versioned) else projection.name


def version_key(name: str, version: int) -> str:
    """The checkpoint, stop, advisory-lock and notification name of one version of a projection."""
    return name if version == 1 else f"{name}@v{version}"


def key(projection: Projection) -> str:
    if isinstance(projection, Versioned):
        return projection.name
    if not is_rebuildable(projection):
        return projection.name
    return version_key(projection.name, version_of(projection))


def is_legacy(projection: Projection) -> bool:
    """Whether the version lives in `public` (version 1, or a projection never rebuilt)."""
    return version_of(projection) == 1 or not is_rebuildable(projection)


def schema_of(projection: Projection) -> str:
    """Where this version's tables live."""
    if is_legacy(projection):
        return LIVE
    return f"proj_{base_name(projection)}_v{version_of(projection)}"


def shadow_schema(projection: Projection) -> str:
    """Where a build or rebuild of this version folds the log before it is moved in."""
    return f"proj_{base_name(projection)}_v{version_of(projection)}_next"


def search_path(projections: Sequence[Projection]) -> str:
    """The `search_path` of a process whose code has these projections: each version's schema, then
    `public` (a schema that does not exist yet is skipped by Postgres)."""
    schemas = dict.fromkeys(schema_of(p) for p in projections if schema_of(p) != LIVE)
    return ", ".join([*(quote_ident(schema) for schema in schemas), LIVE])


class Versioned:
    """A projection as the runner, checkpoints, stops, watermarks and notifications see it: named by its
    version's key, so two versions of one projection never share a checkpoint, a lock or a watermark."""

    def __init__(self, inner: Projection) -> None:
        self.inner = inner
        self.base_name = inner.name
        self.version = version_of(inner)
        self.rebuildable = is_rebuildable(inner)
        self.name = key(inner)
        self.writes_wait = inner.writes_wait
        self.tables = inner.tables
        self.schema_sql = inner.schema_sql

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        await self.inner.apply(conn, events)


def versioned(projections: Sequence[Projection]) -> list[Projection]:
    """Each projection under its version's key; a version-1 projection is itself (its key is its name)."""
    return [p if key(p) == p.name else Versioned(p) for p in projections]


async def register(conn: asyncpg.Connection, projections: Sequence[Projection]) -> None:
    """Record the versions in `public` (version 1) and their tables, so that a process of later code, which
    knows only the new version, can drop them once nothing reads them."""
    legacy = [p for p in projections if is_legacy(p)]
    await conn.execute(
        """INSERT INTO public.beacon_projection_versions (key, name, version, schema_name, tables)
           SELECT k, n, v, 'public', string_to_array(t, ',')
           FROM unnest($1::text[], $2::text[], $3::int[], $4::text[]) AS u(k, n, v, t)
           ON CONFLICT (key) DO UPDATE SET tables = EXCLUDED.tables""",
        [key(p) for p in legacy],
        [base_name(p) for p in legacy],
        [version_of(p) for p in legacy],
        [",".join(p.tables) for p in legacy],
    )


async def is_built(conn: asyncpg.Connection, projection: Projection) -> bool:
    """Whether this version's read model is complete (a version in `public` is as complete as its runner
    has made it, as it always was; a later version exists only once built whole)."""
    if is_legacy(projection):
        return True
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM public.beacon_projection_versions WHERE key = $1)", key(projection)
        )
    )
