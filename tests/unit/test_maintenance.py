"""Maintenance windows: given events -> when a command -> then events (or an error), one test per rule of
docs/architecture.md#maintenance-windows (window, completion, PUT, delete, automation forward-only and
manual-wins); then the handlers against the in-memory event store."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.base import SYSTEM, Actor, CommandContext, DomainError, NotFound, load, replay
from domain.maintenance import (
    AutomaticTransition,
    Maintenance,
    MaintenancePeriod,
    MaintenanceStatus,
    WindowInThePast,
    advance_maintenance_automatically,
    delete_maintenance,
    edit_maintenance,
    schedule_maintenance,
)
from domain.notice import (
    ClosingWithComponentStatuses,
    ComponentNotOnPage,
    NoticeClosed,
    TooManyUpdates,
    publish_notice_update,
)
from domain.rules import InvalidValue, MessageTooLong
from infra.event_store import MAPPER
from infra.memory_store import InMemoryEventStore
from tests.support.aggregates import given, history, then
from tests.support.builders import ALICE

MAINTENANCE_ID = UUID("01890a5d-ac96-774b-bcce-b302099a8058")
PAGE = "01KGQ0000000000000000PAGE1"
DATABASE = "01KGQ0000000000000000DB001"
API = "01KGQ00000000000000000API1"
ELSEWHERE = "01KGQ0000000000000000ELSE1"
PAGE_COMPONENTS = frozenset({DATABASE, API})
T0 = datetime(2026, 1, 28, 8, 0, tzinfo=UTC)  # when the window is scheduled
START = datetime(2026, 1, 28, 10, 0, tzinfo=UTC)
END = datetime(2026, 1, 28, 12, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    """Minutes after the window's scheduled start."""
    return START + timedelta(minutes=minutes)


def schedule(
    *,
    status: str = "maintenance_scheduled",
    affected: Sequence[str] = (DATABASE,),
    start_at: datetime = START,
    end_at: datetime = END,
    automate: bool = True,
    name: str = "Database upgrade",
    message: str = "We will upgrade the database.",
    now: datetime = T0,
) -> Maintenance:
    return Maintenance.schedule(
        id=MAINTENANCE_ID,
        status_page_id=PAGE,
        page_components=PAGE_COMPONENTS,
        name=name,
        message=message,
        status=status,
        affected_component_ids=affected,
        start_at=start_at,
        end_at=end_at,
        automate_maintenance_status=automate,
        notify_subscribers=True,
        update_id="U0",
        start_update_id="U-START",
        at=now,
        by=ALICE,
    )


def publish(
    maintenance: Maintenance,
    minutes: int,
    *,
    status: str | None = None,
    component_statuses: Any = None,
    message: str = "Progress.",
) -> None:
    maintenance.publish_update(
        update_id=f"U{minutes}",
        message=message,
        status=status,
        component_statuses=component_statuses,
        notify_subscribers=False,
        page_components=PAGE_COMPONENTS,
        at=at(minutes),
        by=ALICE,
    )


def start(maintenance: Maintenance, minutes: int = 0) -> bool:
    return maintenance.start_automatically(update_id=f"S{minutes}", at=at(minutes))


def complete(maintenance: Maintenance, minutes: int = 120) -> bool:
    return maintenance.complete_automatically(update_id=f"C{minutes}", at=at(minutes))


def statuses(event: Any) -> dict[str, str]:
    return {item["component_id"]: item["component_status"] for item in event.component_statuses}


# Scheduling


def test_scheduling_records_the_window_automation_default_and_first_update() -> None:
    # Automation defaults to off, as incident.io's SDK documents (it defaulted to on before).
    maintenance = Maintenance.schedule(
        id=MAINTENANCE_ID, status_page_id=PAGE, page_components=PAGE_COMPONENTS, name="Database upgrade",
        message="Planned.", status="maintenance_scheduled", affected_component_ids=[DATABASE, API, DATABASE],
        start_at=START, end_at=END, notify_subscribers=True, update_id="U0", at=T0, by=ALICE,
    )

    [scheduled] = then(maintenance)
    assert isinstance(scheduled, Maintenance.Scheduled)
    assert MAPPER.to_stored_event(scheduled).topic == "beacon.Maintenance.Scheduled"
    assert (scheduled.start_at, scheduled.end_at) == (START, END)
    assert scheduled.automate_maintenance_status is False
    assert scheduled.notify_subscribers is True
    assert scheduled.maintenance_status == "maintenance_scheduled"
    assert statuses(scheduled) == {DATABASE: "operational", API: "operational"}
    assert maintenance.affected_component_ids == [DATABASE, API]
    assert maintenance.component_maintenance_periods == []
    assert maintenance.published_at == T0


def test_scheduling_in_progress_puts_the_affected_components_under_maintenance() -> None:
    maintenance = given(Maintenance, *history(lambda: schedule(status="maintenance_in_progress")))

    assert maintenance.component_statuses == {DATABASE: "under_maintenance"}
    assert maintenance.component_maintenance_periods == [MaintenancePeriod(DATABASE, T0, None)]
    assert maintenance.next_automatic_transition == AutomaticTransition(MaintenanceStatus.COMPLETE, END)


@pytest.mark.parametrize("end_at", [START, START - timedelta(seconds=1)])
def test_a_window_must_start_before_it_ends(end_at: datetime) -> None:
    with pytest.raises(InvalidValue) as error:
        schedule(end_at=end_at)
    assert error.value.field == "end_at"


def test_affected_components_must_belong_to_the_page() -> None:
    with pytest.raises(ComponentNotOnPage) as error:
        schedule(affected=[DATABASE, ELSEWHERE])
    assert error.value.field == "affected_component_ids[1]"


def test_name_and_message_limits_apply_to_maintenance_windows_too() -> None:
    with pytest.raises(DomainError) as name_error:
        schedule(name="n" * 201)
    with pytest.raises(MessageTooLong):
        schedule(message="m" * 4097)
    assert (name_error.value.field, name_error.value.code) == ("name", "too_long")


# Manual updates


def test_component_statuses_on_a_maintenance_update_are_partial() -> None:
    maintenance = given(
        Maintenance,
        *history(
            lambda: schedule(affected=[DATABASE, API]),
            lambda m: publish(m, 0, status="maintenance_in_progress"),
        ),
    )

    publish(maintenance, 10, component_statuses={API: "operational"})

    [published] = then(maintenance)
    assert statuses(published) == {API: "operational"}
    assert maintenance.component_statuses == {DATABASE: "under_maintenance", API: "operational"}


def test_a_manual_start_puts_unnamed_affected_components_under_maintenance() -> None:
    maintenance = given(Maintenance, *history(lambda: schedule(affected=[DATABASE, API])))

    publish(maintenance, -5, status="maintenance_in_progress", component_statuses={API: "operational"})

    [published] = then(maintenance)
    assert statuses(published) == {DATABASE: "under_maintenance", API: "operational"}
    assert maintenance.started_at == at(-5)


def test_going_back_to_scheduled_returns_components_to_operational() -> None:
    maintenance = given(Maintenance, *history(schedule, lambda m: publish(m, 0, status="maintenance_in_progress")))

    publish(maintenance, 5, status="maintenance_scheduled", message="Postponed.")

    assert maintenance.component_statuses == {DATABASE: "operational"}
    assert maintenance.component_maintenance_periods == [MaintenancePeriod(DATABASE, at(0), at(5))]


def test_completing_must_not_carry_component_statuses() -> None:
    maintenance = given(Maintenance, *history(schedule, lambda m: publish(m, 0, status="maintenance_in_progress")))

    with pytest.raises(ClosingWithComponentStatuses) as error:
        publish(maintenance, 60, status="maintenance_complete", component_statuses={DATABASE: "operational"})
    assert error.value.field == "component_statuses"


def test_completing_returns_components_to_operational_and_closes_periods() -> None:
    maintenance = given(
        Maintenance,
        *history(
            schedule,
            lambda m: publish(m, 0, status="maintenance_in_progress"),
            lambda m: publish(m, 10, component_statuses={API: "under_maintenance"}),
        ),
    )

    publish(maintenance, 60, status="maintenance_complete", message="Done.")

    [completed] = then(maintenance)
    assert statuses(completed) == {DATABASE: "operational", API: "operational"}
    assert maintenance.component_maintenance_periods == [
        MaintenancePeriod(DATABASE, at(0), at(60)),
        MaintenancePeriod(API, at(10), at(60)),
    ]


def test_a_completed_window_takes_no_more_updates() -> None:
    maintenance = given(Maintenance, *history(schedule, lambda m: publish(m, 60, status="maintenance_complete")))

    with pytest.raises(NoticeClosed):
        publish(maintenance, 61, message="One more thing.")
    with pytest.raises(NoticeClosed):
        publish(maintenance, 61, status="maintenance_in_progress")


def test_an_update_naming_a_component_of_another_page_is_refused() -> None:
    maintenance = given(Maintenance, *history(schedule))

    with pytest.raises(ComponentNotOnPage) as error:
        publish(maintenance, 0, component_statuses={ELSEWHERE: "under_maintenance"})
    assert error.value.field == "component_statuses[0].component_id"


def test_a_maintenance_component_status_must_be_a_maintenance_status() -> None:
    maintenance = given(Maintenance, *history(schedule))

    with pytest.raises(InvalidValue) as error:
        publish(maintenance, 0, component_statuses={DATABASE: "full_outage"})
    assert (error.value.field, error.value.code) == ("component_statuses[0].component_status", "invalid_enum")


def test_updates_automation_still_owes_are_reserved_within_the_100_limit() -> None:
    # 1 scheduling update + 97 progress notes + the 2 automatic updates still to come = 100.
    maintenance = given(Maintenance, *history(schedule, *[lambda m, n=n: publish(m, n) for n in range(1, 98)]))

    with pytest.raises(TooManyUpdates):
        publish(maintenance, 98)
    publish(maintenance, 98, status="maintenance_in_progress")  # turns automation off: nothing reserved
    assert len(maintenance.updates) == 99
    assert maintenance.next_automatic_transition is None


def test_without_automation_a_window_holds_100_updates() -> None:
    maintenance = given(
        Maintenance,
        *history(
            lambda: schedule(automate=False),
            *[lambda m, n=n: publish(m, n) for n in range(1, 100)],
        ),
    )
    assert len(maintenance.updates) == 100

    with pytest.raises(TooManyUpdates):
        publish(maintenance, 100)


# PUT and DELETE


def test_editing_changes_name_and_window_without_publishing_an_update() -> None:
    maintenance = given(Maintenance, *history(schedule))

    maintenance.edit(name="Database upgrade (v16)", start_at=at(30), end_at=at(180), at=at(-60), by=ALICE)

    [edited] = then(maintenance)
    assert isinstance(edited, Maintenance.Edited)
    assert (edited.name, edited.start_at, edited.end_at) == ("Database upgrade (v16)", at(30), at(180))
    assert len(maintenance.updates) == 1
    assert maintenance.next_automatic_transition == AutomaticTransition(MaintenanceStatus.IN_PROGRESS, at(30))


def test_editing_to_the_same_values_records_nothing() -> None:
    maintenance = given(Maintenance, *history(schedule))

    maintenance.edit(name="Database upgrade", start_at=START, end_at=END, at=at(-60), by=ALICE)

    assert then(maintenance) == []


def test_editing_checks_the_window() -> None:
    maintenance = given(Maintenance, *history(schedule))

    with pytest.raises(InvalidValue) as error:
        maintenance.edit(name="Database upgrade", start_at=END, end_at=START, at=at(-60), by=ALICE)
    assert error.value.field == "end_at"


def test_a_completed_window_can_be_renamed_but_keeps_its_times() -> None:
    maintenance = given(Maintenance, *history(schedule, lambda m: publish(m, 60, status="maintenance_complete")))

    with pytest.raises(NoticeClosed) as error:
        maintenance.edit(name="Database upgrade", start_at=START, end_at=at(90), at=at(70), by=ALICE)
    maintenance.edit(name="Database upgrade (done)", start_at=START, end_at=END, at=at(70), by=ALICE)

    assert error.value.field == "end_at"
    assert [type(event) for event in then(maintenance)] == [Maintenance.Edited]


def test_deleting_records_an_event_and_the_window_takes_no_more_commands() -> None:
    maintenance = given(Maintenance, *history(schedule))

    maintenance.delete(at=at(-60), by=ALICE)

    [deleted] = then(maintenance)
    assert isinstance(deleted, Maintenance.Deleted)
    assert maintenance.deleted
    with pytest.raises(NotFound):
        publish(maintenance, 0)
    with pytest.raises(NotFound):
        maintenance.edit(name="x", start_at=START, end_at=END, at=at(0), by=ALICE)
    with pytest.raises(NotFound):
        maintenance.delete(at=at(0), by=ALICE)
    assert maintenance.next_automatic_transition is None
    assert not start(maintenance)
    assert then(maintenance) == []


# Automation


def test_automation_starts_the_window_at_start_at_as_system_with_an_update() -> None:
    maintenance = given(Maintenance, *history(lambda: schedule(affected=[DATABASE, API])))
    assert maintenance.next_automatic_transition == AutomaticTransition(MaintenanceStatus.IN_PROGRESS, START)

    assert start(maintenance, 0)

    [started] = then(maintenance)
    assert isinstance(started, Maintenance.Started)
    assert started.by == SYSTEM.as_data()
    assert started.timestamp == START
    assert started.maintenance_status == "maintenance_in_progress"
    assert started.notify_subscribers is True  # as the window was scheduled
    assert statuses(started) == {DATABASE: "under_maintenance", API: "under_maintenance"}
    assert maintenance.updates[-1].message
    assert maintenance.next_automatic_transition == AutomaticTransition(MaintenanceStatus.COMPLETE, END)


def test_automation_does_nothing_before_start_at() -> None:
    maintenance = given(Maintenance, *history(schedule))

    assert not start(maintenance, -1)
    assert not complete(maintenance, 120)  # completing is not due while the window has not started
    assert then(maintenance) == []


def test_automation_completes_the_window_at_end_at_and_closes_periods() -> None:
    maintenance = given(Maintenance, *history(schedule, start))

    assert not complete(maintenance, 119)
    assert complete(maintenance, 120)

    [completed] = then(maintenance)
    assert isinstance(completed, Maintenance.Completed)
    assert completed.by == SYSTEM.as_data()
    assert statuses(completed) == {DATABASE: "operational"}
    assert maintenance.maintenance_status is MaintenanceStatus.COMPLETE
    assert maintenance.component_maintenance_periods == [MaintenancePeriod(DATABASE, START, END)]
    assert maintenance.next_automatic_transition is None


def test_automation_only_moves_forward() -> None:
    maintenance = given(Maintenance, *history(schedule, start, complete))

    assert not start(maintenance, 130)
    assert not complete(maintenance, 130)
    assert then(maintenance) == []


def test_a_manual_status_change_wins_and_turns_automation_off() -> None:
    maintenance = given(Maintenance, *history(schedule, lambda m: publish(m, -10, status="maintenance_in_progress")))

    assert maintenance.automate_maintenance_status is False
    assert maintenance.next_automatic_transition is None
    assert not complete(maintenance, 120)
    assert then(maintenance) == []


def test_a_manual_completion_before_start_at_wins_over_automation() -> None:
    maintenance = given(
        Maintenance,
        *history(
            schedule,
            lambda m: publish(m, -10, status="maintenance_complete", message="Cancelled."),
        ),
    )

    assert not start(maintenance, 0)
    assert then(maintenance) == []


def test_a_progress_note_without_status_change_keeps_automation_on() -> None:
    maintenance = given(Maintenance, *history(schedule, lambda m: publish(m, -10, message="Reminder: tomorrow.")))

    assert maintenance.automate_maintenance_status is True
    assert start(maintenance, 0)


def test_a_window_without_automation_is_never_due() -> None:
    maintenance = given(Maintenance, *history(lambda: schedule(automate=False)))

    assert maintenance.next_automatic_transition is None
    assert not start(maintenance, 0)


# Maintenance times are the times it happened


@pytest.mark.parametrize("status", ["maintenance_scheduled", "maintenance_in_progress"])
@pytest.mark.parametrize("end_at", [at(-1), at(0)])
def test_a_window_that_is_over_cannot_be_created_scheduled_or_in_progress(status: str, end_at: datetime) -> None:
    with pytest.raises(WindowInThePast) as error:
        schedule(status=status, start_at=at(-60), end_at=end_at, now=at(0))

    assert (error.value.field, error.value.code) == ("end_at", "invalid_value")
    assert "maintenance_complete" in error.value.message and status in error.value.message


def test_a_window_that_is_over_is_recorded_complete_at_its_own_times_without_notifying() -> None:
    maintenance = given(
        Maintenance,
        *history(
            lambda: schedule(
                status="maintenance_complete", affected=[DATABASE, API], message="Upgraded.", now=at(24 * 60)
            ),
        ),
    )

    assert maintenance.maintenance_status is MaintenanceStatus.COMPLETE
    assert [(u.id, u.published_at, u.status, u.notify_subscribers) for u in maintenance.updates] == [
        ("U-START", START, "maintenance_in_progress", False),
        ("U0", END, "maintenance_complete", False),
    ]
    assert maintenance.updates[0].component_statuses == {DATABASE: "under_maintenance", API: "under_maintenance"}
    assert maintenance.updates[1].message == "Upgraded."
    assert maintenance.component_maintenance_periods == [
        MaintenancePeriod(DATABASE, START, END),
        MaintenancePeriod(API, START, END),
    ]
    assert maintenance.published_at == START
    assert maintenance.impact_span == (START, END)
    assert maintenance.next_automatic_transition is None


def test_a_window_completed_before_it_ends_keeps_its_single_update() -> None:
    maintenance = given(Maintenance, *history(lambda: schedule(status="maintenance_complete", message="Cancelled.")))

    assert [(u.id, u.published_at) for u in maintenance.updates] == [("U0", T0)]
    assert maintenance.component_maintenance_periods == []


def test_a_put_cannot_move_the_end_of_an_open_window_into_the_past() -> None:
    maintenance = given(Maintenance, *history(schedule, lambda m: publish(m, 0, status="maintenance_in_progress")))

    with pytest.raises(WindowInThePast) as error:
        maintenance.edit(name="Database upgrade", start_at=START, end_at=at(30), at=at(45), by=ALICE)
    assert error.value.field == "end_at"
    assert "maintenance_complete" in error.value.message

    maintenance.edit(name="Database upgrade", start_at=START, end_at=at(60), at=at(45), by=ALICE)
    assert maintenance.end_at == at(60)


def test_a_put_may_rename_a_window_whose_end_has_passed_without_moving_it() -> None:
    maintenance = given(Maintenance, *history(lambda: schedule(automate=False)))

    maintenance.edit(name="Database upgrade (late)", start_at=START, end_at=END, at=at(180), by=ALICE)

    [edited] = then(maintenance)
    assert edited.name == "Database upgrade (late)"


def test_automatic_steps_take_effect_at_their_scheduled_instants_when_recorded_late() -> None:
    maintenance = given(Maintenance, *history(schedule))

    assert start(maintenance, 300)  # recorded five hours late (the server was down)
    assert complete(maintenance, 301)

    started, completed = then(maintenance)
    assert (started.timestamp, completed.timestamp) == (START, END)
    assert [u.published_at for u in maintenance.updates] == [T0, START, END]
    assert maintenance.component_maintenance_periods == [MaintenancePeriod(DATABASE, START, END)]


def test_a_window_published_after_its_start_starts_when_it_was_published() -> None:
    maintenance = given(Maintenance, *history(lambda: schedule(start_at=at(-30), now=at(-10))))

    assert start(maintenance, 30)

    [started] = then(maintenance)
    assert started.timestamp == at(-10)


def test_a_window_moved_by_a_put_starts_no_earlier_than_the_put() -> None:
    maintenance = given(Maintenance, *history(schedule))
    # Nothing ran at START (server down); at +30 min a PUT moves the start to +10 min, already past.
    maintenance.edit(name="Database upgrade", start_at=at(10), end_at=at(90), at=at(30), by=ALICE)
    maintenance.edit(name="Database upgrade (renamed)", start_at=at(10), end_at=at(90), at=at(40), by=ALICE)

    assert start(maintenance, 50)
    assert complete(maintenance, 200)

    _, _, started, completed = then(maintenance)
    assert started.timestamp == at(30)  # the move, not the rename ten minutes later
    assert completed.timestamp == at(90)


def test_an_automatic_step_never_precedes_the_last_update() -> None:
    maintenance = given(
        Maintenance,
        *history(
            schedule,
            lambda m: publish(m, 5, message="Still waiting for the vendor."),
        ),
    )

    assert start(maintenance, 20)

    [started] = then(maintenance)
    assert started.timestamp == at(5)
    assert [u.published_at for u in maintenance.updates] == sorted(u.published_at for u in maintenance.updates)


def test_a_scheduling_event_written_before_start_update_id_existed_still_replays() -> None:
    # An event as stored before the field was added: the same JSON without "start_update_id".
    [created] = schedule(now=T0).collect_events()
    stored = MAPPER.to_stored_event(created)
    state = json.loads(stored.state)
    del state["start_update_id"]
    old = replace(stored, state=json.dumps(state).encode())

    decoded: list[Any] = [MAPPER.to_domain_event(old)]
    maintenance = replay(decoded)

    assert isinstance(maintenance, Maintenance)
    assert [(u.id, u.published_at) for u in maintenance.updates] == [("U0", T0)]
    assert maintenance.next_automatic_transition == AutomaticTransition(MaintenanceStatus.IN_PROGRESS, START)


# Handlers against the in-memory store


def context(now: datetime, actor: Actor = ALICE) -> CommandContext:
    return CommandContext(now=now, actor=actor, request_id="req-1")


async def schedule_with(store: InMemoryEventStore, **overrides: Any) -> tuple[Maintenance, bool]:
    arguments: dict[str, Any] = {
        "maintenance_id": MAINTENANCE_ID,
        "status_page_id": PAGE,
        "page_components": PAGE_COMPONENTS,
        "name": "Database upgrade",
        "message": "Planned.",
        "status": "maintenance_scheduled",
        "affected_component_ids": [DATABASE],
        "start_at": START,
        "end_at": END,
        "notify_subscribers": True,
        "automate_maintenance_status": True,
        "idempotency_key": "maint-1",
        "update_id": "U0",
        "context": context(T0),
    }
    arguments.update(overrides)
    return await schedule_maintenance(store, **arguments)


def ids() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"AUTO{n}"


async def test_scheduling_twice_with_one_key_returns_the_first_window() -> None:
    store = InMemoryEventStore()
    first, replayed_first = await schedule_with(store)

    again, replayed = await schedule_with(store, maintenance_id=UUID(int=5), name="Other", end_at=START)

    assert (replayed_first, replayed) == (False, True)
    assert again.id == first.id
    assert again.name == "Database upgrade"
    assert await store.max_position() == 1


async def test_the_scheduler_catches_up_on_a_window_it_slept_through_start_then_complete() -> None:
    store = InMemoryEventStore()
    await schedule_with(store)
    new_id = ids()

    _, steps = await advance_maintenance_automatically(
        store, maintenance_id=MAINTENANCE_ID, new_update_id=lambda: next(new_id), context=context(at(300), SYSTEM)
    )
    _, steps_again = await advance_maintenance_automatically(
        store, maintenance_id=MAINTENANCE_ID, new_update_id=lambda: next(new_id), context=context(at(301), SYSTEM)
    )

    assert (steps, steps_again) == (2, 0)
    stored = await load(store, Maintenance, MAINTENANCE_ID)
    assert [update.status for update in stored.updates] == [
        "maintenance_scheduled", "maintenance_in_progress", "maintenance_complete"
    ]
    assert [update.by for update in stored.updates[1:]] == [SYSTEM.as_data(), SYSTEM.as_data()]
    assert len({update.id for update in stored.updates}) == 3
    assert await store.max_position() == 3
    # Published at the instants they were due; recorded (the log's `recorded_at`) when the scheduler ran.
    assert [update.published_at for update in stored.updates[1:]] == [START, END]
    assert [record.recorded_at for record in await store.read_stream_records(MAINTENANCE_ID)][1:] == [at(300)] * 2


async def test_scheduling_a_past_window_needs_the_id_of_its_start_update() -> None:
    store = InMemoryEventStore()

    maintenance, _ = await schedule_with(
        store, status="maintenance_complete", start_update_id="U-START", context=context(at(180))
    )

    assert [update.id for update in maintenance.updates] == ["U-START", "U0"]
    with pytest.raises(ValueError, match="start_update_id"):
        await schedule_with(store, status="maintenance_complete", idempotency_key="maint-2", context=context(at(180)))


async def test_the_scheduler_does_nothing_when_nothing_is_due() -> None:
    store = InMemoryEventStore()
    await schedule_with(store)

    _, steps = await advance_maintenance_automatically(
        store, maintenance_id=MAINTENANCE_ID, new_update_id=lambda: "AUTO", context=context(at(-1), SYSTEM)
    )

    assert steps == 0
    assert await store.max_position() == 1


async def test_update_edit_and_delete_through_the_handlers() -> None:
    store = InMemoryEventStore()
    await schedule_with(store)

    async def components_of(status_page_id: str) -> frozenset[str]:
        assert status_page_id == PAGE
        return PAGE_COMPONENTS

    await publish_notice_update(
        store, Maintenance, MAINTENANCE_ID, page_components=components_of, message="API too.",
        component_statuses={API: "under_maintenance"}, notify_subscribers=False, update_id="U1",
        context=context(at(-30)),
    )
    await edit_maintenance(
        store, maintenance_id=MAINTENANCE_ID, name="Database upgrade (v16)", start_at=START, end_at=at(180),
        context=context(at(-20)),
    )
    deleted = await delete_maintenance(store, maintenance_id=MAINTENANCE_ID, context=context(at(-10)))

    assert deleted.deleted
    stored = await load(store, Maintenance, MAINTENANCE_ID)
    assert (stored.name, stored.end_at, stored.deleted) == ("Database upgrade (v16)", at(180), True)
    assert stored.affected_component_ids == [DATABASE, API]
    with pytest.raises(NotFound):
        await delete_maintenance(store, maintenance_id=MAINTENANCE_ID, context=context(at(0)))
    assert await store.max_position() == 4


async def test_maintenance_events_replay_from_the_log() -> None:
    store = InMemoryEventStore()
    await schedule_with(store)
    await advance_maintenance_automatically(
        store, maintenance_id=MAINTENANCE_ID, new_update_id=lambda: "AUTO1", context=context(at(0), SYSTEM)
    )

    events = await store.load(MAINTENANCE_ID)

    assert [type(event) for event in events] == [Maintenance.Scheduled, Maintenance.Started]
    assert not any(isinstance(event, Maintenance.UpdatePublished) for event in events)


def test_a_window_spans_from_its_planned_start_until_it_impacts_then_from_its_periods() -> None:
    maintenance = schedule()
    assert maintenance.impact_span == (START, None)  # published at T0, but nothing happens before START

    publish(maintenance, 10, status="maintenance_in_progress")
    assert maintenance.impact_span == (at(10), None)
    publish(maintenance, 60, status="maintenance_complete")

    assert tuple(maintenance.impact_span) == (at(10), at(60))  # tuple(): mypy keeps the narrowing above
