"""Fixtures for the event store tests: a small test aggregate (independent of Beacon's real ones, so the
store's tests do not move when the domain does) and a `store` fixture that yields each implementation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from eventsourcing.domain import Aggregate, event

from domain.base import Actor, ActorData, BeaconAggregate, CommandContext
from infra.event_store import PostgresEventStore
from infra.memory_store import InMemoryEventStore

T0 = datetime(2026, 1, 28, 10, 0, tzinfo=UTC)
OPERATOR = Actor(type="api_key", id="01KEY", name="ops bot")


def context_at(minutes: int, request_id: str | None = None, actor: Actor = OPERATOR) -> CommandContext:
    return CommandContext(now=T0 + timedelta(minutes=minutes), actor=actor, request_id=request_id)


class Tally(BeaconAggregate):
    """A test aggregate: a named list of marks, each appended by one event."""

    TOPIC = "test.Tally"
    STREAM_TYPE = "tally"

    class Created(Aggregate.Created):
        TOPIC = "test.Tally.Created"
        name: str
        by: ActorData

    @event(Created)
    def __init__(self, *, id: UUID, name: str, by: ActorData, timestamp: datetime) -> None:
        self.name = name
        self.marks: list[str] = []

    class Marked(Aggregate.Event):
        TOPIC = "test.Tally.Marked"
        label: str
        by: ActorData

    @event(Marked)
    def _marked(self, *, label: str, by: ActorData, timestamp: datetime) -> None:
        self.marks.append(label)

    def mark(self, label: str, *, at: datetime, by: Actor) -> None:
        self._marked(label=label, by=by.as_data(), timestamp=at)


def new_tally(name: str = "tally", *, minutes: int = 0, stream_id: UUID | None = None) -> Tally:
    at = T0 + timedelta(minutes=minutes)
    return Tally(id=stream_id or uuid4(), name=name, by=OPERATOR.as_data(), timestamp=at)


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> Any:
    """Each event store implementation in turn, empty. A plain fixture on purpose: only the Postgres
    variant asks for the (async) `pool` fixture, and pytest-asyncio can set that up from here."""
    if request.param == "memory":
        return InMemoryEventStore()
    pool: asyncpg.Pool = request.getfixturevalue("pool")
    return PostgresEventStore(pool)
