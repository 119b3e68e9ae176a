"""A small test aggregate, independent of Beacon's real ones, so the event store's and the runner's tests
do not move when the domain does."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, event

from domain.base import Actor, ActorData, BeaconAggregate, save
from infra.event_store import PostgresEventStore, to_stored_events
from tests.support.builders import OPERATOR, T0, context_at


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


async def write_tally(store: PostgresEventStore, name: str, marks: int) -> tuple[Tally, list[int]]:
    """Create a tally and mark it `marks` times, one append each; return it and the positions taken."""
    tally = new_tally(name)
    positions = list((await save(store, tally, context_at(0))).positions)
    for n in range(marks):
        tally.mark(f"{name}-{n}", at=T0 + timedelta(minutes=n + 1), by=OPERATOR)
        positions += (await save(store, tally, context_at(n + 1))).positions
    return tally, positions


APPEND = "SELECT event_position FROM beacon_append($1, $2, $3, $4, $5, $6, $7::jsonb, $8, NULL, NULL)"
"""`beacon_append` called directly, as `append_args` fills it: for races below the store's Python."""


def append_args(name: str, now: datetime) -> tuple[Any, ...]:
    stream_id, stored = to_stored_events(new_tally(name).collect_events(), 0)
    return (
        stream_id,
        "tally",
        0,
        [s.topic for s in stored],
        [s.state for s in stored],
        now,
        '{"type": "system"}',
        None,
    )
