"""Shared fixtures. Tests use BEACON_TEST_DATABASE_URL or DATABASE_URL when set (CI's system Postgres)
and the embedded server otherwise (docs/architecture.md#9-embedded-postgres-by-default). Each test that
needs a database gets a fresh one, created from a migrated template, so tests never see each other's events."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from infra.migrate import migrate
from infra.settings import Settings


def _server_url() -> str:
    url = os.environ.get("BEACON_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        return url
    from infra.embedded import start_embedded_postgres

    data_dir = Path(os.environ.get("BEACON_TEST_DATA_DIR", Path(__file__).parent.parent / ".beacon" / "test"))
    return start_embedded_postgres(data_dir)


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database (works for host and socket-style URLs)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def server_url() -> str:
    return _server_url()


@pytest.fixture(scope="session")
async def template_database(server_url: str) -> AsyncIterator[str]:
    """A migrated database that every per-test database is copied from (fast: a file copy)."""
    name = f"beacon_tpl_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        conn = await asyncpg.connect(with_database(server_url, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield name
    finally:
        admin = await asyncpg.connect(server_url)  # a new one: a reliability test may have restarted Postgres
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def database_url(server_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test only; dropped afterwards."""
    name = f"beacon_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        yield with_database(server_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, projection_poll_interval=0.05)


@pytest.fixture
async def pool(database_url: str, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    from infra.db import create_pool

    pool = await create_pool(database_url, settings)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def anyio_backend() -> Iterator[str]:
    yield "asyncio"
