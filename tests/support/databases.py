"""The test Postgres: BEACON_TEST_DATABASE_URL or DATABASE_URL when set (CI's system Postgres), the
embedded server otherwise (docs/architecture.md#9-embedded-postgres-by-default), and databases of their
own copied from a template, so tests never see each other's events."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def server_url() -> str:
    url = os.environ.get("BEACON_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        return url
    from infra.embedded import start_embedded_postgres

    root = Path(__file__).parent.parent.parent
    return start_embedded_postgres(Path(os.environ.get("BEACON_TEST_DATA_DIR", root / ".beacon" / "test")))


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database (works for host and socket-style URLs)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def create_database(server: str, name: str, template: str | None = None) -> str:
    """Create database `name` (a copy of `template` when given) and return its URL."""
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    finally:
        await admin.close()
    return with_database(server, name)


async def drop_database(server: str, name: str) -> None:
    admin = await asyncpg.connect(server)  # a new connection: the test may have restarted Postgres
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_database(server: str, template: str, prefix: str = "beacon_r_") -> AsyncIterator[str]:
    """A database of its own copied from `template` (the migrated template, or Postgres's empty
    `template0` for a first install); dropped afterwards."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    url = await create_database(server, name, template)
    try:
        yield url
    finally:
        await drop_database(server, name)


async def table_names(database_url: str) -> list[str]:
    """The tables of every schema but Postgres's own: empty until something migrates the database."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT schemaname || '.' || tablename AS name FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        )
    finally:
        await conn.close()
    return [row["name"] for row in rows]
