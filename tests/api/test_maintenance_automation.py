"""Maintenance automation seen through HTTP, as a client would (docs/architecture.md#7-time-and-automation): the app's
own scheduler, driven by a fake clock, starts a window at `start_at` and completes it at `end_at`, and GET shows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from domain.maintenance import COMPLETED_MESSAGE, STARTED_MESSAGE
from infra.clock import FakeClock, format_timestamp
from infra.settings import Settings
from tests.support.builders import T0
from tests.support.http import Keys, maintenance_with_status

START = T0 + timedelta(hours=1)
END = T0 + timedelta(hours=2)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=create_app(settings, clock=clock)) as client:
        yield client


async def test_get_shows_the_window_in_progress_then_complete_after_the_scheduler_ran(
    client: AsyncTestClient[Litestar], keys: Keys, clock: FakeClock
) -> None:
    admin = Keys.header(keys.admin)
    page = await client.post("/v2/status_pages", json={"name": "Acme", "slug": "acme"}, headers=admin)
    page_id = page.json()["status_page"]["id"]
    component = await client.post("/v2/status_page_components", json={"name": "Database"}, headers=admin)
    component_id = component.json()["status_page_component"]["id"]
    structure = {"items": [{"component": {"component_id": component_id}}]}
    assert (await client.put(f"/v2/status_page_structures/{page_id}", json=structure, headers=admin)).status_code == 200
    created = await client.post(
        "/v2/status_page_maintenances",
        json={
            "idempotency_key": "upgrade-1",
            "status_page_id": page_id,
            "name": "Database upgrade",
            "message": "We will upgrade the primary database.",
            "maintenance_status": "maintenance_scheduled",
            "start_at": format_timestamp(START),
            "end_at": format_timestamp(END),
            "affected_component_ids": [component_id],
            "notify_subscribers": False,
            "automate_maintenance_status": True,  # off by default, as incident.io's SDK documents
        },
        headers=Keys.header(keys.publish),
    )
    assert created.status_code == 201, created.text
    maintenance_id = created.json()["status_page_maintenance"]["id"]

    clock.set(START)
    client.app.state.scheduler.wake()
    started = await maintenance_with_status(client, keys, maintenance_id, "maintenance_in_progress")
    assert started["updates"][-1]["message"] == STARTED_MESSAGE
    assert started["updates"][-1]["published_at"] == format_timestamp(START)
    assert started["component_maintenance_periods"] == [
        {"component_id": component_id, "start_at": format_timestamp(START)}
    ]

    clock.set(END)
    client.app.state.scheduler.wake()
    completed = await maintenance_with_status(client, keys, maintenance_id, "maintenance_complete")
    assert [update["message"] for update in completed["updates"]][-2:] == [STARTED_MESSAGE, COMPLETED_MESSAGE]
    assert completed["component_maintenance_periods"] == [
        {"component_id": component_id, "start_at": format_timestamp(START), "end_at": format_timestamp(END)}
    ]
