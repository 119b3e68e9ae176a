"""Strict input on `/v2`, through HTTP (docs/architecture.md#error-envelope): a body field or query
parameter the operation does not accept is a 422 naming it by JSON path and RFC 6901 pointer, with the
name meant when one is close, instead of being dropped (a misspelt `component_statuses` used to declare
an incident without impacts). Fields incident.io's SDK sends, and a Show body sent back, are accepted;
public routes stay lenient."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.http import (
    Keys,
    Page,
    assert_envelope,
    create_component,
    create_incident,
    create_maintenance,
    list_incident_ids,
    post_incident_update,
    setup_page,
    show_incident,
    statuses,
)

Client = AsyncTestClient[Litestar]


def only_error(response: Any, status: int = 422, error_type: str = "validation_error") -> dict[str, Any]:
    errors: list[dict[str, Any]] = assert_envelope(response, status, error_type)["errors"]
    assert len(errors) == 1, errors
    return errors[0]


# Unknown body fields


async def test_a_misspelt_top_level_field_is_refused_naming_it_and_the_field_meant(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)

    response = await create_incident(client, keys, page, "typo", componnet_statuses=statuses((page.api, "full_outage")))

    error = only_error(response)
    assert error == {
        "code": "unknown_field",
        "message": "unknown field 'componnet_statuses'; did you mean 'component_statuses'?",
        "source": {"field": "componnet_statuses", "pointer": "/componnet_statuses"},
    }
    assert await list_incident_ids(client, keys, status_page_id=page.id) == []  # no incident without impacts


async def test_an_unknown_field_at_any_depth_is_named_by_path_and_pointer(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    item = {"component_id": page.api, "componnet_status": "full_outage"}

    nested = await create_incident(
        client, keys, page, "nested", component_statuses=[*statuses((page.db, "degraded_performance")), item]
    )

    error = only_error(nested)
    assert error["code"] == "unknown_field"
    assert error["message"] == "unknown field 'componnet_status'; did you mean 'component_status'?"
    assert error["source"] == {
        "field": "component_statuses[1].componnet_status",
        "pointer": "/component_statuses/1/componnet_status",
    }

    past = "2026-01-01T10:00:00Z"
    retrospective = await client.post(
        "/v2/status_page_retrospective_incidents",
        json={
            "idempotency_key": "r",
            "status_page_id": page.id,
            "name": "Old outage",
            "updates": [
                {"published_at": past, "message": "Down.", "incident_status": "investigating"},
                {"published_at": past, "message": "Up.", "incident_status": "resolved", "colour": "green"},
            ],
        },
        headers=Keys.header(keys.publish),
    )
    deep = only_error(retrospective)
    assert (deep["code"], deep["source"]) == (
        "unknown_field",
        {"field": "updates[1].colour", "pointer": "/updates/1/colour"},
    )
    assert "did you mean" not in deep["message"]  # nothing accepted there is close to `colour`
    assert await list_incident_ids(client, keys, status_page_id=page.id) == []


async def test_every_write_body_refuses_fields_it_does_not_accept(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    incident = (await create_incident(client, keys, page, "i")).json()["status_page_incident"]
    window = (await create_maintenance(client, keys, page, "m")).json()["status_page_maintenance"]
    publish, admin = Keys.header(keys.publish), Keys.header(keys.admin)
    cases: list[tuple[Any, str, str]] = [
        (
            post_incident_update(client, keys, incident["id"], incident_statuss="resolved"),
            "incident_statuss",
            "incident_status",
        ),
        (
            create_maintenance(client, keys, page, "m2", automate_maintenance=True),
            "automate_maintenance",
            "automate_maintenance_status",
        ),
        (
            client.post(
                "/v2/status_page_maintenance_updates",
                json={
                    "status_page_maintenance_id": window["id"],
                    "message": "m",
                    "notify_subscribers": False,
                    "maintenance_statu": "x",
                },
                headers=publish,
            ),
            "maintenance_statu",
            "maintenance_status",
        ),
        (
            client.put(
                f"/v2/status_page_maintenances/{window['id']}",
                json={"name": "n", "start_at": window["start_at"], "end_at": window["end_at"], "nmae": "x"},
                headers=publish,
            ),
            "nmae",
            "name",
        ),
        (
            client.put(
                f"/v2/status_page_incidents/{incident['id']}", json={"name": "n", "messsage": "x"}, headers=publish
            ),
            "messsage",
            "",
        ),
        (
            client.post("/v2/api_keys", json={"name": "ci", "scopes": [], "scope": "admin"}, headers=admin),
            "scope",
            "scopes",
        ),
    ]
    for request, field, meant in cases:
        error = only_error(await request)
        assert (error["code"], error["source"]) == ("unknown_field", {"field": field, "pointer": f"/{field}"}), error
        assert error["message"].endswith(f"did you mean {meant!r}?" if meant else f"unknown field {field!r}"), error
    assert (await show_incident(client, keys, incident["id"]))["name"] == incident["name"]


async def test_fields_incident_io_clients_send_are_accepted(client: Client, keys: Keys) -> None:
    """`description` and `public_url` on an affected component are in incident.io's contract; Beacon
    ignores them (a component's text is managed on the component) but must not refuse them — while a
    misspelling of one is still refused."""
    page = await setup_page(client, keys)
    item = {
        "component_id": page.api,
        "component_status": "full_outage",
        "description": "d",
        "public_url": "https://x.test",
    }
    misspelt = {**item, "descriptoin": "d"}

    refused = await create_incident(client, keys, page, "typo", component_statuses=[misspelt])
    response = await create_incident(client, keys, page, "sdk", component_statuses=[item])

    error = only_error(refused)
    assert error["source"] == {
        "field": "component_statuses[0].descriptoin",
        "pointer": "/component_statuses/0/descriptoin",
    }
    assert error["message"].endswith("did you mean 'description'?")

    assert response.status_code == 201, response.text
    impacts = response.json()["status_page_incident"]["component_impacts"]
    assert [(i["component_id"], i["component_status"]) for i in impacts] == [(page.api, "full_outage")]


# Unknown query parameters


async def test_a_misspelt_list_filter_is_refused_instead_of_answering_the_unfiltered_list(
    client: Client, keys: Keys
) -> None:
    page = await setup_page(client, keys)
    assert (await create_incident(client, keys, page, "i")).status_code == 201
    read = Keys.header(keys.read)

    for path in ("/v2/status_page_incidents", "/v2/status_page_maintenances"):
        response = await client.get(path, params={"status_page_id": page.id, "componnet_id": page.api}, headers=read)
        assert only_error(response) == {
            "code": "unknown_parameter",
            "message": "unknown query parameter 'componnet_id'; did you mean 'component_id'?",
            "source": {"field": "componnet_id", "pointer": "?componnet_id"},
        }
    filtered = await client.get(
        "/v2/status_page_incidents", params={"status_page_id": page.id, "component_id": page.db}, headers=read
    )
    assert filtered.status_code == 200 and filtered.json()["status_page_incidents"] == []


async def test_as_of_is_refused_where_it_is_not_supported_and_misspelt_where_it_is(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    incident = (await create_incident(client, keys, page, "i")).json()["status_page_incident"]
    read = Keys.header(keys.read)
    as_of = "2020-01-01T00:00:00Z"

    on_list = await client.get(
        "/v2/status_page_incidents", params={"status_page_id": page.id, "as_of": as_of}, headers=read
    )
    on_page = await client.get(f"/v2/status_pages/{page.id}", params={"as_of": as_of}, headers=read)
    misspelt = await client.get(f"/v2/status_page_incidents/{incident['id']}", params={"as_off": as_of}, headers=read)

    for response in (on_list, on_page):
        error = only_error(response)
        assert (error["code"], error["source"]) == ("unknown_parameter", {"field": "as_of", "pointer": "?as_of"})
    error = only_error(misspelt)
    assert error["source"] == {"field": "as_off", "pointer": "?as_off"}
    assert error["message"] == "unknown query parameter 'as_off'; did you mean 'as_of'?"
    supported = await client.get(f"/v2/status_page_incidents/{incident['id']}", params={"as_of": as_of}, headers=read)
    assert_envelope(supported, 404, "not_found")  # it did not exist then: the parameter was honoured


async def test_public_routes_stay_lenient_to_stray_query_parameters(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    stray = {"utm_source": "newsletter"}

    public = await client.get("/acme/api/v1/summary", params=stray)
    private = await client.get(f"/v2/status_pages/{page.id}/widget", params=stray, headers=Keys.header(keys.read))

    assert public.status_code == 200, public.text
    assert public.content == (await client.get("/acme/api/v1/summary")).content
    assert only_error(private)["source"] == {"field": "utm_source", "pointer": "?utm_source"}


# A Show body sent back


async def test_an_incidents_show_body_can_be_edited_and_sent_back(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    incident = (
        await create_incident(client, keys, page, "i", component_statuses=statuses((page.api, "full_outage")))
    ).json()["status_page_incident"]
    url = f"/v2/status_page_incidents/{incident['id']}"
    shown = await show_incident(client, keys, incident["id"])

    renamed = await client.put(url, json={**shown, "name": "Login fixed soon"}, headers=Keys.header(keys.publish))

    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["status_page_incident"] == {**shown, "name": "Login fixed soon"}

    resolved = await client.put(url, json={**shown, "incident_status": "resolved"}, headers=Keys.header(keys.publish))

    error = only_error(resolved)
    assert (error["code"], error["source"]) == (
        "read_only",
        {"field": "incident_status", "pointer": "/incident_status"},
    )
    assert "POST /v2/status_page_incident_updates" in error["message"]
    assert (await show_incident(client, keys, incident["id"]))["incident_status"] == "investigating"
    edited_update = {**shown, "updates": [{**shown["updates"][0], "message": "rewritten"}]}
    assert only_error(await client.put(url, json=edited_update, headers=Keys.header(keys.publish)))["source"] == {
        "field": "updates",
        "pointer": "/updates",
    }


async def test_a_maintenance_windows_show_body_can_be_edited_and_sent_back(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    window = (await create_maintenance(client, keys, page, "m")).json()["status_page_maintenance"]
    url = f"/v2/status_page_maintenances/{window['id']}"
    shown = (await client.get(url, headers=Keys.header(keys.read))).json()["status_page_maintenance"]

    renamed = await client.put(url, json={**shown, "name": "Bigger upgrade"}, headers=Keys.header(keys.publish))

    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["status_page_maintenance"] == {**shown, "name": "Bigger upgrade"}
    started = await client.put(
        url, json={**shown, "maintenance_status": "maintenance_in_progress"}, headers=Keys.header(keys.publish)
    )
    error = only_error(started)
    assert (error["code"], error["source"]["pointer"]) == ("read_only", "/maintenance_status")
    assert "POST /v2/status_page_maintenance_updates" in error["message"]


# Item-level error paths and the media type


async def test_errors_in_component_statuses_name_the_item_and_its_field(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    stranger = await create_component(client, keys, "Not on the page")
    cases: list[tuple[list[dict[str, str]], str, str]] = [
        (
            statuses((page.api, "full_outage"), (page.db, "meltdown")),
            "component_statuses[1].component_status",
            "invalid_enum",
        ),
        (
            statuses((page.api, "full_outage"), (stranger, "full_outage")),
            "component_statuses[1].component_id",
            "invalid_value",
        ),
        (
            statuses((page.api, "full_outage"), (page.api, "degraded_performance")),
            "component_statuses[1].component_id",
            "invalid_value",
        ),
        ([{"component_id": page.api}], "component_statuses[0].component_status", "is_required"),
    ]
    for index, (items, field, code) in enumerate(cases):
        error = only_error(await create_incident(client, keys, page, f"bad-{index}", component_statuses=items))
        pointer = "/" + field.replace("[", "/").replace("].", "/").replace(".", "/")
        assert (error["code"], error["source"]) == (code, {"field": field, "pointer": pointer}), (items, error)
    window = await create_maintenance(client, keys, page, "m", affected_component_ids=[page.db, stranger])
    error = only_error(window)
    assert error["source"] == {"field": "affected_component_ids[1]", "pointer": "/affected_component_ids/1"}


async def test_a_body_that_is_not_json_is_415_invalid_request_error(client: Client, keys: Keys) -> None:
    page: Page = await setup_page(client, keys)
    response = await client.post(
        "/v2/status_page_incidents",
        content=b"idempotency_key=k&status_page_id=" + page.id.encode(),
        headers={**Keys.header(keys.publish), "content-type": "application/x-www-form-urlencoded"},
    )
    assert only_error(response, 415, "invalid_request_error")["code"]
    assert await list_incident_ids(client, keys, status_page_id=page.id) == []
