"""Fixtures of the CLI tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.reliability.conftest import fresh_database


@pytest.fixture
async def empty_database(server_url: str) -> AsyncIterator[str]:
    """A database with no schema at all, as on a first install (a copy of Postgres's own empty template)."""
    async with fresh_database(server_url, "template0") as url:
        yield url


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
