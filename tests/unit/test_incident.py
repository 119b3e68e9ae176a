"""Incidents: given events -> when a command -> then events (or an error), one test per rule of
docs/architecture.md#notice-rules; then the handlers against the in-memory event store (idempotency,
lookups, not found)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.base import CommandContext, DomainError, NotFound, load
from domain.incident import (
    ComponentImpact,
    Incident,
    IncidentComponentStatus,
    IncidentStatus,
    PastUpdate,
    declare_incident,
    record_retrospective_incident,
    rename_incident,
)
from domain.notice import (
    ClosingWithComponentStatuses,
    ComponentListedTwice,
    ComponentNotOnPage,
    NoticeClosed,
    TooManyUpdates,
    publish_notice_update,
)
from domain.rules import InvalidValue, MessageRequired, MessageTooLong
from infra.event_store import MAPPER
from infra.memory_store import InMemoryEventStore
from tests.support.aggregates import given, history, then
from tests.support.builders import ALICE, T0

INCIDENT_ID = UUID("01890a5d-ac96-774b-bcce-b302099a8057")
PAGE = "01KGQ0000000000000000PAGE1"
LOGIN = "01KGQ00000000000000000LGN1"
API = "01KGQ00000000000000000API1"
ARCHIVED = "01KGQ0000000000000000ARCH1"  # archived: the caller leaves it out of the page's components
ELSEWHERE = "01KGQ0000000000000000ELSE1"  # a component of another page
PAGE_COMPONENTS = frozenset({LOGIN, API})


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def declare(
    *,
    name: str = "Login failing",
    message: str = "We are investigating.",
    status: str = "investigating",
    component_statuses: Any = None,
    notify_subscribers: bool = True,
) -> Incident:
    return Incident.declare(
        id=INCIDENT_ID,
        status_page_id=PAGE,
        page_components=PAGE_COMPONENTS,
        name=name,
        message=message,
        status=status,
        component_statuses=component_statuses,
        notify_subscribers=notify_subscribers,
        update_id="U0",
        at=T0,
        by=ALICE,
    )


def publish(
    incident: Incident,
    minutes: int,
    *,
    status: str | None = None,
    component_statuses: Any = None,
    message: str = "More news.",
    notify_subscribers: bool = False,
) -> None:
    incident.publish_update(
        update_id=f"U{minutes}",
        message=message,
        status=status,
        component_statuses=component_statuses,
        notify_subscribers=notify_subscribers,
        page_components=PAGE_COMPONENTS,
        at=at(minutes),
        by=ALICE,
    )


def statuses(event: Any) -> dict[str, str]:
    return {item["component_id"]: item["component_status"] for item in event.component_statuses}


# Declaring


def test_declaring_records_the_incident_its_first_update_and_the_notify_flag() -> None:
    incident = declare(component_statuses=[(LOGIN, "partial_outage")], notify_subscribers=False)

    [declared] = then(incident)
    assert isinstance(declared, Incident.Declared)
    assert declared.status_page_id == PAGE
    assert declared.name == "Login failing"
    assert declared.update_id == "U0"
    assert declared.incident_status == "investigating"
    assert statuses(declared) == {LOGIN: "partial_outage"}
    assert declared.notify_subscribers is False
    assert declared.by == ALICE.as_data()
    assert declared.timestamp == T0
    assert incident.published_at == T0
    assert incident.incident_status is IncidentStatus.INVESTIGATING


def test_events_are_stored_under_explicit_topics_and_replay_to_the_same_incident() -> None:
    incident = declare(component_statuses={LOGIN: "degraded_performance"})
    publish(incident, 5, status="identified", component_statuses={API: "full_outage"})
    incident.rename(name="Login and API failing", at=at(6), by=ALICE)
    events = incident.collect_events()

    assert [MAPPER.to_stored_event(event).topic for event in events] == [
        "beacon.Incident.Declared",
        "beacon.Incident.UpdatePublished",
        "beacon.Incident.Renamed",
    ]
    replayed = given(Incident, *events)
    assert replayed.name == "Login and API failing"
    assert replayed.component_statuses == {LOGIN: "degraded_performance", API: "full_outage"}
    assert [update.id for update in replayed.updates] == ["U0", "U5"]
    assert replayed.component_impacts == incident.component_impacts


def test_declaring_as_resolved_with_component_statuses_is_refused() -> None:
    with pytest.raises(ClosingWithComponentStatuses) as error:
        declare(status="resolved", component_statuses={LOGIN: "operational"})
    assert error.value.field == "component_statuses"


# Updates


def test_component_statuses_are_partial_unnamed_components_keep_theirs() -> None:
    incident = given(
        Incident,
        *history(
            declare,
            lambda i: publish(i, 1, component_statuses={LOGIN: "full_outage", API: "degraded_performance"}),
        ),
    )

    publish(incident, 2, component_statuses={API: "operational"})

    [published] = then(incident)
    assert statuses(published) == {API: "operational"}
    assert incident.component_statuses == {LOGIN: "full_outage", API: "operational"}


def test_an_update_without_status_keeps_the_incident_status() -> None:
    incident = given(Incident, *history(declare, lambda i: publish(i, 1, status="identified")))

    publish(incident, 2, status=None)

    [published] = then(incident)
    assert isinstance(published, Incident.UpdatePublished)
    assert published.incident_status == "identified"


def test_status_may_move_in_any_order_until_resolved() -> None:
    incident = given(Incident, *history(declare, lambda i: publish(i, 1, status="monitoring")))

    publish(incident, 2, status="investigating")

    assert incident.incident_status is IncidentStatus.INVESTIGATING


def test_resolving_must_not_carry_component_statuses() -> None:
    incident = given(Incident, *history(declare, lambda i: publish(i, 1, component_statuses={LOGIN: "full_outage"})))

    with pytest.raises(ClosingWithComponentStatuses) as error:
        publish(incident, 2, status="resolved", component_statuses={LOGIN: "operational"})
    assert error.value.field == "component_statuses"
    assert then(incident) == []


def test_resolving_returns_every_affected_component_to_operational_and_closes_impacts() -> None:
    incident = given(
        Incident,
        *history(
            declare,
            lambda i: publish(i, 1, component_statuses={LOGIN: "full_outage", API: "degraded_performance"}),
        ),
    )

    publish(incident, 9, status="resolved")

    [resolved] = then(incident)
    assert statuses(resolved) == {LOGIN: "operational", API: "operational"}
    assert incident.component_statuses == {LOGIN: "operational", API: "operational"}
    assert all(impact.end_at == at(9) for impact in incident.component_impacts)
    assert not incident.is_ongoing


def test_a_resolved_incident_takes_no_more_updates() -> None:
    incident = given(Incident, *history(declare, lambda i: publish(i, 1, status="resolved")))

    with pytest.raises(NoticeClosed):
        publish(incident, 2, message="Actually, one more thing.")
    with pytest.raises(NoticeClosed):
        publish(incident, 2, status="investigating")
    assert then(incident) == []


def test_a_resolved_incident_can_still_be_renamed() -> None:
    incident = given(Incident, *history(declare, lambda i: publish(i, 1, status="resolved")))

    incident.rename(name="Login failing (EU)", at=at(2), by=ALICE)

    [renamed] = then(incident)
    assert isinstance(renamed, Incident.Renamed)
    assert renamed.name == "Login failing (EU)"
    assert incident.name == "Login failing (EU)"


def test_renaming_to_the_same_name_records_nothing() -> None:
    incident = given(Incident, *history(declare))

    incident.rename(name="Login failing", at=at(1), by=ALICE)

    assert then(incident) == []


def test_an_incident_holds_at_most_100_updates() -> None:
    incident = given(Incident, *history(declare, *[lambda i, n=n: publish(i, n) for n in range(1, 100)]))
    assert len(incident.updates) == 100

    with pytest.raises(TooManyUpdates) as error:
        publish(incident, 100)
    assert error.value.code == "invalid_value"
    assert then(incident) == []


@pytest.mark.parametrize(
    ("name", "error_class", "code"),
    [("", DomainError, "is_required"), ("   ", DomainError, "is_required"), ("x" * 201, DomainError, "too_long")],
)
def test_a_name_is_required_and_at_most_200_characters(name: str, error_class: type[DomainError], code: str) -> None:
    with pytest.raises(error_class) as error:
        declare(name=name)
    assert (error.value.field, error.value.code) == ("name", code)


def test_a_200_character_name_is_accepted_and_rename_checks_the_same_rule() -> None:
    incident = given(Incident, *history(declare, lambda i: i.rename(name="x" * 200, at=at(1), by=ALICE)))
    assert incident.name == "x" * 200

    with pytest.raises(DomainError) as error:
        incident.rename(name="y" * 201, at=at(2), by=ALICE)
    assert error.value.code == "too_long"


def test_a_message_is_required_and_at_most_4096_characters() -> None:
    incident = given(Incident, *history(declare))
    publish(incident, 1, message="m" * 4096)
    assert then(incident)

    with pytest.raises(MessageTooLong) as too_long:
        publish(incident, 2, message="m" * 4097)
    with pytest.raises(MessageRequired) as missing:
        publish(incident, 2, message="")
    with pytest.raises(MessageTooLong):
        declare(message="m" * 4097)
    assert (too_long.value.field, too_long.value.code) == ("message", "too_long")
    assert (missing.value.field, missing.value.code) == ("message", "is_required")


@pytest.mark.parametrize("component_id", [ELSEWHERE, ARCHIVED])
def test_components_must_belong_to_the_page_and_not_be_archived(component_id: str) -> None:
    incident = given(Incident, *history(declare))

    with pytest.raises(ComponentNotOnPage) as error:
        publish(incident, 1, component_statuses={component_id: "full_outage"})
    with pytest.raises(ComponentNotOnPage):
        declare(component_statuses={component_id: "full_outage"})
    assert error.value.field == "component_statuses[0].component_id"  # the item at fault, not the list
    assert component_id in error.value.message


def test_a_component_named_twice_in_one_update_is_refused() -> None:
    incident = given(Incident, *history(declare))

    with pytest.raises(ComponentListedTwice) as error:
        publish(incident, 1, component_statuses=[(LOGIN, "full_outage"), (LOGIN, "operational")])
    assert error.value.field == "component_statuses[1].component_id"


def test_unknown_status_values_are_invalid_values_on_their_field() -> None:
    incident = given(Incident, *history(declare))

    with pytest.raises(InvalidValue) as status_error:
        publish(incident, 1, status="on_fire")
    with pytest.raises(InvalidValue) as component_error:
        publish(incident, 1, component_statuses={LOGIN: "under_maintenance"})
    assert (status_error.value.field, status_error.value.code) == ("incident_status", "invalid_enum")
    assert (component_error.value.field, component_error.value.code) == (
        "component_statuses[0].component_status",
        "invalid_enum",
    )


# Derived component impacts


def test_impacts_for_degraded_partial_operational_full_resolved_are_three_ranges() -> None:
    incident = given(
        Incident,
        *history(
            declare,
            lambda i: publish(i, 10, component_statuses={LOGIN: "degraded_performance"}),
            lambda i: publish(i, 20, component_statuses={LOGIN: "partial_outage"}),
            lambda i: publish(i, 30, component_statuses={LOGIN: "operational"}),
            lambda i: publish(i, 40, component_statuses={LOGIN: "full_outage"}),
            lambda i: publish(i, 50, status="resolved"),
        ),
    )

    assert incident.component_impacts == [
        ComponentImpact(LOGIN, IncidentComponentStatus.DEGRADED_PERFORMANCE, at(10), at(20)),
        ComponentImpact(LOGIN, IncidentComponentStatus.PARTIAL_OUTAGE, at(20), at(30)),
        ComponentImpact(LOGIN, IncidentComponentStatus.FULL_OUTAGE, at(40), at(50)),
    ]


def test_repeating_a_status_extends_the_range_and_an_ongoing_impact_has_no_end() -> None:
    incident = given(
        Incident,
        *history(
            declare,
            lambda i: publish(i, 10, component_statuses={API: "partial_outage"}),
            lambda i: publish(i, 20, component_statuses={API: "partial_outage", LOGIN: "degraded_performance"}),
        ),
    )

    assert incident.component_impacts == [
        ComponentImpact(API, IncidentComponentStatus.PARTIAL_OUTAGE, at(10), None),
        ComponentImpact(LOGIN, IncidentComponentStatus.DEGRADED_PERFORMANCE, at(20), None),
    ]
    assert incident.worst_component_status is IncidentComponentStatus.PARTIAL_OUTAGE


def test_an_impact_opened_by_the_declaration_starts_when_the_incident_was_published() -> None:
    incident = given(
        Incident,
        *history(
            lambda: declare(component_statuses={LOGIN: "full_outage"}),
            lambda i: publish(i, 15, status="resolved"),
        ),
    )

    assert incident.component_impacts == [ComponentImpact(LOGIN, IncidentComponentStatus.FULL_OUTAGE, T0, at(15))]
    assert incident.worst_component_status is None


# Retrospective incidents

NOW = at(24 * 60)


def retrospective(updates: Sequence[PastUpdate], *, name: str = "Yesterday's outage") -> Incident:
    return Incident.record_retrospective(
        id=INCIDENT_ID,
        status_page_id=PAGE,
        page_components=PAGE_COMPONENTS,
        name=name,
        updates=updates,
        at=NOW,
        by=ALICE,
    )


def past(minutes: int, status: str, components: Any = None, update_id: str | None = None) -> PastUpdate:
    return PastUpdate(
        id=update_id or f"R{minutes}",
        published_at=at(minutes),
        message=f"{status} at {minutes}",
        incident_status=status,
        component_statuses=components,
    )


def test_a_retrospective_incident_is_one_event_with_its_timeline_resolved_and_never_notifying() -> None:
    incident = retrospective(
        [past(0, "investigating", {LOGIN: "full_outage"}), past(30, "monitoring", {LOGIN: "degraded_performance"}),
         past(45, "resolved")]
    )

    [recorded] = then(incident)
    assert isinstance(recorded, Incident.RetrospectiveRecorded)
    assert recorded.timestamp == NOW
    replayed = given(Incident, recorded)
    assert replayed.retrospective
    assert replayed.published_at == at(0)
    assert [update.published_at for update in replayed.updates] == [at(0), at(30), at(45)]
    assert replayed.incident_status is IncidentStatus.RESOLVED
    assert not replayed.is_ongoing
    assert not any(update.notify_subscribers for update in replayed.updates)
    assert replayed.updates[-1].component_statuses == {LOGIN: "operational"}
    assert replayed.component_impacts == [
        ComponentImpact(LOGIN, IncidentComponentStatus.FULL_OUTAGE, at(0), at(30)),
        ComponentImpact(LOGIN, IncidentComponentStatus.DEGRADED_PERFORMANCE, at(30), at(45)),
    ]


def test_retrospective_updates_must_be_in_the_past() -> None:
    with pytest.raises(InvalidValue) as error:
        retrospective([past(0, "investigating"), past(24 * 60, "resolved")])
    assert error.value.field == "updates[1].published_at"


def test_retrospective_updates_must_be_chronological() -> None:
    with pytest.raises(InvalidValue) as error:
        retrospective([past(30, "investigating"), past(10, "monitoring"), past(40, "resolved")])
    assert error.value.field == "updates[1].published_at"


def test_the_last_retrospective_update_must_resolve() -> None:
    with pytest.raises(InvalidValue) as error:
        retrospective([past(0, "investigating"), past(10, "monitoring")])
    assert error.value.field == "updates[1].incident_status"


def test_only_the_last_retrospective_update_may_resolve() -> None:
    with pytest.raises(InvalidValue) as error:
        retrospective([past(0, "resolved"), past(10, "resolved")])
    assert error.value.field == "updates[0].incident_status"


def test_a_retrospective_resolving_update_must_not_carry_component_statuses() -> None:
    with pytest.raises(ClosingWithComponentStatuses) as error:
        retrospective([past(0, "investigating"), past(10, "resolved", {LOGIN: "operational"})])
    assert error.value.field == "updates[1].component_statuses"


def test_a_retrospective_incident_needs_updates_at_most_100_and_components_of_the_page() -> None:
    with pytest.raises(DomainError) as empty:
        retrospective([])
    with pytest.raises(TooManyUpdates):
        retrospective([past(n, "investigating") for n in range(100)] + [past(100, "resolved")])
    with pytest.raises(ComponentNotOnPage) as unknown:
        retrospective([past(0, "investigating", {ELSEWHERE: "full_outage"}), past(10, "resolved")])
    assert (empty.value.field, empty.value.code) == ("updates", "is_required")
    assert unknown.value.field == "updates[0].component_statuses[0].component_id"


def test_a_retrospective_incident_takes_no_updates_but_can_be_renamed() -> None:
    incident = given(Incident, *history(lambda: retrospective([past(0, "investigating"), past(10, "resolved")])))

    with pytest.raises(NoticeClosed):
        publish(incident, 20)
    incident.rename(name="Renamed", at=at(20), by=ALICE)
    assert [type(event) for event in then(incident)] == [Incident.Renamed]


# Handlers against the in-memory store

CONTEXT = CommandContext(now=T0, actor=ALICE, request_id="req-1")


async def no_components(status_page_id: str) -> frozenset[str]:
    raise AssertionError("the page's components are only looked up when an update names components")


async def declare_with(store: InMemoryEventStore, **overrides: Any) -> tuple[Incident, bool]:
    arguments: dict[str, Any] = {
        "incident_id": INCIDENT_ID,
        "status_page_id": PAGE,
        "page_components": PAGE_COMPONENTS,
        "name": "Login failing",
        "message": "We are investigating.",
        "status": "investigating",
        "component_statuses": {LOGIN: "full_outage"},
        "notify_subscribers": True,
        "idempotency_key": "alert-1",
        "update_id": "U0",
        "context": CONTEXT,
    }
    arguments.update(overrides)
    return await declare_incident(store, **arguments)


async def test_declaring_twice_with_one_key_returns_the_first_incident_in_its_current_state() -> None:
    store = InMemoryEventStore()
    first, replayed_first = await declare_with(store)
    await rename_incident(store, incident_id=INCIDENT_ID, name="Login failing (EU)", context=CONTEXT)

    again, replayed = await declare_with(
        store, incident_id=UUID(int=7), name="Something else", message="", update_id="U9"
    )

    assert (replayed_first, replayed) == (False, True)
    assert again.id == first.id
    assert again.name == "Login failing (EU)"
    assert await store.max_position() == 2


async def test_idempotency_keys_are_scoped_per_page_and_kind() -> None:
    store = InMemoryEventStore()
    await declare_with(store)

    other_page, replayed_page = await declare_with(store, incident_id=UUID(int=2), status_page_id="01OTHERPAGE")
    retro, replayed_retro = await record_retrospective_incident(
        store,
        incident_id=UUID(int=3),
        status_page_id=PAGE,
        page_components=PAGE_COMPONENTS,
        name="Old one",
        updates=[PastUpdate("R1", published_at=T0 - timedelta(hours=1), message="Fixed.", incident_status="resolved")],
        idempotency_key="alert-1",
        context=CONTEXT,
    )

    assert (replayed_page, replayed_retro) == (False, False)
    assert {other_page.id, retro.id, INCIDENT_ID} == {UUID(int=2), UUID(int=3), INCIDENT_ID}


async def test_fifty_concurrent_identical_declarations_make_one_incident() -> None:
    # A valid create asks nothing before it appends, so all fifty reach the store: its append settles it.
    store = InMemoryEventStore()

    results = await asyncio.gather(*[declare_with(store, incident_id=UUID(int=n + 1)) for n in range(50)])

    assert len({incident.id for incident, _ in results}) == 1
    assert sum(not replayed for _, replayed in results) == 1
    assert await store.max_position() == 1


async def test_publishing_through_the_handler_looks_up_the_incidents_page_components() -> None:
    store = InMemoryEventStore()
    await declare_with(store)
    asked: list[str] = []

    async def components_of(status_page_id: str) -> frozenset[str]:
        asked.append(status_page_id)
        return PAGE_COMPONENTS

    later = CommandContext(now=at(5), actor=ALICE)
    await publish_notice_update(
        store, Incident, INCIDENT_ID, page_components=components_of, message="API too.",
        component_statuses={API: "partial_outage"}, notify_subscribers=True, update_id="U5", context=later,
    )
    incident = await publish_notice_update(
        store, Incident, INCIDENT_ID, page_components=no_components, message="Fixed.", status="resolved",
        notify_subscribers=False, update_id="U6", context=CommandContext(now=at(6), actor=ALICE),
    )

    assert asked == [PAGE]
    stored = await load(store, Incident, INCIDENT_ID)
    assert [update.id for update in stored.updates] == ["U0", "U5", "U6"]
    assert stored.component_statuses == incident.component_statuses == {LOGIN: "operational", API: "operational"}
    assert [update.notify_subscribers for update in stored.updates] == [True, True, False]


async def test_handlers_answer_not_found_for_an_unknown_incident() -> None:
    store = InMemoryEventStore()

    with pytest.raises(NotFound):
        await rename_incident(store, incident_id=INCIDENT_ID, name="x", context=CONTEXT)
    with pytest.raises(NotFound):
        await publish_notice_update(
            store, Incident, INCIDENT_ID, page_components=no_components, message="m",
            notify_subscribers=False, update_id="U1", context=CONTEXT,
        )


class CountingStore(InMemoryEventStore):
    """Counts the reads a handler makes: each is a round trip on the real store."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0
        self.idempotency_lookups = 0

    async def load(self, stream_id: UUID, **kwargs: Any) -> list[Any]:
        self.loads += 1
        return await super().load(stream_id, **kwargs)

    async def find_idempotent(self, idempotency: Any) -> UUID | None:
        self.idempotency_lookups += 1
        return await super().find_idempotent(idempotency)


async def test_a_valid_create_appends_without_asking_about_its_key_first() -> None:
    store = CountingStore()
    context = CommandContext(now=T0, actor=ALICE)

    await declare_with(store, context=context)

    assert (store.idempotency_lookups, store.loads) == (0, 0)
    assert context.appended == [1]


async def test_an_update_naming_components_loads_its_incident_once() -> None:
    store = CountingStore()
    await declare_with(store)
    later = CommandContext(now=at(5), actor=ALICE)

    async def components_of(status_page_id: str) -> frozenset[str]:
        return PAGE_COMPONENTS

    await publish_notice_update(
        store, Incident, INCIDENT_ID, page_components=components_of, message="API too.",
        component_statuses={API: "partial_outage"}, notify_subscribers=True, update_id="U5", context=later,
    )

    assert store.loads == 1
    assert later.last_appended == 2


def test_the_impact_span_runs_from_the_first_impact_to_the_last_ones_end_once_resolved() -> None:
    incident = given(
        Incident,
        *history(
            declare,
            lambda i: publish(i, 5, component_statuses={LOGIN: "partial_outage"}),
            lambda i: publish(i, 20, component_statuses={LOGIN: "operational"}),
        ),
    )
    assert incident.impact_span == (at(5), None)  # open while the incident is

    publish(incident, 30, status="resolved")

    assert tuple(incident.impact_span) == (at(5), at(20))  # tuple(): mypy keeps the narrowing above


def test_an_incident_without_impacts_spans_from_its_publication_to_its_resolution() -> None:
    incident = declare()
    assert incident.impact_span == (T0, None)

    publish(incident, 45, status="resolved")

    assert tuple(incident.impact_span) == (T0, at(45))  # tuple(): mypy keeps the narrowing above
