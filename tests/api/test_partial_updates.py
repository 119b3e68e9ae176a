"""Updates that cannot lose data, through HTTP: a page or component `PUT` changes only the fields it
sends (`null` resets one), a structure `PUT` keeps the stored settings of the items it names without
them, a misspelt field is refused instead of dropped, and every Show body can be sent back unchanged."""

from __future__ import annotations

from typing import Any

import asyncpg
from incident_io.models.status_page_components_update_payload_v2 import StatusPageComponentsUpdatePayloadV2
from incident_io.models.status_pages_show_status_page_structure_result_v2 import (
    StatusPagesShowStatusPageStructureResultV2,
)
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.http import Keys, assert_envelope, create_component, create_page

Client = AsyncTestClient[Litestar]


async def _put(client: Client, keys: Keys, url: str, body: dict[str, Any]) -> Any:
    return await client.put(url, json=body, headers=Keys.header(keys.admin))


async def _show(client: Client, keys: Keys, url: str) -> dict[str, Any]:
    response = await client.get(url, headers=Keys.header(keys.read))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _event_count(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM beacon_events")  # type: ignore[no-any-return]


def _field(response: Any) -> str:
    error = assert_envelope(response, 422, "validation_error")
    field: str = error["errors"][0]["source"]["field"]
    return field


# Pages


async def test_widget_api_enabled_alone_disables_the_widget_and_keeps_every_other_field(
    client: Client, keys: Keys
) -> None:
    page = await create_page(client, keys, "acme", description="Our services", public_url="https://status.acme.test")
    url = f"/v2/status_pages/{page['id']}"
    assert (await client.get("/acme/api/v1/summary")).status_code == 200

    response = await _put(client, keys, url, {"widget_api_enabled": False})

    assert response.status_code == 200, response.text
    assert response.json()["status_page"] == {**page, "widget_api_enabled": False}
    assert (await _show(client, keys, url))["status_page"] == {**page, "widget_api_enabled": False}
    assert_envelope(await client.get("/acme/api/v1/summary"), 404, "not_found")


async def test_null_resets_a_page_field_to_its_default_and_absent_ones_stay(client: Client, keys: Keys) -> None:
    page = await create_page(
        client, keys, "acme", description="Our services", public_url="https://status.acme.test",
        widget_api_enabled=False,
    )
    url = f"/v2/status_pages/{page['id']}"
    assert page["widget_api_enabled"] is False

    response = await _put(client, keys, url, {"description": None, "widget_api_enabled": None, "name": "Acme Corp"})

    assert response.status_code == 200, response.text
    assert response.json()["status_page"] == {
        "id": page["id"], "name": "Acme Corp", "public_url": "https://status.acme.test", "slug": "acme",
        "widget_api_enabled": True, "public_site_enabled": True, "time_zone": "UTC", "custom_domain": None,
        "automatic_maintenance_notifications": "inherit",
    }
    assert (await client.get("/acme/api/v1/summary")).status_code == 200


async def test_a_page_name_cannot_be_null_and_an_unknown_field_changes_nothing(client: Client, keys: Keys) -> None:
    page = await create_page(client, keys, "acme", description="Our services")
    url = f"/v2/status_pages/{page['id']}"
    assert _field(await _put(client, keys, url, {"name": None})) == "name"
    assert _field(await _put(client, keys, url, {"widget_enabled": False, "name": "Renamed"})) == "widget_enabled"
    assert (await _show(client, keys, url))["status_page"] == page


async def test_read_only_page_fields_sent_back_must_be_the_pages_own(client: Client, keys: Keys) -> None:
    page = await create_page(client, keys, "acme")
    other = await create_page(client, keys, "other")
    url = f"/v2/status_pages/{page['id']}"
    for body, field in (({"id": other["id"], "name": "X"}, "id"), ({"slug": "acme-2", "name": "X"}, "slug")):
        response = await _put(client, keys, url, body)
        assert _field(response) == field
        assert response.json()["errors"][0]["code"] == "read_only"
    assert (await _show(client, keys, url))["status_page"] == page


# Components


async def test_renaming_a_component_as_the_sdk_does_keeps_its_description(client: Client, keys: Keys) -> None:
    component = await create_component(client, keys, "API", description="The public API")
    url = f"/v2/status_page_components/{component}"
    body = StatusPageComponentsUpdatePayloadV2(name="Public API").to_dict()  # the SDK cannot send null
    assert body == {"name": "Public API"}

    response = await _put(client, keys, url, body)

    assert response.status_code == 200, response.text
    expected = {"name": "Public API", "description": "The public API"}
    assert {k: response.json()["status_page_component"][k] for k in expected} == expected
    shown = (await _show(client, keys, url))["status_page_component"]
    assert {k: shown[k] for k in expected} == expected

    cleared = await _put(client, keys, url, {"description": None})
    assert cleared.status_code == 200, cleared.text
    assert "description" not in cleared.json()["status_page_component"]
    assert (await _show(client, keys, url))["status_page_component"]["name"] == "Public API"


async def test_read_only_component_fields_sent_back_must_be_its_own(client: Client, keys: Keys) -> None:
    component = await create_component(client, keys, "API", description="The public API")
    other = await create_component(client, keys, "Web")
    url = f"/v2/status_page_components/{component}"
    shown = await _show(client, keys, url)
    terraform = {"annotations": {}, "managed_by": "terraform"}
    cases = (({"id": other, "name": "X"}, "id"), ({"management_meta": terraform, "name": "X"}, "management_meta"))
    for body, field in cases:
        response = await _put(client, keys, url, body)
        assert _field(response) == field
        assert response.json()["errors"][0]["code"] == "read_only"
    assert _field(await _put(client, keys, url, {"nmae": "X"})) == "nmae"
    assert await _show(client, keys, url) == shown


# Structures


async def test_a_structure_put_keeps_the_stored_settings_of_items_it_names_without_them(
    client: Client, keys: Keys
) -> None:
    page = await create_page(client, keys, "acme")
    login, api, web = [await create_component(client, keys, name) for name in ("Login", "API", "Web")]
    url = f"/v2/status_page_structures/{page['id']}"
    first = await _put(client, keys, url, {"items": [
        {"component": {"component_id": login, "hidden": True, "display_uptime": False}},
        {"group": {"name": "Core", "description": "Servers", "hidden": True, "display_aggregated_uptime": False,
                   "components": [{"component_id": api, "display_uptime": False}]}},
    ]})
    assert first.status_code == 200, first.text
    group_id = first.json()["current_structure"]["items"][1]["group"]["id"]

    # An editor that knows only ids: LOGIN moves into the group, API says its own flag, WEB is new.
    response = await _put(client, keys, url, {"items": [
        {"group": {"id": group_id, "name": "Core", "components": [
            {"component_id": login}, {"component_id": api, "hidden": True}, {"component_id": web},
        ]}},
    ]})

    assert response.status_code == 200, response.text
    assert response.json()["current_structure"]["items"] == [
        {"group": {"id": group_id, "name": "Core", "description": "Servers", "hidden": True,
                   "display_aggregated_uptime": False, "components": [
                       {"component_id": login, "name": "Login", "hidden": True, "display_uptime": False},
                       {"component_id": api, "name": "API", "hidden": True, "display_uptime": False},
                       {"component_id": web, "name": "Web", "hidden": False, "display_uptime": True},
                   ]}},
    ]
    assert await _show(client, keys, url) == response.json()

    # `null` clears a group's description; a flag given replaces the stored one.
    cleared = await _put(client, keys, url, {"items": [
        {"group": {"id": group_id, "name": "Core", "description": None, "hidden": False, "components": []}},
    ]})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["current_structure"]["items"] == [
        {"group": {"id": group_id, "name": "Core", "hidden": False, "display_aggregated_uptime": False,
                   "components": []}},
    ]


async def test_a_misspelt_components_is_refused_and_the_group_keeps_its_components(
    client: Client, keys: Keys
) -> None:
    page = await create_page(client, keys, "acme")
    login = await create_component(client, keys, "Login")
    url = f"/v2/status_page_structures/{page['id']}"
    placed = await _put(client, keys, url, {"items": [{"group": {"name": "Accounts", "components": [
        {"component_id": login}]}}]})
    assert placed.status_code == 200, placed.text
    group_id = placed.json()["current_structure"]["items"][0]["group"]["id"]

    typo = {"items": [{"group": {"id": group_id, "name": "Accounts", "componets": [{"component_id": login}]}}]}
    response = await _put(client, keys, url, typo)

    error = assert_envelope(response, 422, "validation_error")["errors"][0]
    assert error["code"] == "unknown_field"
    assert error["source"]["field"] == "items[0].group.componets"
    assert "components" in error["message"]
    assert await _show(client, keys, url) == placed.json()


async def test_read_only_structure_fields_sent_back_must_be_as_shown(client: Client, keys: Keys) -> None:
    page = await create_page(client, keys, "acme")
    login = await create_component(client, keys, "Login")
    url = f"/v2/status_page_structures/{page['id']}"
    placed = await _put(client, keys, url, {"items": [{"component": {"component_id": login}}]})
    assert placed.status_code == 200, placed.text

    renamed = {"items": [{"component": {"component_id": login, "name": "Sign in"}}]}
    assert _field(await _put(client, keys, url, renamed)) == "items[0].component.name"
    other_meta = {**placed.json(), "management_meta": {"annotations": {}, "managed_by": "terraform"}}
    assert _field(await _put(client, keys, url, other_meta)) == "management_meta"
    both = {**placed.json(), "items": []}
    assert _field(await _put(client, keys, url, both)) == "current_structure"
    assert await _show(client, keys, url) == placed.json()


# Round trips


async def test_every_show_body_sent_back_unchanged_is_accepted_and_changes_nothing(
    client: Client, keys: Keys, pool: asyncpg.Pool
) -> None:
    page = await create_page(client, keys, "acme", description="Our services", public_url="https://status.acme.test")
    login = await create_component(client, keys, "Login", description="Sign-in")
    api = await create_component(client, keys, "API")
    structure_url = f"/v2/status_page_structures/{page['id']}"
    placed = await _put(client, keys, structure_url, {"items": [
        {"component": {"component_id": api, "hidden": True}},
        {"sub_page": {"name": "EU", "items": [
            {"group": {"name": "Accounts", "description": "Sign-in and SSO", "components": [{"component_id": login}]}},
        ]}},
    ]})
    assert placed.status_code == 200, placed.text
    StatusPagesShowStatusPageStructureResultV2.from_dict(placed.json())
    before = await _event_count(pool)

    for url, key in (
        (f"/v2/status_pages/{page['id']}", "status_page"),
        (f"/v2/status_page_components/{login}", "status_page_component"),
        (f"/v2/status_page_components/{api}", "status_page_component"),
        (structure_url, None),
    ):
        shown = await _show(client, keys, url)
        response = await _put(client, keys, url, shown[key] if key else shown)
        assert response.status_code == 200, (url, response.text)
        assert response.json() == shown
        assert await _show(client, keys, url) == shown

    assert await _event_count(pool) == before  # nothing changed, so nothing was recorded


async def test_the_served_openapi_makes_every_update_field_optional(client: Client) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    schemas = document["components"]["schemas"]
    page = next(schema for name, schema in schemas.items() if name.endswith("UpdateStatusPagePayload"))
    component = next(schema for name, schema in schemas.items() if name.endswith("UpdateStatusPageComponentPayload"))
    assert set(page["properties"]) == {
        "name", "description", "public_url", "widget_api_enabled", "id", "slug", "public_site_enabled", "time_zone",
        "custom_domain", "automatic_maintenance_notifications",
    }
    assert set(component["properties"]) == {"name", "description", "id", "management_meta"}
    assert not page.get("required") and not component.get("required")
