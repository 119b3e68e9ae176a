"""Backfilled history counts in availability (docs/architecture.md#availability), through HTTP as a
client migrating from another provider would: components created today, a year of retrospective
incidents imported onto them, and availability checked against the arithmetic written out below —
not against the code under test. A component's data begins at the earlier of its creation and its
earliest impact on the page, and `availability_percent` is floored to 4 decimals: each expected figure
here would round up to a different one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from incident_io.models.status_pages_show_status_page_component_availability_result_v2 import (
    StatusPagesShowStatusPageComponentAvailabilityResultV2,
)
from incident_io.types import UNSET
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from infra.clock import FakeClock
from infra.settings import Settings
from tests.support.http import Keys, create_component, create_page

Client = AsyncTestClient[Litestar]

CREATED = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)
"""When the pages and components are created: the day of the migration."""
YEAR = {"start_at": "2024-01-01T00:00:00Z", "end_at": "2025-01-01T00:00:00Z"}  # 366 days, the longest window


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(CREATED)


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=create_app(settings, clock=clock)) as client:
        yield client


def outage(component_id: str, status: str, start: str, end: str, *, then: str | None = None, at: str = "") -> Any:
    """The updates of a retrospective incident: `component_id` goes to `status` at `start` (and to
    `then` at `at`, if given) and the incident is resolved at `end`."""
    updates: list[dict[str, Any]] = [
        {
            "published_at": start,
            "message": "Investigating.",
            "incident_status": "investigating",
            "component_statuses": [{"component_id": component_id, "component_status": status}],
        }
    ]
    if then is not None:
        updates.append(
            {
                "published_at": at,
                "message": "Worse.",
                "incident_status": "identified",
                "component_statuses": [{"component_id": component_id, "component_status": then}],
            }
        )
    updates.append({"published_at": end, "message": "Resolved.", "incident_status": "resolved"})
    return updates


async def import_incident(client: Client, keys: Keys, page_id: str, key: str, updates: Any) -> None:
    response = await client.post(
        "/v2/status_page_retrospective_incidents",
        json={"idempotency_key": key, "status_page_id": page_id, "name": f"Imported {key}", "updates": updates},
        headers=Keys.header(keys.publish),
    )
    assert response.status_code == 201, response.text


async def availability(client: Client, keys: Keys, page_id: str, component_id: str, window: dict[str, str]) -> Any:
    response = await client.get(
        f"/v2/status_pages/{page_id}/components/{component_id}/availability",
        params=window,
        headers=Keys.header(keys.read),
    )
    assert response.status_code == 200, response.text
    body = response.json()["availability"]
    StatusPagesShowStatusPageComponentAvailabilityResultV2.from_dict(response.json())  # the SDK reads it
    return body.get("availability_percent", UNSET), body["data_available_since"]


async def put_structure(client: Client, keys: Keys, page_id: str, items: list[dict[str, Any]]) -> None:
    response = await client.put(
        f"/v2/status_page_structures/{page_id}", json={"items": items}, headers=Keys.header(keys.admin)
    )
    assert response.status_code == 200, response.text


async def test_a_year_of_retrospective_incidents_on_new_components_counts_in_their_availability(
    client: Client, keys: Keys, clock: FakeClock
) -> None:
    page = (await create_page(client, keys, "acme"))["id"]
    other_page = (await create_page(client, keys, "acme-eu"))["id"]
    api = await create_component(client, keys, "API")
    db = await create_component(client, keys, "Database")
    await put_structure(
        client,
        keys,
        page,
        [{"component": {"component_id": api}}, {"group": {"name": "Backend", "components": [{"component_id": db}]}}],
    )
    await put_structure(client, keys, other_page, [{"component": {"component_id": api}}])
    created = "2025-01-10T09:00:00.000000Z"

    # Before the import: created today, so nothing is known of 2024.
    assert await availability(client, keys, page, api, YEAR) == (UNSET, created)

    # The API's year, as exported from the previous provider:
    # - 2 Jan 00:00–01:00 degraded performance: not downtime, but the earliest impact, so its data
    #   begins there;
    # - on the 10th of each month m, from 02:00, a partial outage of 5·m minutes (March's turns into a
    #   full outage after 10 minutes, still 15 minutes down);
    # - 10 Jul 02:30–03:30 a full outage overlapping July's 02:00–02:35: together 02:00–03:30;
    # - 31 Dec 23:47 – 1 Jan 00:30 a partial outage, 13 minutes of it inside 2024.
    slow = outage(api, "degraded_performance", "2024-01-02T00:00:00Z", "2024-01-02T01:00:00Z")
    await import_incident(client, keys, page, "slow-jan", slow)
    for month in range(1, 13):
        start = datetime(2024, month, 10, 2, 0, tzinfo=UTC)
        minutes = 5 * month
        end = start.replace(minute=minutes) if minutes < 60 else start.replace(hour=3)
        escalation = {"then": "full_outage", "at": "2024-03-10T02:10:00Z"} if month == 3 else {}
        updates = outage(api, "partial_outage", f"{start:%FT%H:%M:%SZ}", f"{end:%FT%H:%M:%SZ}", **escalation)
        await import_incident(client, keys, page, f"monthly-{month}", updates)
    await import_incident(
        client, keys, page, "july", outage(api, "full_outage", "2024-07-10T02:30:00Z", "2024-07-10T03:30:00Z")
    )
    await import_incident(
        client, keys, page, "new-year", outage(api, "partial_outage", "2024-12-31T23:47:00Z", "2025-01-01T00:30:00Z")
    )
    # The database's: 1 Jun 12:00–12:27 a partial outage (its earliest impact), 15 Sep a day of degraded
    # performance (not downtime).
    await import_incident(
        client, keys, page, "db-june", outage(db, "partial_outage", "2024-06-01T12:00:00Z", "2024-06-01T12:27:00Z")
    )
    slow = outage(db, "degraded_performance", "2024-09-15T00:00:00Z", "2024-09-16T00:00:00Z")
    await import_incident(client, keys, page, "db-sept", slow)

    # API: covered 2 Jan 2024 00:00 → 1 Jan 2025 00:00 = 365 days = 525,600 min. Down: the monthly
    # 5 + 10 + … + 60 = 390 min, with July's 35 counted as the 90 of 02:00–03:30 (+55), and 13 min on
    # New Year's Eve: 390 + 55 + 13 = 458 min. Up 525,142 / 525,600 = 99.91286149…% → "99.9128"
    # (rounding would say 99.9129).
    assert await availability(client, keys, page, api, YEAR) == ("99.9128", "2024-01-02T00:00:00.000000Z")
    # Database: covered 1 Jun 2024 12:00 → 1 Jan 2025 00:00 = 213.5 days = 307,440 min, down 27 min:
    # 307,413 / 307,440 = 99.99121779…% → "99.9912" (rounding would say 99.9912 too, so a second
    # window: 1 Jun 00:00 → 2 Jun 00:00 covers 12:00–24:00 = 720 min, 693 / 720 = 96.25%).
    assert await availability(client, keys, page, db, YEAR) == ("99.9912", "2024-06-01T12:00:00.000000Z")
    june = {"start_at": "2024-06-01T00:00:00Z", "end_at": "2024-06-02T00:00:00Z"}
    assert await availability(client, keys, page, db, june) == ("96.25", "2024-06-01T12:00:00.000000Z")
    # A window before any data is still unknown, not 100%.
    before = {"start_at": "2023-01-01T00:00:00Z", "end_at": "2024-01-02T00:00:00Z"}
    assert await availability(client, keys, page, api, before) == (UNSET, "2024-01-02T00:00:00.000000Z")
    # The other page has no incidents on the API: its data there begins at its creation.
    assert await availability(client, keys, other_page, api, YEAR) == (UNSET, created)


async def test_data_begins_at_creation_when_the_earliest_impact_is_later(
    client: Client, keys: Keys, clock: FakeClock
) -> None:
    page = (await create_page(client, keys, "acme"))["id"]
    web = await create_component(client, keys, "Web")
    await put_structure(client, keys, page, [{"component": {"component_id": web}}])

    clock.set(datetime(2025, 1, 20, 10, 0, tzinfo=UTC))
    declared = await client.post(
        "/v2/status_page_incidents",
        json={
            "idempotency_key": "live",
            "status_page_id": page,
            "name": "Web down",
            "message": "Investigating.",
            "incident_status": "investigating",
            "notify_subscribers": False,
            "component_statuses": [{"component_id": web, "component_status": "partial_outage"}],
        },
        headers=Keys.header(keys.publish),
    )
    assert declared.status_code == 201, declared.text
    clock.set(datetime(2025, 1, 20, 10, 30, tzinfo=UTC))
    resolved = await client.post(
        "/v2/status_page_incident_updates",
        json={
            "status_page_incident_id": declared.json()["status_page_incident"]["id"],
            "message": "Fixed.",
            "incident_status": "resolved",
            "notify_subscribers": False,
        },
        headers=Keys.header(keys.publish),
    )
    assert resolved.status_code == 201, resolved.text
    clock.set(datetime(2025, 2, 1, 0, 0, tzinfo=UTC))

    # Covered from its creation, 10 Jan 09:00, to 1 Feb 00:00 = 21 days 15 hours = 31,140 min; down
    # 10:00–10:30 on 20 Jan = 30 min: 31,110 / 31,140 = 99.90366088…% → "99.9036" (rounding: 99.9037).
    january = {"start_at": "2025-01-01T00:00:00Z", "end_at": "2025-02-01T00:00:00Z"}
    assert await availability(client, keys, page, web, january) == ("99.9036", "2025-01-10T09:00:00.000000Z")
