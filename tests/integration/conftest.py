"""The `store` fixture: each event store implementation in turn, so the contract suite holds both to the
same tests (their test aggregate is tests/support/tally.py)."""

from __future__ import annotations

import asyncpg
import pytest

from infra.event_store import PostgresEventStore
from infra.memory_store import InMemoryEventStore


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> InMemoryEventStore | PostgresEventStore:
    """Each event store implementation in turn, empty. A plain fixture on purpose: only the Postgres
    variant asks for the (async) `pool` fixture, and pytest-asyncio can set that up from here."""
    if request.param == "memory":
        return InMemoryEventStore()
    pool: asyncpg.Pool = request.getfixturevalue("pool")
    return PostgresEventStore(pool)
