"""Aggregates in the given/when/then of tests/unit: given the events of a history, when a command, then the
events it recorded (or the error it raised). The history goes through the stored form on its way back, as
the event store hands it to a reader, so a given is always one the codec can round-trip."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate, DomainEventProtocol

from domain.base import replay
from infra.event_store import MAPPER

A = TypeVar("A", bound=Aggregate)

BOOKKEEPING = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})


def event(event_class: Any, **fields: Any) -> Aggregate.Event:
    """An event as the store would hand it back, written out field by field (the library makes event
    classes dataclasses at runtime, which mypy cannot see)."""
    made: Aggregate.Event = event_class(**fields)
    return made


def history(start: Callable[[], A], *commands: Callable[[A], object]) -> list[DomainEventProtocol[UUID]]:
    """The events a new aggregate records when `start` makes it and `commands` run on it."""
    aggregate = start()
    for command in commands:
        command(aggregate)
    return list(aggregate.collect_events())


def given(kind: type[A], *events: DomainEventProtocol[UUID]) -> A:
    """The aggregate the events make, each through its stored form and back."""
    decoded: list[Any] = [MAPPER.to_domain_event(MAPPER.to_stored_event(e)) for e in events]
    aggregate = replay(decoded)
    assert isinstance(aggregate, kind), aggregate
    return aggregate


def then(aggregate: Aggregate) -> list[Any]:
    """The events the command under test recorded (typed Any: each test knows which class it expects)."""
    return list(aggregate.collect_events())


def payloads(events: Sequence[DomainEventProtocol[UUID]]) -> list[tuple[str, dict[str, Any]]]:
    """The events as (class name, payload), without the library's bookkeeping fields."""
    return [(type(e).__name__, {k: v for k, v in vars(e).items() if k not in BOOKKEEPING}) for e in events]
