"""Schema migrations: numbered SQL files in `infra/migrations`, each applied once, in order, in its own
transaction. Safe when several processes start at once: they queue on an advisory lock."""

from __future__ import annotations

from pathlib import Path

import asyncpg

_MIGRATION_LOCK = 0x62656163  # "beac"


def migration_files() -> list[tuple[str, str]]:
    folder = Path(__file__).parent / "migrations"
    return [(path.name, path.read_text()) for path in sorted(folder.glob("*.sql"))]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations this database lacks; return the names applied."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        # The connection's path may put projection versions' schemas first (projections/versions.py), and an
        # unqualified CREATE lands in the first schema of the path: migrations create in `public`.
        await conn.execute("SET LOCAL search_path TO public")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS beacon_schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["name"] for row in await conn.fetch("SELECT name FROM beacon_schema_migrations")}
        for name, sql in migration_files():
            if name in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO beacon_schema_migrations (name) VALUES ($1)", name)
            applied.append(name)
    return applied


async def is_migrated(conn: asyncpg.Connection) -> bool:
    exists = await conn.fetchval("SELECT to_regclass('beacon_schema_migrations') IS NOT NULL")
    if not exists:
        return False
    done = {row["name"] for row in await conn.fetch("SELECT name FROM beacon_schema_migrations")}
    return all(name in done for name, _ in migration_files())
