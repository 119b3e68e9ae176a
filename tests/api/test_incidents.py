"""Incidents through HTTP, as an incident.io client would drive them: every 2xx body parses with the
official SDK's models, rules surface as 422 naming the field, and every write is visible to the next
read (list and show)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from incident_io.models.status_pages_create_status_page_incident_result_v2 import (
    StatusPagesCreateStatusPageIncidentResultV2,
)
from incident_io.models.status_pages_create_status_page_incident_update_result_v2 import (
    StatusPagesCreateStatusPageIncidentUpdateResultV2,
)
from incident_io.models.status_pages_create_status_page_retrospective_incident_result_v2 import (
    StatusPagesCreateStatusPageRetrospectiveIncidentResultV2,
)
from incident_io.models.status_pages_show_status_page_component_availability_result_v2 import (
    StatusPagesShowStatusPageComponentAvailabilityResultV2,
)
from incident_io.models.status_pages_update_status_page_incident_result_v2 import (
    StatusPagesUpdateStatusPageIncidentResultV2,
)
from incident_io.types import UNSET

from infra.ids import is_ulid
from projections.component_availability import Interval, availability_percent, downtime
from tests.support.http import (
    Client,
    Keys,
    assert_envelope,
    create_component,
    create_incident,
    list_incident_ids,
    post_incident_update,
    present,
    setup_page,
    show_incident,
    statuses,
)


async def test_an_incident_is_declared_updated_renamed_and_resolved(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    response = await create_incident(
        client, keys, page, "k1", component_statuses=statuses((page.api, "partial_outage"))
    )
    assert response.status_code == 201, response.text
    assert "idempotent-replayed" not in response.headers
    incident = present(StatusPagesCreateStatusPageIncidentResultV2.from_dict(response.json()).status_page_incident)
    assert is_ulid(incident.id) and incident.status_page_id == page.id
    assert (incident.name, incident.incident_status.value) == ("Login failing", "investigating")
    assert [(u.message, u.status_page_incident_id) for u in incident.updates] == [
        ("We are looking into it.", incident.id)
    ]
    [impact] = incident.component_impacts
    assert (impact.component_id, impact.component_status.value, impact.end_at) == (page.api, "partial_outage", UNSET)
    assert impact.start_at == incident.published_at
    # Read-your-writes: the very next GET shows exactly what the write answered.
    assert await show_incident(client, keys, incident.id) == response.json()["status_page_incident"]

    # Partial component statuses: naming `db` leaves `api` as it was.
    update = await post_incident_update(
        client, keys, incident.id, incident_status="identified", component_statuses=statuses((page.db, "full_outage"))
    )
    assert update.status_code == 201, update.text
    published = present(
        StatusPagesCreateStatusPageIncidentUpdateResultV2.from_dict(update.json()).status_page_incident_update
    )
    assert (published.incident_status.value, published.status_page_incident_id) == ("identified", incident.id)
    assert [(c.component_id, c.component_status.value) for c in published.component_statuses] == [
        (page.db, "full_outage")
    ]
    shown = await show_incident(client, keys, incident.id)
    assert shown["incident_status"] == "identified"
    assert [u["id"] for u in shown["updates"]][-1] == published.id
    assert [(i["component_id"], i["component_status"], "end_at" in i) for i in shown["component_impacts"]] == [
        (page.api, "partial_outage", False),
        (page.db, "full_outage", False),
    ]

    renamed = await client.put(
        f"/v2/status_page_incidents/{incident.id}", json={"name": "Logins slow"}, headers=Keys.header(keys.publish)
    )
    assert renamed.status_code == 200, renamed.text
    assert present(StatusPagesUpdateStatusPageIncidentResultV2.from_dict(renamed.json()).status_page_incident).name == (
        "Logins slow"
    )
    assert (await show_incident(client, keys, incident.id))["name"] == "Logins slow"

    resolved = await post_incident_update(client, keys, incident.id, incident_status="resolved", message="Fixed.")
    assert resolved.status_code == 201, resolved.text
    closing = resolved.json()["status_page_incident_update"]
    assert sorted(c["component_id"] for c in closing["component_statuses"]) == sorted([page.api, page.db])
    assert {c["component_status"] for c in closing["component_statuses"]} == {"operational"}
    shown = await show_incident(client, keys, incident.id)
    assert shown["incident_status"] == "resolved"
    assert all(impact["end_at"] == closing["published_at"] for impact in shown["component_impacts"])

    # Closed: no more updates, but a rename still works.
    late = await post_incident_update(client, keys, incident.id, message="Oops")
    assert_envelope(late, 422, "validation_error")
    again = await client.put(
        f"/v2/status_page_incidents/{incident.id}", json={"name": "Login outage"}, headers=Keys.header(keys.publish)
    )
    assert again.status_code == 200 and again.json()["status_page_incident"]["name"] == "Login outage"


async def test_a_used_idempotency_key_replays_the_incident_as_it_is_now(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    first = await create_incident(client, keys, page, "alert-1")
    incident_id = first.json()["status_page_incident"]["id"]
    await post_incident_update(client, keys, incident_id, incident_status="monitoring")

    replay = await create_incident(client, keys, page, "alert-1", name="Something else entirely")
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    replayed = present(StatusPagesCreateStatusPageIncidentResultV2.from_dict(replay.json()).status_page_incident)
    assert (replayed.id, replayed.name, replayed.incident_status.value) == (incident_id, "Login failing", "monitoring")
    assert await list_incident_ids(client, keys, status_page_id=page.id) == [incident_id]

    # Keys are per page: the same key on another page is a new incident.
    other = await setup_page(client, keys, "other")
    elsewhere = await create_incident(client, keys, other, "alert-1")
    assert elsewhere.status_code == 201 and "idempotent-replayed" not in elsewhere.headers
    assert elsewhere.json()["status_page_incident"]["id"] != incident_id


async def test_rules_are_422_naming_the_field(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    stranger = await create_component(client, keys, "Not on the page")
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"incident_status": "on_fire"}, "incident_status", "invalid_enum"),
        (
            {"component_statuses": statuses((page.api, "meltdown"))},
            "component_statuses[0].component_status",
            "invalid_enum",
        ),
        (
            {"component_statuses": statuses((stranger, "full_outage"))},
            "component_statuses[0].component_id",
            "invalid_value",
        ),
        ({"name": "x" * 201}, "name", "too_long"),
        ({"message": "x" * 4097}, "message", "too_long"),
        (
            # The whole list is at fault: resolving declares every component operational.
            {"incident_status": "resolved", "component_statuses": statuses((page.api, "full_outage"))},
            "component_statuses",
            "invalid_value",
        ),
    ]
    for index, (fields, field, code) in enumerate(cases):
        response = await create_incident(client, keys, page, f"bad-{index}", **fields)
        body = assert_envelope(response, 422, "validation_error")
        error = body["errors"][0]
        pointer = "/" + field.replace("[", "/").replace("].", "/")
        assert error["source"] == {"field": field, "pointer": pointer.replace(".", "/")}, (fields, body)
        assert error["code"] == code, (fields, body)
    for missing in ("idempotency_key", "name", "message", "incident_status", "notify_subscribers", "status_page_id"):
        body_json = {
            "idempotency_key": "m",
            "status_page_id": page.id,
            "name": "n",
            "message": "m",
            "incident_status": "investigating",
            "notify_subscribers": False,
        }
        del body_json[missing]
        response = await client.post("/v2/status_page_incidents", json=body_json, headers=Keys.header(keys.publish))
        error = assert_envelope(response, 422, "validation_error")["errors"][0]
        assert (error["code"], error["source"]) == ("is_required", {"field": missing, "pointer": f"/{missing}"})
    assert await list_incident_ids(client, keys, status_page_id=page.id) == []

    unknown_page = await create_incident(client, keys, page, "p", status_page_id="01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert assert_envelope(unknown_page, 422, "validation_error")["errors"][0]["source"] == {
        "field": "status_page_id",
        "pointer": "/status_page_id",
    }
    missing_incident = await post_incident_update(client, keys, "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert_envelope(missing_incident, 404, "not_found")
    shown = await client.get("/v2/status_page_incidents/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=Keys.header(keys.read))
    assert_envelope(shown, 404, "not_found")


async def test_only_publish_keys_write_incidents(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    body = {
        "idempotency_key": "k",
        "status_page_id": page.id,
        "name": "n",
        "message": "m",
        "incident_status": "investigating",
        "notify_subscribers": False,
    }
    response = await client.post("/v2/status_page_incidents", json=body, headers=Keys.header(keys.read))
    assert_envelope(response, 403, "resource_forbidden")
    admin = await client.post("/v2/status_page_incidents", json=body, headers=Keys.header(keys.admin))
    assert admin.status_code == 201


async def test_lists_filter_by_component_group_sub_page_and_time_and_paginate(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    ids: dict[str, str] = {}
    for name, component in (("api", page.api), ("db", page.db), ("web", page.web), ("none", None)):
        fields: dict[str, Any] = {"name": name}
        if component:
            fields["component_statuses"] = statuses((component, "degraded_performance"))
        response = await create_incident(client, keys, page, name, **fields)
        assert response.status_code == 201, response.text
        ids[name] = response.json()["status_page_incident"]["id"]
    newest_first = [ids["none"], ids["web"], ids["db"], ids["api"]]

    assert await list_incident_ids(client, keys, status_page_id=page.id) == newest_first
    assert await list_incident_ids(client, keys, status_page_id=page.id, component_id=page.api) == [ids["api"]]
    assert await list_incident_ids(client, keys, status_page_id=page.id, group_id=page.backend) == [ids["db"]]
    assert await list_incident_ids(client, keys, status_page_id=page.id, sub_page_id=page.eu) == [ids["web"]]
    # Time filters keep what had impacts in the range (incident.io: "during or after" start_at, "during or
    # before" end_at); an ongoing incident's reach to now, a resolved one's end at its resolution.
    db_published = (await show_incident(client, keys, ids["db"]))["published_at"]
    assert await list_incident_ids(client, keys, status_page_id=page.id, end_at=db_published) == newest_first[2:]
    assert await list_incident_ids(client, keys, status_page_id=page.id, start_at=db_published) == newest_first
    resolved = await post_incident_update(client, keys, ids["api"], incident_status="resolved")
    assert resolved.status_code == 201, resolved.text
    resolved_at = datetime.fromisoformat(resolved.json()["status_page_incident_update"]["published_at"])
    later = (resolved_at + timedelta(milliseconds=1)).isoformat()
    assert await list_incident_ids(client, keys, status_page_id=page.id, start_at=later) == newest_first[:3]
    since_resolution = resolved_at.isoformat()
    assert await list_incident_ids(client, keys, status_page_id=page.id, start_at=since_resolution) == newest_first

    seen: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"status_page_id": page.id, "page_size": 3}
        if after:
            params["after"] = after
        response = await client.get("/v2/status_page_incidents", params=params, headers=Keys.header(keys.read))
        body = response.json()
        seen += [incident["id"] for incident in body["status_page_incidents"]]
        after = body["pagination_meta"].get("after")
        assert body["pagination_meta"]["page_size"] == 3
        if after is None:
            break
    assert seen == newest_first

    bad = await client.get(
        "/v2/status_page_incidents",
        params={"status_page_id": page.id, "group_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"},
        headers=Keys.header(keys.read),
    )
    assert assert_envelope(bad, 422, "validation_error")["errors"][0]["source"] == {
        "field": "group_id",
        "pointer": "?group_id",
    }
    missing = await client.get("/v2/status_page_incidents", headers=Keys.header(keys.read))
    assert assert_envelope(missing, 422, "validation_error")["errors"][0]["source"] == {
        "field": "status_page_id",
        "pointer": "?status_page_id",
    }


async def test_a_retrospective_incident_is_recorded_resolved(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    body = {
        "idempotency_key": "postmortem-1",
        "status_page_id": page.id,
        "name": "Outage last week",
        "updates": [
            {
                "published_at": "2024-01-01T10:00:00Z",
                "message": "Down.",
                "incident_status": "investigating",
                "component_statuses": statuses((page.api, "full_outage")),
            },
            {"published_at": "2024-01-01T11:00:00Z", "message": "Back.", "incident_status": "resolved"},
        ],
    }
    response = await client.post(
        "/v2/status_page_retrospective_incidents", json=body, headers=Keys.header(keys.publish)
    )
    assert response.status_code == 201, response.text
    incident = present(
        StatusPagesCreateStatusPageRetrospectiveIncidentResultV2.from_dict(response.json()).status_page_incident
    )
    assert incident.incident_status.value == "resolved"
    assert incident.published_at.isoformat() == "2024-01-01T10:00:00+00:00"
    [impact] = incident.component_impacts
    assert (impact.start_at.isoformat(), impact.end_at.isoformat()) == (  # type: ignore[union-attr]
        "2024-01-01T10:00:00+00:00",
        "2024-01-01T11:00:00+00:00",
    )
    assert await show_incident(client, keys, incident.id) == response.json()["status_page_incident"]

    replay = await client.post("/v2/status_page_retrospective_incidents", json=body, headers=Keys.header(keys.publish))
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == response.json()

    unordered = {**body, "idempotency_key": "postmortem-2", "updates": list(reversed(body["updates"]))}
    bad = await client.post(
        "/v2/status_page_retrospective_incidents", json=unordered, headers=Keys.header(keys.publish)
    )
    assert_envelope(bad, 422, "validation_error")


async def test_availability_counts_outages_once_and_only_once_the_components_data_begins(
    client: Client, keys: Keys
) -> None:
    page = await setup_page(client, keys)
    # Two overlapping retrospective outages of `api`: 10:00–11:00 and 10:30–12:00, i.e. 2 h of downtime.
    # The component was created just now, but backfilled history counts: its data begins at the first
    # impact, 10:00, so the day covers 14 h of which 2 down: 12/14 = 85.714285…%, floored.
    for key, start, end in (("a", "10:00", "11:00"), ("b", "10:30", "12:00")):
        response = await client.post(
            "/v2/status_page_retrospective_incidents",
            json={
                "idempotency_key": key,
                "status_page_id": page.id,
                "name": key,
                "updates": [
                    {
                        "published_at": f"2024-01-01T{start}:00Z",
                        "message": "Down.",
                        "incident_status": "investigating",
                        "component_statuses": statuses((page.api, "partial_outage")),
                    },
                    {"published_at": f"2024-01-01T{end}:00Z", "message": "Up.", "incident_status": "resolved"},
                ],
            },
            headers=Keys.header(keys.publish),
        )
        assert response.status_code == 201, response.text
    url = f"/v2/status_pages/{page.id}/components/{page.api}/availability"
    response = await client.get(
        url,
        params={"start_at": "2024-01-01T00:00:00Z", "end_at": "2024-01-02T00:00:00Z"},
        headers=Keys.header(keys.read),
    )
    assert response.status_code == 200, response.text
    availability = StatusPagesShowStatusPageComponentAvailabilityResultV2.from_dict(response.json()).availability
    assert availability.availability_percent == "85.7142"
    assert availability.data_available_since == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert (availability.component_id, availability.status_page_id) == (page.api, page.id)
    earlier = await client.get(
        url,
        params={"start_at": "2023-12-31T00:00:00Z", "end_at": "2024-01-01T10:00:00Z"},
        headers=Keys.header(keys.read),
    )
    assert earlier.status_code == 200, earlier.text
    assert "availability_percent" not in earlier.json()["availability"]  # before any data: unknown, not 100%

    too_long = await client.get(
        url,
        params={"start_at": "2024-01-01T00:00:00Z", "end_at": "2025-01-02T00:00:00Z"},
        headers=Keys.header(keys.read),
    )
    assert_envelope(too_long, 422, "validation_error")
    backwards = await client.get(
        url,
        params={"start_at": "2024-01-02T00:00:00Z", "end_at": "2024-01-01T00:00:00Z"},
        headers=Keys.header(keys.read),
    )
    assert_envelope(backwards, 422, "validation_error")
    stranger = await create_component(client, keys, "Elsewhere")
    not_on_page = await client.get(
        f"/v2/status_pages/{page.id}/components/{stranger}/availability",
        params={"start_at": "2024-01-01T00:00:00Z", "end_at": "2024-01-02T00:00:00Z"},
        headers=Keys.header(keys.read),
    )
    assert_envelope(not_on_page, 404, "not_found")


def test_availability_is_the_union_of_outages_floored_to_four_decimals() -> None:
    day = datetime(2024, 1, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    outages = [Interval(day + 10 * hour, day + 11 * hour), Interval(day + 10.5 * hour, day + 12 * hour)]
    down = downtime([*outages, Interval(day + 23 * hour, None)], day, day + 24 * hour)
    assert down == 3 * hour  # 10:00–12:00 once, plus the open outage's last hour of the window
    assert availability_percent(24 * hour, down) == "87.5"
    assert availability_percent(24 * hour, timedelta(seconds=1)) == "99.9988"  # 99.99884… floored
    assert availability_percent(24 * hour, timedelta()) == "100"
    assert availability_percent(timedelta(), timedelta()) is None
