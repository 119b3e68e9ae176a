"""The audit API through HTTP (docs/architecture.md#audit): the log in commit order as JSON pages and as streamed
NDJSON, its filters, admin-only access, and each incident's and maintenance window's history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from domain.base import CommandContext, save
from domain.incident import Incident
from domain.maintenance import Maintenance
from infra.event_store import PostgresEventStore
from infra.ids import new_ulid, ulid_to_uuid, uuid_to_ulid
from tests.support.builders import OPERATOR, PUBLISHER, T0
from tests.support.http import Keys, assert_envelope
from tests.support.tally import new_tally

Client = AsyncTestClient[Litestar]
FIELDS = {
    "position", "stream_id", "stream_type", "version", "type", "recorded_at", "actor", "request_id", "data", "hash"
}


async def _create_pages(client: Client, keys: Keys, count: int) -> list[tuple[str, str]]:
    """(page id, the request id that created it) for `count` new pages."""
    created = []
    for index in range(count):
        response = await client.post(
            "/v2/status_pages", json={"name": f"Page {index}", "slug": f"page-{index}"}, headers=Keys.header(keys.admin)
        )
        assert response.status_code == 201, response.text
        created.append((response.json()["status_page"]["id"], response.headers["x-request-id"]))
    return created


async def _all_pages(client: Client, keys: Keys, query: str = "") -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = None
    while True:
        cursor = f"&after={after}" if after is not None else ""
        response = await client.get(f"/v2/audit/events?limit=2{query}{cursor}", headers=Keys.header(keys.admin))
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["events"]) <= 2 and body["pagination_meta"]["limit"] == 2
        events += body["events"]
        after = body["pagination_meta"].get("after")
        if after is None:
            return events
        assert after == body["events"][-1]["position"]


async def test_the_log_pages_in_commit_order_with_who_when_and_which_request(
    client: Client, keys: Keys, pool: asyncpg.Pool
) -> None:
    pages = await _create_pages(client, keys, 3)
    rename = await client.put(
        f"/v2/status_pages/{pages[0][0]}", json={"name": "Renamed"}, headers=Keys.header(keys.admin)
    )
    assert rename.status_code == 200, rename.text

    events = await _all_pages(client, keys)

    stored = await pool.fetch("SELECT notification_id, hash FROM beacon_events ORDER BY notification_id")
    assert [e["position"] for e in events] == [row["notification_id"] for row in stored]
    assert [e["hash"] for e in events] == [row["hash"].hex() for row in stored]
    assert all(set(event) == FIELDS for event in events)
    page_events = [e for e in events if e["stream_type"] == "status_page"]
    assert [(e["stream_id"], e["version"], e["type"]) for e in page_events] == [
        (pages[0][0], 1, "beacon.StatusPage.Created"),
        (pages[1][0], 1, "beacon.StatusPage.Created"),
        (pages[2][0], 1, "beacon.StatusPage.Created"),
        (pages[0][0], 2, "beacon.StatusPage.Updated"),
    ]
    first = page_events[0]
    assert first["request_id"] == pages[0][1]
    assert first["actor"]["type"] == "api_key" and first["actor"]["name"] == "admin"
    assert first["data"]["name"] == "Page 0" and first["data"]["by"] == first["actor"]
    assert first["data"]["timestamp"] == first["recorded_at"] and first["recorded_at"].endswith("Z")
    assert page_events[3]["data"]["name"] == "Renamed"
    assert page_events[3]["request_id"] == rename.headers["x-request-id"]


async def test_filters_select_one_stream_and_a_time_range(client: Client, keys: Keys, pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    tallies = [new_tally(f"t{index}") for index in range(2)]
    for hour in range(4):
        tally = tallies[hour % 2]
        tally.mark(f"h{hour}", at=T0 + timedelta(hours=hour), by=OPERATOR)
        await save(store, tally, CommandContext(now=T0 + timedelta(hours=hour), actor=OPERATOR))
    wanted = uuid_to_ulid(tallies[1].id)

    one_stream = await _all_pages(client, keys, f"&stream_id={wanted}")
    assert [(e["stream_id"], e["version"]) for e in one_stream] == [(wanted, 1), (wanted, 2), (wanted, 3)]

    window = await _all_pages(client, keys, "&since=2026-01-28T11:00:00Z&until=2026-01-28T13:00:00.000000Z")
    # since inclusive, until exclusive; the second tally was created in the same append as its first mark
    assert [e["data"].get("label") for e in window] == [None, "h1", "h2"]

    both = await _all_pages(client, keys, f"&stream_id={wanted}&since=2026-01-28T10:30:00%2B00:00")
    assert [e["data"].get("label") for e in both] == [None, "h1", "h3"]


async def test_bad_parameters_are_422_with_the_field_named(client: Client, keys: Keys) -> None:
    for query, field in (
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("after=-1", "after"),
        ("stream_id=not-an-id", "stream_id"),
        ("since=yesterday", "since"),
        ("until=2026-01-28T10:00:00", "until"),
    ):
        response = await client.get(f"/v2/audit/events?{query}", headers=Keys.header(keys.admin))
        body = assert_envelope(response, 422, "validation_error")
        # A query parameter's pointer is `?name` (RFC 6901 points into the body only).
        assert body["errors"][0]["source"] == {"field": field, "pointer": f"?{field}"}, query
    accepted = await client.get("/v2/audit/events?limit=1000", headers=Keys.header(keys.admin))
    assert accepted.status_code == 200 and accepted.json() == {"events": [], "pagination_meta": {"limit": 1000}}


async def test_ndjson_streams_the_whole_selection_past_one_page(client: Client, keys: Keys, pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    tally = new_tally("big")
    for index in range(1200):
        tally.mark(f"m{index}", at=T0, by=OPERATOR)
    await save(store, tally, CommandContext(now=T0, actor=OPERATOR, request_id="bulk"))
    await _create_pages(client, keys, 1)

    response = await client.get(
        "/v2/audit/events?after=1&limit=5",
        headers={**Keys.header(keys.admin), "Accept": "application/x-ndjson"},
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.text.endswith("\n")
    events = [json.loads(line) for line in response.text.splitlines()]
    assert len(events) == 1200 + 1  # everything after position 1, limit ignored: 1200 marks + the page
    assert [e["position"] for e in events] == sorted(e["position"] for e in events) and events[0]["position"] == 2
    assert events[-1]["type"] == "beacon.StatusPage.Created"
    assert events[-2]["data"]["label"] == "m1199" and events[-2]["request_id"] == "bulk"

    filtered = await client.get(
        f"/v2/audit/events?stream_id={uuid_to_ulid(tally.id)}&since=2026-01-28T10:00:00Z",
        headers={**Keys.header(keys.admin), "Accept": "application/json, application/x-ndjson;q=0.9"},
    )
    assert filtered.status_code == 200 and len(filtered.text.splitlines()) == 1201


async def test_only_admin_keys_read_the_audit_log(client: Client, keys: Keys) -> None:
    for token in (keys.publish, keys.read):
        assert_envelope(await client.get("/v2/audit/events", headers=Keys.header(token)), 403, "resource_forbidden")
        streamed = await client.get(
            "/v2/audit/events", headers={**Keys.header(token), "Accept": "application/x-ndjson"}
        )
        assert_envelope(streamed, 403, "resource_forbidden")
    assert_envelope(await client.get("/v2/audit/events"), 401, "authentication_error")


async def _declare_incident(store: PostgresEventStore, page_id: str) -> UUID:
    incident = Incident.declare(
        id=uuid4(),
        status_page_id=page_id,
        page_components=frozenset(),
        name="Login failing",
        message="Investigating",
        status="investigating",
        component_statuses=None,
        notify_subscribers=False,
        update_id=new_ulid(T0),
        at=T0,
        by=PUBLISHER,
    )
    incident.publish_update(
        update_id=new_ulid(T0),
        message="Fixed",
        status="resolved",
        component_statuses=None,
        notify_subscribers=True,
        page_components=frozenset(),
        at=T0 + timedelta(minutes=30),
        by=PUBLISHER,
    )
    await save(store, incident, CommandContext(now=T0, actor=PUBLISHER, request_id="req-declare"))
    incident.rename(name="Login failing for EU", at=T0 + timedelta(hours=1), by=PUBLISHER)
    await save(store, incident, CommandContext(now=T0 + timedelta(hours=1), actor=PUBLISHER, request_id="req-rename"))
    return incident.id


async def _scheduled_then_deleted_maintenance(store: PostgresEventStore, page_id: str) -> UUID:
    start = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
    maintenance = Maintenance.schedule(
        id=uuid4(),
        status_page_id=page_id,
        page_components=frozenset(),
        name="DB upgrade",
        message="Planned",
        status="maintenance_scheduled",
        affected_component_ids=[],
        start_at=start,
        end_at=start + timedelta(hours=2),
        notify_subscribers=False,
        update_id=new_ulid(T0),
        at=T0,
        by=PUBLISHER,
    )
    await save(store, maintenance, CommandContext(now=T0, actor=PUBLISHER))
    maintenance.delete(at=T0 + timedelta(minutes=5), by=PUBLISHER)
    await save(store, maintenance, CommandContext(now=T0 + timedelta(minutes=5), actor=PUBLISHER))
    return maintenance.id


async def test_an_incident_history_lists_its_events_in_version_order_to_any_key(
    client: Client, keys: Keys, pool: asyncpg.Pool
) -> None:
    [(page_id, _)] = await _create_pages(client, keys, 1)
    incident_id = uuid_to_ulid(await _declare_incident(PostgresEventStore(pool), page_id))

    response = await client.get(f"/v2/status_page_incidents/{incident_id}/history", headers=Keys.header(keys.read))

    assert response.status_code == 200, response.text
    events = response.json()["events"]
    assert all(set(event) == FIELDS for event in events)
    assert [(e["version"], e["type"], e["request_id"]) for e in events] == [
        (1, "beacon.Incident.Declared", "req-declare"),
        (2, "beacon.Incident.UpdatePublished", "req-declare"),
        (3, "beacon.Incident.Renamed", "req-rename"),
    ]
    assert {e["stream_id"] for e in events} == {incident_id} and events[0]["stream_type"] == "status_page_incident"
    assert events[0]["data"]["status_page_id"] == page_id and events[0]["data"]["name"] == "Login failing"
    assert events[1]["data"]["incident_status"] == "resolved"
    assert events[2]["data"] == {
        "name": "Login failing for EU",
        "by": PUBLISHER.as_data(),
        "timestamp": "2026-01-28T11:00:00.000000Z",
    }
    assert all(e["actor"] == PUBLISHER.as_data() for e in events)


async def test_a_deleted_maintenance_keeps_its_history(client: Client, keys: Keys, pool: asyncpg.Pool) -> None:
    [(page_id, _)] = await _create_pages(client, keys, 1)
    maintenance_id = uuid_to_ulid(await _scheduled_then_deleted_maintenance(PostgresEventStore(pool), page_id))

    response = await client.get(
        f"/v2/status_page_maintenances/{maintenance_id}/history", headers=Keys.header(keys.publish)
    )

    assert response.status_code == 200, response.text
    assert [e["type"] for e in response.json()["events"]] == [
        "beacon.Maintenance.Scheduled",
        "beacon.Maintenance.Deleted",
    ]


async def test_history_of_an_unknown_or_other_kind_of_stream_is_404(
    client: Client, keys: Keys, pool: asyncpg.Pool
) -> None:
    [(page_id, _)] = await _create_pages(client, keys, 1)
    incident_id = uuid_to_ulid(await _declare_incident(PostgresEventStore(pool), page_id))
    assert ulid_to_uuid(incident_id)
    read = Keys.header(keys.read)
    for path in (
        f"/v2/status_page_maintenances/{incident_id}/history",  # an incident is not a maintenance window
        f"/v2/status_page_incidents/{page_id}/history",  # nor is a status page an incident
        f"/v2/status_page_incidents/{new_ulid(T0)}/history",
        "/v2/status_page_incidents/not-an-id/history",
        f"/v2/status_page_maintenances/{new_ulid(T0)}/history",
    ):
        assert_envelope(await client.get(path, headers=read), 404, "not_found")
    assert_envelope(await client.get(f"/v2/status_page_incidents/{incident_id}/history"), 401, "authentication_error")
