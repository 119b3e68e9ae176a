"""Components: given events -> when a command -> then events (or an error); then the handlers against
the in-memory event store."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate

from domain.base import CommandContext, NotFound, load
from domain.component import (
    Component,
    ComponentArchived,
    ComponentInfo,
    archive_component,
    create_component,
    update_component,
)
from domain.rules import NameRequired, NameTooLong
from infra.memory_store import InMemoryEventStore
from tests.support.aggregates import event, given, payloads, then
from tests.support.builders import ALICE, T0

COMPONENT_ID = UUID("01890a5d-ac96-774b-bcce-b302099a8057")
T1 = T0 + timedelta(minutes=5)
BY = ALICE.as_data()


def created(name: str = "App", description: str | None = "Our iOS app") -> Aggregate.Event:
    return event(
        Component.Created,
        originator_id=COMPONENT_ID,
        originator_version=1,
        timestamp=T0,
        originator_topic=Component.TOPIC,
        name=name,
        description=description,
        by=BY,
    )


def archived(version: int = 2) -> Aggregate.Event:
    return event(Component.Archived, originator_id=COMPONENT_ID, originator_version=version, timestamp=T0, by=BY)


# Create


def test_create_records_name_description_and_actor_at_the_given_time() -> None:
    component = Component.create(id=COMPONENT_ID, name="App", description="Our iOS app", at=T0, by=ALICE)

    events = component.collect_events()
    assert [getattr(type(e), "TOPIC", None) for e in events] == ["beacon.Component.Created"]
    assert events[0].timestamp == T0
    assert events[0].originator_id == COMPONENT_ID
    assert vars(events[0])["name"] == "App"
    assert vars(events[0])["description"] == "Our iOS app"
    assert vars(events[0])["by"] == {"type": "api_key", "id": "01KEY", "name": "alice"}


def test_create_without_description() -> None:
    component = Component.create(id=COMPONENT_ID, name="App", description=None, at=T0, by=ALICE)
    assert (component.name, component.description, component.archived) == ("App", None, False)


@pytest.mark.parametrize("name", ["", "   "])
def test_create_requires_a_name(name: str) -> None:
    with pytest.raises(NameRequired) as raised:
        Component.create(id=COMPONENT_ID, name=name, description=None, at=T0, by=ALICE)
    assert (raised.value.field, raised.value.code) == ("name", "is_required")


def test_create_accepts_a_200_character_name_and_refuses_201() -> None:
    Component.create(id=COMPONENT_ID, name="x" * 200, description=None, at=T0, by=ALICE)
    with pytest.raises(NameTooLong) as raised:
        Component.create(id=COMPONENT_ID, name="x" * 201, description=None, at=T0, by=ALICE)
    assert (raised.value.field, raised.value.code) == ("name", "too_long")


# Update


def test_update_records_the_new_name_and_description() -> None:
    component = given(Component, created())

    component.update(name="iOS", description="The app", at=T1, by=ALICE)

    assert payloads(then(component)) == [("Updated", {"name": "iOS", "description": "The app", "by": BY})]
    assert (component.name, component.description) == ("iOS", "The app")


def test_update_without_description_clears_it() -> None:
    component = given(Component, created(description="Our iOS app"))

    component.update(name="App", description=None, at=T1, by=ALICE)

    assert payloads(then(component)) == [("Updated", {"name": "App", "description": None, "by": BY})]


def test_update_keeps_what_it_is_not_given() -> None:
    component = given(Component, created(name="App", description="Our iOS app"))

    component.update(name="iOS", at=T1, by=ALICE)
    component.update(description="The app", at=T1, by=ALICE)

    assert payloads(then(component)) == [
        ("Updated", {"name": "iOS", "description": "Our iOS app", "by": BY}),
        ("Updated", {"name": "iOS", "description": "The app", "by": BY}),
    ]


def test_update_giving_nothing_records_nothing() -> None:
    component = given(Component, created())
    component.update(at=T1, by=ALICE)
    assert payloads(then(component)) == []


def test_update_that_changes_nothing_records_nothing() -> None:
    component = given(Component, created(name="App", description="Our iOS app"))

    component.update(name="App", description="Our iOS app", at=T1, by=ALICE)

    assert payloads(then(component)) == []


def test_update_checks_the_name() -> None:
    component = given(Component, created())
    with pytest.raises(NameRequired):
        component.update(name="", description=None, at=T1, by=ALICE)
    with pytest.raises(NameTooLong):
        component.update(name="x" * 201, description=None, at=T1, by=ALICE)
    assert payloads(then(component)) == []


def test_an_archived_component_takes_no_update() -> None:
    component = given(Component, created(), archived())
    with pytest.raises(ComponentArchived) as raised:
        component.update(name="New", description=None, at=T1, by=ALICE)
    assert isinstance(raised.value, NotFound)  # a deleted component is gone to clients: 404


# Archive


def test_archive_records_archived() -> None:
    component = given(Component, created())

    component.archive(at=T1, by=ALICE)

    assert payloads(then(component)) == [("Archived", {"by": BY})]
    assert component.info == ComponentInfo(name="App", archived=True)


def test_archive_twice_is_refused() -> None:
    component = given(Component, created(), archived())
    with pytest.raises(ComponentArchived):
        component.archive(at=T1, by=ALICE)


def test_replay_rebuilds_the_state_the_events_describe() -> None:
    updated = event(
        Component.Updated,
        originator_id=COMPONENT_ID,
        originator_version=2,
        timestamp=T1,
        name="iOS",
        description=None,
        by=BY,
    )
    component = given(Component, created(), updated)
    assert component.info == ComponentInfo(name="iOS", archived=False)
    assert component.description is None
    assert component.version == 2


# Handlers against the in-memory event store


def context(now: datetime = T0) -> CommandContext:
    return CommandContext(now=now, actor=ALICE, request_id="req-1")


async def test_handlers_create_update_and_archive_through_the_store() -> None:
    store = InMemoryEventStore()

    made = await create_component(store, component_id=COMPONENT_ID, name="App", description=None, context=context())
    assert made.name == "App"
    await update_component(store, component_id=COMPONENT_ID, name="iOS", description="The app", context=context(T1))
    gone = await archive_component(store, component_id=COMPONENT_ID, context=context(T1))

    assert gone.archived
    reloaded = await load(store, Component, COMPONENT_ID)
    assert (reloaded.name, reloaded.description, reloaded.archived, reloaded.version) == (
        "iOS",
        "The app",
        True,
        3,
    )
    assert reloaded.modified_on == T1


async def test_handler_update_of_a_missing_component_is_not_found() -> None:
    with pytest.raises(NotFound):
        await update_component(
            InMemoryEventStore(), component_id=COMPONENT_ID, name="App", description=None, context=context()
        )


async def test_handler_refuses_changes_to_an_archived_component_and_appends_nothing() -> None:
    store = InMemoryEventStore()
    await create_component(store, component_id=COMPONENT_ID, name="App", description=None, context=context())
    await archive_component(store, component_id=COMPONENT_ID, context=context())

    with pytest.raises(ComponentArchived):
        await update_component(store, component_id=COMPONENT_ID, name="Back", description=None, context=context())
    with pytest.raises(ComponentArchived):
        await archive_component(store, component_id=COMPONENT_ID, context=context())
    assert len(await store.load(COMPONENT_ID)) == 2


async def test_handler_create_validates_before_appending() -> None:
    store = InMemoryEventStore()
    with pytest.raises(NameRequired):
        await create_component(store, component_id=COMPONENT_ID, name="", description=None, context=context())
    assert await store.load(COMPONENT_ID) == []
