"""Time travel over HTTP (docs/architecture.md#time-travel): `as_of` gives the widget document, an incident or a
maintenance window
exactly as Beacon served it at that instant. The tests keep what the live endpoints answered after each
write, with the `recorded_at` of the write's last event from the audit API, and ask for it back later."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from typing import Any
from unittest.mock import ANY

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from infra.clock import FakeClock, format_timestamp
from infra.event_store import PostgresEventStore
from infra.settings import Settings
from projections.public_widget import documents_as_of
from tests.support.builders import T0
from tests.support.http import Keys, assert_envelope, create_component, create_page

Client = AsyncTestClient[Litestar]
BASE = "https://status.acme.test"
# Far past the fake clock, so the maintenance scheduler never moves the window by itself.
START = "2026-03-01T10:00:00.000000Z"
END = "2026-03-01T12:00:00.000000Z"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=create_app(settings, clock=clock)) as client:
        yield client


@dataclass
class Timeline:
    """Drives the scenario: each write happens one fake minute after the previous one, and `mark` returns
    the `recorded_at` of the newest event in the log (read from the audit API, as an auditor would)."""

    client: Client
    keys: Keys
    clock: FakeClock
    position: int = 0
    instants: list[str] = field(default_factory=list)

    def tick(self) -> None:
        self.clock.advance(timedelta(minutes=1))

    async def mark(self) -> str:
        response = await self.client.get(
            "/v2/audit/events",
            params={"after": self.position, "limit": 1000},
            headers=Keys.header(self.keys.admin),
        )
        assert response.status_code == 200, response.text
        events = response.json()["events"]
        assert events, "the write recorded no event"
        self.position = events[-1]["position"]
        recorded_at: str = events[-1]["recorded_at"]
        assert not self.instants or recorded_at > self.instants[-1]
        self.instants.append(recorded_at)
        return recorded_at

    async def write(self, method: str, path: str, key: str, json: Any = None) -> Any:
        self.tick()
        response = await self.client.request(method, path, json=json, headers=Keys.header(key))
        assert response.status_code in (200, 201, 204), response.text
        return response.json() if response.content else None


@dataclass(frozen=True)
class Served:
    """What the live endpoints answered right after a write whose last event was recorded at `at`."""

    at: str
    label: str
    body: bytes | None
    etag: str | None
    sub_page: bytes | None = None


def shifted(instant: str, delta: timedelta) -> str:
    return format_timestamp(datetime.fromisoformat(instant) + delta)


async def widget(client: Client, keys: Keys, page_id: str, as_of: str | None = None) -> Any:
    params = {"as_of": as_of} if as_of is not None else {}
    return await client.get(f"/v2/status_pages/{page_id}/widget", params=params, headers=Keys.header(keys.read))


def structure(api: str, login: str, eu_api: str, *, reshaped: bool = False) -> dict[str, Any]:
    """API at the top, Login in group Auth, sub-page `eu` with EU API; reshaped: Login at the top and
    API hidden inside a new group Core."""
    eu = {"sub_page": {"name": "Europe", "slug": "eu", "items": [{"component": {"component_id": eu_api}}]}}
    if reshaped:
        return {
            "items": [
                {"component": {"component_id": login}},
                {"group": {"name": "Core", "components": [{"component_id": api, "hidden": True}]}},
                eu,
            ]
        }
    return {
        "items": [
            {"component": {"component_id": api}},
            {"group": {"name": "Auth", "components": [{"component_id": login}]}},
            eu,
        ]
    }


async def test_widget_as_of_each_write_is_the_document_served_then_byte_for_byte(
    client: Client, keys: Keys, clock: FakeClock, database_url: str
) -> None:
    timeline = Timeline(client, keys, clock)
    kept: list[Served] = []

    async def keep(label: str, page_id: str) -> None:
        at = await timeline.mark()
        live = await widget(client, keys, page_id)
        sub_page = await client.get("/acme/eu/api/v1/summary")
        if live.status_code == 404:
            kept.append(Served(at, label, None, None))
            return
        assert live.status_code == 200, live.text
        kept.append(
            Served(
                at, label, live.content, live.headers["etag"], sub_page.content if sub_page.status_code == 200 else None
            )
        )

    clock.advance(timedelta(minutes=1))
    page = await create_page(client, keys, "acme", public_url=BASE)
    page_id = page["id"]
    await keep("page created", page_id)
    timeline.tick()
    api = await create_component(client, keys, "API")
    timeline.tick()
    login = await create_component(client, keys, "Login")
    timeline.tick()
    eu_api = await create_component(client, keys, "EU API")
    await keep("components created, not placed", page_id)
    await timeline.write("PUT", f"/v2/status_page_structures/{page_id}", keys.admin, structure(api, login, eu_api))
    await keep("structure", page_id)

    incident = await timeline.write(
        "POST",
        "/v2/status_page_incidents",
        keys.publish,
        {
            "idempotency_key": "i1",
            "status_page_id": page_id,
            "name": "Login failing",
            "message": "Looking into it.",
            "incident_status": "investigating",
            "notify_subscribers": False,
            "component_statuses": [
                {"component_id": login, "component_status": "partial_outage"},
                {"component_id": eu_api, "component_status": "degraded_performance"},
            ],
        },
    )
    incident_id = incident["status_page_incident"]["id"]
    await keep("incident declared", page_id)
    await timeline.write("PUT", f"/v2/status_pages/{page_id}", keys.admin, {"name": "Acme Corp", "public_url": BASE})
    await keep("page renamed", page_id)
    await timeline.write("PUT", f"/v2/status_page_components/{login}", keys.admin, {"name": "Sign-in"})
    await keep("component renamed", page_id)
    await timeline.write(
        "POST",
        "/v2/status_page_incident_updates",
        keys.publish,
        {
            "status_page_incident_id": incident_id,
            "message": "Found it.",
            "incident_status": "identified",
            "notify_subscribers": False,
            "component_statuses": [{"component_id": api, "component_status": "full_outage"}],
        },
    )
    await keep("incident update", page_id)
    await timeline.write("PUT", f"/v2/status_page_incidents/{incident_id}", keys.publish, {"name": "Sign-in failing"})
    await keep("incident renamed", page_id)

    maintenance = await timeline.write(
        "POST",
        "/v2/status_page_maintenances",
        keys.publish,
        {
            "idempotency_key": "m1",
            "status_page_id": page_id,
            "name": "DB upgrade",
            "message": "We will upgrade the database.",
            "maintenance_status": "maintenance_scheduled",
            "start_at": START,
            "end_at": END,
            "affected_component_ids": [api, eu_api],
            "notify_subscribers": False,
        },
    )
    maintenance_id = maintenance["status_page_maintenance"]["id"]
    await keep("maintenance scheduled", page_id)
    await timeline.write(
        "POST",
        "/v2/status_page_maintenance_updates",
        keys.publish,
        {
            "status_page_maintenance_id": maintenance_id,
            "message": "Started early.",
            "maintenance_status": "maintenance_in_progress",
            "notify_subscribers": False,
        },
    )
    await keep("maintenance started", page_id)
    await timeline.write(
        "POST",
        "/v2/status_page_incident_updates",
        keys.publish,
        {
            "status_page_incident_id": incident_id,
            "message": "Fixed.",
            "incident_status": "resolved",
            "notify_subscribers": False,
        },
    )
    await keep("incident resolved", page_id)
    await timeline.write(
        "PUT", f"/v2/status_page_structures/{page_id}", keys.admin, structure(api, login, eu_api, reshaped=True)
    )
    await keep("structure reshaped", page_id)
    await timeline.write("DELETE", f"/v2/status_page_maintenances/{maintenance_id}", keys.publish)
    await keep("maintenance deleted", page_id)
    await timeline.write(
        "PUT",
        f"/v2/status_pages/{page_id}",
        keys.admin,
        {"name": "Acme Corp", "public_url": BASE, "widget_api_enabled": False},
    )
    await keep("widget disabled", page_id)
    # A page PUT is partial (an absent field keeps its value), so enabling the widget says so.
    enable = {"name": "Acme", "public_url": BASE, "widget_api_enabled": True}
    await timeline.write("PUT", f"/v2/status_pages/{page_id}", keys.admin, enable)
    await keep("widget enabled again", page_id)

    # The story changed the live document at every step but two (components show only through notices).
    changed = [served.label for previous, served in pairwise(kept) if served.body != previous.body]
    assert changed == [served.label for served in kept[3:]]
    assert kept[-2].body is None and kept[-1].body == kept[0].body != kept[-3].body
    assert b"Sign-in failing" in (kept[7].body or b"") and b"maintenance_in_progress" in (kept[9].body or b"")

    for served in kept:
        for instant in (served.at, shifted(served.at, timedelta(seconds=30))):  # at the write, and before the next
            response = await widget(client, keys, page_id, as_of=instant)
            if served.body is None:
                assert_envelope(response, 404, "not_found")
                continue
            assert response.status_code == 200, (served.label, response.text)
            assert response.content == served.body, served.label
            assert response.headers["etag"] == served.etag, served.label

    # The same fold gives every sub-page document too (the live widget route is the only one for those).
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        store = PostgresEventStore(pool)
        for served in kept:
            documents = await documents_as_of(store, page_id, datetime.fromisoformat(served.at), page_size=3)
            assert documents is not None
            assert documents.get("eu") == served.sub_page, served.label
            assert documents.get("") == served.body, served.label
    finally:
        await pool.close()

    before = await widget(client, keys, page_id, as_of=shifted(kept[0].at, -timedelta(microseconds=1)))
    assert_envelope(before, 404, "not_found")
    future = await widget(client, keys, page_id, as_of="2999-01-01T00:00:00Z")
    assert future.status_code == 200
    assert (future.content, future.headers["etag"]) == (kept[-1].body, kept[-1].etag)
    east = datetime.fromisoformat(kept[3].at).astimezone(timezone(timedelta(hours=2))).isoformat()
    offset = await widget(client, keys, page_id, as_of=east)  # the same instant written with another offset
    assert offset.content == kept[3].body


async def test_widget_as_of_rejects_what_is_not_an_instant_and_unknown_pages(client: Client, keys: Keys) -> None:
    page = await create_page(client, keys, "acme")
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "2026-01-28T10:00:00"):
        body = assert_envelope(await widget(client, keys, page["id"], as_of=bad), 422, "validation_error")
        source = {"field": "as_of", "pointer": "?as_of"}
        assert body["errors"] == [{"code": "invalid_value", "message": ANY, "source": source}], bad
    unknown = await widget(client, keys, "01ARZ3NDEKTSV4RRFFQ69G5FAV", as_of="2999-01-01T00:00:00Z")
    assert_envelope(unknown, 404, "not_found")
    unauthenticated = await client.get(
        f"/v2/status_pages/{page['id']}/widget", params={"as_of": "2999-01-01T00:00:00Z"}
    )
    assert_envelope(unauthenticated, 401, "authentication_error")


async def test_incident_and_maintenance_as_of_each_write_is_what_show_answered_then(
    client: Client, keys: Keys, clock: FakeClock
) -> None:
    timeline = Timeline(client, keys, clock)
    clock.advance(timedelta(minutes=1))
    page = await create_page(client, keys, "acme")
    timeline.tick()
    db = await create_component(client, keys, "Database")
    await timeline.write(
        "PUT",
        f"/v2/status_page_structures/{page['id']}",
        keys.admin,
        {"items": [{"component": {"component_id": db}}]},
    )
    await timeline.mark()

    incident_path = "/v2/status_page_incidents"
    shown: list[tuple[str, str, Any]] = []  # (path, recorded_at, body or None when show answered 404)

    async def keep(path: str) -> None:
        at = await timeline.mark()
        response = await client.get(path, headers=Keys.header(keys.read))
        assert response.status_code in (200, 404), response.text
        shown.append((path, at, response.json() if response.status_code == 200 else None))

    incident = await timeline.write(
        "POST",
        incident_path,
        keys.publish,
        {
            "idempotency_key": "i1",
            "status_page_id": page["id"],
            "name": "Slow queries",
            "message": "Looking into it.",
            "incident_status": "investigating",
            "notify_subscribers": False,
            "component_statuses": [{"component_id": db, "component_status": "degraded_performance"}],
        },
    )
    incident_id = f"{incident_path}/{incident['status_page_incident']['id']}"
    await keep(incident_id)
    await timeline.write(
        "POST",
        "/v2/status_page_incident_updates",
        keys.publish,
        {
            "status_page_incident_id": incident["status_page_incident"]["id"],
            "message": "Worse.",
            "incident_status": "identified",
            "notify_subscribers": False,
            "component_statuses": [{"component_id": db, "component_status": "full_outage"}],
        },
    )
    await keep(incident_id)
    await timeline.write("PUT", incident_id, keys.publish, {"name": "Database down"})
    await keep(incident_id)
    await timeline.write(
        "POST",
        "/v2/status_page_incident_updates",
        keys.publish,
        {
            "status_page_incident_id": incident["status_page_incident"]["id"],
            "message": "Fixed.",
            "incident_status": "resolved",
            "notify_subscribers": False,
        },
    )
    await keep(incident_id)

    maintenance = await timeline.write(
        "POST",
        "/v2/status_page_maintenances",
        keys.publish,
        {
            "idempotency_key": "m1",
            "status_page_id": page["id"],
            "name": "DB upgrade",
            "message": "We will upgrade the database.",
            "maintenance_status": "maintenance_scheduled",
            "start_at": START,
            "end_at": END,
            "affected_component_ids": [db],
            "notify_subscribers": False,
        },
    )
    maintenance_id = f"/v2/status_page_maintenances/{maintenance['status_page_maintenance']['id']}"
    await keep(maintenance_id)
    await timeline.write(
        "PUT", maintenance_id, keys.publish, {"name": "DB upgrade (moved)", "start_at": START, "end_at": END}
    )
    await keep(maintenance_id)
    await timeline.write(
        "POST",
        "/v2/status_page_maintenance_updates",
        keys.publish,
        {
            "status_page_maintenance_id": maintenance["status_page_maintenance"]["id"],
            "message": "Under way.",
            "maintenance_status": "maintenance_in_progress",
            "notify_subscribers": False,
        },
    )
    await keep(maintenance_id)
    await timeline.write("DELETE", maintenance_id, keys.publish)
    await keep(maintenance_id)
    assert shown[-1][2] is None  # the deleted window is gone from the live reads

    for path, at, body in shown:
        for instant in (at, shifted(at, timedelta(seconds=30))):
            response = await client.get(path, params={"as_of": instant}, headers=Keys.header(keys.read))
            if body is None:
                assert_envelope(response, 404, "not_found")
            else:
                assert response.status_code == 200, response.text
                assert response.json() == body
    for path in (incident_id, maintenance_id):
        first = next(at for p, at, _ in shown if p == path)
        response = await client.get(
            path, params={"as_of": shifted(first, -timedelta(microseconds=1))}, headers=Keys.header(keys.read)
        )
        assert_envelope(response, 404, "not_found")
