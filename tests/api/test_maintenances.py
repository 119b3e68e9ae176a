"""Maintenance windows through HTTP: scheduled, moved on by updates, edited, deleted, listed — every 2xx
body parses with the official SDK's models and every write is visible to the next read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from incident_io.models.status_pages_create_status_page_maintenance_result_v2 import (
    StatusPagesCreateStatusPageMaintenanceResultV2,
)
from incident_io.models.status_pages_create_status_page_maintenance_update_result_v2 import (
    StatusPagesCreateStatusPageMaintenanceUpdateResultV2,
)
from incident_io.models.status_pages_list_status_page_maintenances_result_v2 import (
    StatusPagesListStatusPageMaintenancesResultV2,
)
from incident_io.models.status_pages_show_status_page_maintenance_result_v2 import (
    StatusPagesShowStatusPageMaintenanceResultV2,
)
from incident_io.models.status_pages_update_status_page_maintenance_result_v2 import (
    StatusPagesUpdateStatusPageMaintenanceResultV2,
)
from incident_io.types import UNSET
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from domain.maintenance import COMPLETED_MESSAGE, STARTED_MESSAGE
from infra.clock import FakeClock, format_timestamp
from infra.settings import Settings
from projections.rebuild import replay_check
from projections.registry import all_projections
from tests.support.builders import T0
from tests.support.http import (
    MAINTENANCE_END,
    MAINTENANCE_START,
    Keys,
    assert_envelope,
    create_maintenance,
    maintenance_with_status,
    present,
    setup_page,
    statuses,
)

Client = AsyncTestClient[Litestar]

# Far in the future, so the maintenance scheduler leaves these windows to the test.
START, END = MAINTENANCE_START, MAINTENANCE_END  # the window create_maintenance schedules


async def post_update(client: Client, keys: Keys, maintenance_id: str, **fields: Any) -> Any:
    body = {"status_page_maintenance_id": maintenance_id, "message": "News.", "notify_subscribers": False, **fields}
    return await client.post("/v2/status_page_maintenance_updates", json=body, headers=Keys.header(keys.publish))


async def show(client: Client, keys: Keys, maintenance_id: str, **params: str) -> Any:
    return await client.get(
        f"/v2/status_page_maintenances/{maintenance_id}", params=params, headers=Keys.header(keys.read)
    )


async def list_ids(client: Client, keys: Keys, **params: Any) -> list[str]:
    response = await client.get("/v2/status_page_maintenances", params=params, headers=Keys.header(keys.read))
    assert response.status_code == 200, response.text
    result = StatusPagesListStatusPageMaintenancesResultV2.from_dict(response.json())
    return [window.id for window in result.status_page_maintenances]


async def test_a_window_is_scheduled_started_completed_edited_and_deleted(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    response = await create_maintenance(client, keys, page, "m1", automate_maintenance_status=False)
    assert response.status_code == 201, response.text
    window = present(StatusPagesCreateStatusPageMaintenanceResultV2.from_dict(response.json()).status_page_maintenance)
    assert (window.name, window.maintenance_status.value, window.automate_maintenance_status) == (
        "DB upgrade",
        "maintenance_scheduled",
        False,
    )
    assert window.component_maintenance_periods == []
    assert (window["start_at"], window["end_at"]) == (START, END)  # Beacon's extra fields
    shown = await show(client, keys, window.id)
    assert shown.status_code == 200 and shown.json() == response.json()

    started = await post_update(client, keys, window.id, maintenance_status="maintenance_in_progress")
    assert started.status_code == 201, started.text
    update = present(
        StatusPagesCreateStatusPageMaintenanceUpdateResultV2.from_dict(started.json()).status_page_maintenance_update
    )
    assert update.maintenance_status.value == "maintenance_in_progress"
    assert [(c.component_id, c.component_status.value) for c in update.component_statuses] == [
        (page.db, "under_maintenance")
    ]
    current = StatusPagesShowStatusPageMaintenanceResultV2.from_dict((await show(client, keys, window.id)).json())
    [period] = present(current.status_page_maintenance).component_maintenance_periods
    assert (period.component_id, period.end_at) == (page.db, UNSET)

    edited = await client.put(
        f"/v2/status_page_maintenances/{window.id}",
        json={"name": "Postgres upgrade", "start_at": START, "end_at": "2099-01-28T13:00:00Z"},
        headers=Keys.header(keys.publish),
    )
    assert edited.status_code == 200, edited.text
    result = present(StatusPagesUpdateStatusPageMaintenanceResultV2.from_dict(edited.json()).status_page_maintenance)
    assert result.name == "Postgres upgrade" and result["end_at"] == "2099-01-28T13:00:00.000000Z"
    assert len(result.updates) == 2  # PUT publishes no update
    assert (await show(client, keys, window.id)).json() == edited.json()

    completing_with_components = await post_update(
        client,
        keys,
        window.id,
        maintenance_status="maintenance_complete",
        component_statuses=statuses((page.db, "operational")),
    )
    body = assert_envelope(completing_with_components, 422, "validation_error")
    assert body["errors"][0]["source"]["field"] == "component_statuses"

    completed = await post_update(client, keys, window.id, maintenance_status="maintenance_complete")
    assert completed.status_code == 201, completed.text
    final = (await show(client, keys, window.id)).json()["status_page_maintenance"]
    assert final["maintenance_status"] == "maintenance_complete"
    assert (
        final["component_maintenance_periods"][0]["end_at"]
        == completed.json()["status_page_maintenance_update"]["published_at"]
    )
    assert_envelope(await post_update(client, keys, window.id), 422, "validation_error")

    deleted = await client.delete(f"/v2/status_page_maintenances/{window.id}", headers=Keys.header(keys.publish))
    assert deleted.status_code == 204 and deleted.content == b""
    assert_envelope(await show(client, keys, window.id), 404, "not_found")
    assert await list_ids(client, keys, status_page_id=page.id) == []
    again = await client.delete(f"/v2/status_page_maintenances/{window.id}", headers=Keys.header(keys.publish))
    assert_envelope(again, 404, "not_found")
    assert_envelope(await post_update(client, keys, window.id), 404, "not_found")


async def test_idempotent_replay_and_rules(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    first = await create_maintenance(client, keys, page, "same")
    replay = await create_maintenance(client, keys, page, "same", name="Other")
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    # Off unless asked for, as incident.io's SDK documents (Beacon defaulted to on before).
    assert first.json()["status_page_maintenance"]["automate_maintenance_status"] is False

    cases: list[tuple[dict[str, Any], str]] = [
        ({"end_at": START}, "end_at"),
        ({"maintenance_status": "maintenance_soon"}, "maintenance_status"),
        ({"affected_component_ids": ["01ARZ3NDEKTSV4RRFFQ69G5FAV"]}, "affected_component_ids"),
        ({"name": ""}, "name"),
    ]
    for index, (fields, field) in enumerate(cases):
        response = await create_maintenance(client, keys, page, f"bad-{index}", **fields)
        body = assert_envelope(response, 422, "validation_error")
        # The list, or its first item where the error is about one item (docs/architecture.md#error-envelope).
        assert body["errors"][0]["source"]["field"] in (field, f"{field}[0]"), (fields, body)
    without_start = {
        "idempotency_key": "x",
        "status_page_id": page.id,
        "name": "n",
        "message": "m",
        "maintenance_status": "maintenance_scheduled",
        "end_at": END,
        "affected_component_ids": [],
        "notify_subscribers": False,
    }
    response = await client.post("/v2/status_page_maintenances", json=without_start, headers=Keys.header(keys.publish))
    error = assert_envelope(response, 422, "validation_error")["errors"][0]
    assert (error["code"], error["source"]["field"]) == ("is_required", "start_at")
    assert await list_ids(client, keys, status_page_id=page.id) == [first.json()["status_page_maintenance"]["id"]]


async def test_lists_filter_and_paginate_newest_first(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    ids = []
    for index, component in enumerate((page.api, page.db, page.web)):
        response = await create_maintenance(client, keys, page, f"w{index}", affected_component_ids=[component])
        assert response.status_code == 201, response.text
        ids.append(response.json()["status_page_maintenance"]["id"])
    newest_first = list(reversed(ids))
    assert await list_ids(client, keys, status_page_id=page.id) == newest_first
    assert await list_ids(client, keys, status_page_id=page.id, component_id=page.web) == [ids[2]]
    assert await list_ids(client, keys, status_page_id=page.id, group_id=page.backend) == [ids[1]]
    assert await list_ids(client, keys, status_page_id=page.id, sub_page_id=page.eu) == [ids[2]]
    # Time filters look at when a window affects its page: these are planned for START, not for now.
    assert await list_ids(client, keys, status_page_id=page.id, end_at="2099-01-28T09:59:59Z") == []
    assert await list_ids(client, keys, status_page_id=page.id, end_at=START) == newest_first
    assert await list_ids(client, keys, status_page_id=page.id, start_at="2098-01-01T00:00:00Z") == newest_first
    first_page = await client.get(
        "/v2/status_page_maintenances",
        params={"status_page_id": page.id, "page_size": 2},
        headers=Keys.header(keys.read),
    )
    body = first_page.json()
    assert [w["id"] for w in body["status_page_maintenances"]] == newest_first[:2]
    assert body["pagination_meta"] == {"page_size": 2, "after": newest_first[1]}
    assert await list_ids(client, keys, status_page_id=page.id, page_size=2, after=newest_first[1]) == newest_first[2:]
    bad_cursor = await client.get(
        "/v2/status_page_maintenances",
        params={"status_page_id": page.id, "after": "01ARZ3NDEKTSV4RRFFQ69G5FAV"},
        headers=Keys.header(keys.read),
    )
    assert_envelope(bad_cursor, 422, "validation_error")

    await client.delete(f"/v2/status_page_maintenances/{ids[1]}", headers=Keys.header(keys.publish))
    assert await list_ids(client, keys, status_page_id=page.id) == [ids[2], ids[0]]
    assert await list_ids(client, keys, status_page_id=page.id, group_id=page.backend) == []


# Long past, so these windows are over whatever the clock says.
PAST_START = "2020-03-01T22:00:00.000000Z"
PAST_END = "2020-03-01T22:15:00.000000Z"


async def test_a_window_that_is_over_can_only_be_recorded_as_complete_at_its_own_times(
    client: Client, keys: Keys
) -> None:
    page = await setup_page(client, keys)
    for status in ("maintenance_scheduled", "maintenance_in_progress"):
        refused = await create_maintenance(
            client, keys, page, f"past-{status}", maintenance_status=status, start_at=PAST_START, end_at=PAST_END
        )
        [error] = assert_envelope(refused, 422, "validation_error")["errors"]
        assert error["source"]["field"] == "end_at"
        assert "maintenance_complete" in error["message"] and status in error["message"], error

    response = await create_maintenance(
        client,
        keys,
        page,
        "past",
        maintenance_status="maintenance_complete",
        message="The database was upgraded.",
        start_at=PAST_START,
        end_at=PAST_END,
        affected_component_ids=[page.db, page.api],
    )
    assert response.status_code == 201, response.text
    window = present(StatusPagesCreateStatusPageMaintenanceResultV2.from_dict(response.json()).status_page_maintenance)
    body = response.json()["status_page_maintenance"]
    assert body["published_at"] == PAST_START
    assert [(u["published_at"], u["maintenance_status"]) for u in body["updates"]] == [
        (PAST_START, "maintenance_in_progress"),
        (PAST_END, "maintenance_complete"),
    ]
    assert body["updates"][-1]["message"] == "The database was upgraded."
    assert body["component_maintenance_periods"] == [
        {"component_id": page.db, "start_at": PAST_START, "end_at": PAST_END},
        {"component_id": page.api, "start_at": PAST_START, "end_at": PAST_END},
    ]
    assert (await show(client, keys, window.id)).json() == response.json()
    # Listed where it happened: the time filters see its periods.
    assert await list_ids(client, keys, status_page_id=page.id, start_at="2020-03-01T00:00:00Z",
                          end_at="2020-03-02T00:00:00Z") == [window.id]


async def test_a_put_cannot_move_the_end_of_an_open_window_into_the_past(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    created = await create_maintenance(client, keys, page, "open", start_at=PAST_START)
    assert created.status_code == 201, created.text
    window_id = created.json()["status_page_maintenance"]["id"]

    moved = await client.put(
        f"/v2/status_page_maintenances/{window_id}",
        json={"name": "DB upgrade", "start_at": PAST_START, "end_at": PAST_END},
        headers=Keys.header(keys.publish),
    )

    [error] = assert_envelope(moved, 422, "validation_error")["errors"]
    assert error["source"]["field"] == "end_at" and "maintenance_complete" in error["message"], error
    assert (await show(client, keys, window_id)).json() == created.json()


# Catch-up after downtime, on the app's own scheduler driven by a fake clock.
WINDOW_START = T0 + timedelta(hours=1)
WINDOW_END = WINDOW_START + timedelta(minutes=15)
RESTART = WINDOW_END + timedelta(hours=6)


@pytest.fixture
async def clocked(settings: Settings) -> AsyncIterator[tuple[Client, FakeClock]]:
    clock = FakeClock(T0)
    async with AsyncTestClient(app=create_app(settings, clock=clock)) as client:
        yield client, clock


async def test_after_downtime_a_15_minute_window_still_lasted_15_minutes_and_time_travel_sees_when_it_was_recorded(
    clocked: tuple[Client, FakeClock], keys: Keys, pool: asyncpg.Pool
) -> None:
    client, clock = clocked
    page = await setup_page(client, keys)
    start, end = format_timestamp(WINDOW_START), format_timestamp(WINDOW_END)
    created = await create_maintenance(
        client, keys, page, "auto", start_at=start, end_at=end, automate_maintenance_status=True
    )
    assert created.status_code == 201, created.text
    window_id = created.json()["status_page_maintenance"]["id"]

    # Beacon is down from before start_at until six hours after end_at; on restart it catches up.
    clock.set(RESTART)
    client.app.state.scheduler.wake()
    body = await maintenance_with_status(client, keys, window_id, "maintenance_complete")

    # The public history says when it happened: started at start_at, completed at end_at, 15 minutes.
    assert [(u["published_at"], u["message"]) for u in body["updates"]] == [
        (format_timestamp(T0), "We will upgrade the database."),
        (start, STARTED_MESSAGE),
        (end, COMPLETED_MESSAGE),
    ]
    assert body["component_maintenance_periods"] == [{"component_id": page.db, "start_at": start, "end_at": end}]
    # The log says when it was recorded: both steps at the restart, each taking effect at its instant.
    history = await client.get(f"/v2/status_page_maintenances/{window_id}/history", headers=Keys.header(keys.read))
    assert history.status_code == 200, history.text
    assert [
        (event["type"], event["recorded_at"], event["data"]["timestamp"])
        for event in history.json()["events"]
        if event["actor"] == {"type": "system"}
    ] == [
        ("beacon.Maintenance.Started", format_timestamp(RESTART), start),
        ("beacon.Maintenance.Completed", format_timestamp(RESTART), end),
    ]

    # Time travel selects by when things were recorded: just before the restart the window was still
    # scheduled (nothing had recorded its start), at the restart it is complete with the true times.
    before = await show(client, keys, window_id, as_of=format_timestamp(RESTART - timedelta(microseconds=1)))
    assert before.status_code == 200, before.text
    assert before.json()["status_page_maintenance"]["maintenance_status"] == "maintenance_scheduled"
    assert before.json()["status_page_maintenance"]["component_maintenance_periods"] == []
    at_restart = await show(client, keys, window_id, as_of=format_timestamp(RESTART))
    assert at_restart.status_code == 200, at_restart.text
    assert at_restart.json()["status_page_maintenance"] == body
    # The list read model, folded from the same events, agrees.
    listed = await client.get(
        "/v2/status_page_maintenances", params={"status_page_id": page.id}, headers=Keys.header(keys.read)
    )
    assert listed.json()["status_page_maintenances"] == [body]
    # Replay: every read model rebuilt from the log equals the live one.
    _, differences = await replay_check(pool, all_projections(), "beacon_maintenance_catch_up")
    assert differences == []
