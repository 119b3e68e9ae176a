"""Status page components: organisation-level things whose status the pages report (docs/architecture.md#glossary).

A component belongs to no page; a page's structure places it by id. Deleting a component archives it:
its events stay in the log, pages can no longer place it, and it takes no more changes.

Updates are partial (`PUT` of a component or page): an argument left as `KEEP` keeps the stored value,
and the merge happens here, on the aggregate loaded at the version the update is appended after, so a
stale read can never write back old values. `Updated` still records the whole resulting state (the
storage format the projections read); an update that changes nothing records no event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.base import (
    KEEP,
    Actor,
    ActorData,
    BeaconAggregate,
    CommandContext,
    EventStore,
    NotFound,
    Unchanged,
    execute,
    save,
)
from domain.rules import check_name


class Component(BeaconAggregate):
    """One component: its name and description, and whether it has been archived."""

    TOPIC = "beacon.Component"
    STREAM_TYPE = "component"

    class Created(Aggregate.Created):
        TOPIC = "beacon.Component.Created"
        name: str
        description: str | None
        by: ActorData

    @event(Created)
    def __init__(self, *, id: UUID, name: str, description: str | None, by: ActorData, timestamp: datetime) -> None:
        self.name = name
        self.description = description
        self.archived = False

    class Updated(Aggregate.Event):
        TOPIC = "beacon.Component.Updated"
        name: str
        description: str | None
        by: ActorData

    @event(Updated)
    def _updated(self, *, name: str, description: str | None, by: ActorData, timestamp: datetime) -> None:
        self.name = name
        self.description = description

    class Archived(Aggregate.Event):
        TOPIC = "beacon.Component.Archived"
        by: ActorData

    @event(Archived)
    def _archived(self, *, by: ActorData, timestamp: datetime) -> None:
        self.archived = True

    # Commands: check the rules, then record one event.

    @classmethod
    def create(cls, *, id: UUID, name: str, description: str | None, at: datetime, by: Actor) -> Component:
        check_name(name)
        return cls(id=id, name=name, description=description, by=by.as_data(), timestamp=at)

    def update(
        self,
        *,
        name: str | Unchanged = KEEP,
        description: str | Unchanged | None = KEEP,
        at: datetime,
        by: Actor,
    ) -> None:
        """Change what is given (`description=None` clears it); a no-op records nothing."""
        self._check_not_archived()
        name = self.name if name is KEEP else name
        description = self.description if description is KEEP else description
        check_name(name)
        if (name, description) == (self.name, self.description):
            return
        self._updated(name=name, description=description, by=by.as_data(), timestamp=at)

    def archive(self, *, at: datetime, by: Actor) -> None:
        self._check_not_archived()
        self._archived(by=by.as_data(), timestamp=at)

    @property
    def info(self) -> ComponentInfo:
        """What a page's structure needs to know about this component."""
        return ComponentInfo(name=self.name, archived=self.archived)

    def _check_not_archived(self) -> None:
        if self.archived:
            raise ComponentArchived(f"component {self.id} has been deleted")


@dataclass(frozen=True)
class ComponentInfo:
    """A component as a status page's structure sees it: enough to place it and show its name."""

    name: str
    archived: bool = False


# Errors


class ComponentArchived(NotFound):
    """Raised when a command names a component that has been deleted (archived); to clients it is gone."""


# Handlers


async def create_component(
    store: EventStore, *, component_id: UUID, name: str, description: str | None, context: CommandContext
) -> Component:
    component = Component.create(id=component_id, name=name, description=description, at=context.now, by=context.actor)
    await save(store, component, context)
    return component


async def update_component(
    store: EventStore,
    *,
    component_id: UUID,
    name: str | Unchanged = KEEP,
    description: str | Unchanged | None = KEEP,
    context: CommandContext,
) -> Component:
    def decide(component: Component) -> None:
        component.update(name=name, description=description, at=context.now, by=context.actor)

    component, _ = await execute(store, Component, component_id, decide, context)
    return component


async def archive_component(store: EventStore, *, component_id: UUID, context: CommandContext) -> Component:
    def decide(component: Component) -> None:
        component.archive(at=context.now, by=context.actor)

    component, _ = await execute(store, Component, component_id, decide, context)
    return component
