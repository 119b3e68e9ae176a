"""Fixtures of the CLI tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.databases import fresh_database


@pytest.fixture
async def empty_database(server_url: str) -> AsyncIterator[str]:
    """A database with no schema at all, as on a first install (a copy of Postgres's own empty template)."""
    async with fresh_database(server_url, "template0") as url:
        yield url
