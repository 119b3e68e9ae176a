"""Status pages, components and structures through HTTP, as an incident.io client would use them: every
2xx body parses with the official SDK's models, and every write is visible to the next read."""

from __future__ import annotations

from typing import Any

import pytest
from incident_io.models.status_page_components_list_result_v2 import StatusPageComponentsListResultV2
from incident_io.models.status_page_components_show_result_v2 import StatusPageComponentsShowResultV2
from incident_io.models.status_page_components_update_result_v2 import StatusPageComponentsUpdateResultV2
from incident_io.models.status_pages_list_status_pages_result_v2 import StatusPagesListStatusPagesResultV2
from incident_io.models.status_pages_show_status_page_result_v2 import StatusPagesShowStatusPageResultV2
from incident_io.models.status_pages_show_status_page_structure_result_v2 import (
    StatusPagesShowStatusPageStructureResultV2,
)
from incident_io.types import UNSET
from litestar import Litestar
from litestar.testing import AsyncTestClient

from infra.ids import is_ulid
from tests.support.http import Keys, assert_envelope, create_component, create_page

Client = AsyncTestClient[Litestar]


async def test_a_page_is_created_then_shown_listed_and_updated(client: Client, keys: Keys) -> None:
    response = await client.post(
        "/v2/status_pages",
        json={"name": "Acme", "slug": "acme", "description": "Our services", "public_url": "https://status.acme.test"},
        headers=Keys.header(keys.admin),
    )
    assert response.status_code == 201, response.text
    created = StatusPagesShowStatusPageResultV2.from_dict(response.json()).status_page
    assert is_ulid(created.id)
    assert (created.name, created.description, created.public_url) == ("Acme", "Our services", "https://status.acme.test")
    assert created["slug"] == "acme" and created["widget_api_enabled"] is True

    shown = await client.get(f"/v2/status_pages/{created.id}", headers=Keys.header(keys.read))
    assert shown.status_code == 200
    assert shown.json() == response.json()

    listed = await client.get("/v2/status_pages", headers=Keys.header(keys.read))
    assert listed.status_code == 200
    result = StatusPagesListStatusPagesResultV2.from_dict(listed.json())
    assert [page.id for page in result.status_pages] == [created.id]
    assert result.pagination_meta.page_size == 25 and result.pagination_meta.after is UNSET

    # PUT is partial: the absent description and public URL are kept, `null` clears them, the slug never
    # changes.
    updated = await client.put(
        f"/v2/status_pages/{created.id}",
        json={"name": "Acme Corp", "widget_api_enabled": False},
        headers=Keys.header(keys.admin),
    )
    assert updated.status_code == 200, updated.text
    page = StatusPagesShowStatusPageResultV2.from_dict(updated.json()).status_page
    assert (page.name, page.description, page.public_url) == ("Acme Corp", "Our services", "https://status.acme.test")
    assert page["slug"] == "acme" and page["widget_api_enabled"] is False
    updated = await client.put(
        f"/v2/status_pages/{created.id}",
        json={"description": None, "public_url": None},
        headers=Keys.header(keys.admin),
    )
    assert updated.status_code == 200, updated.text
    page = StatusPagesShowStatusPageResultV2.from_dict(updated.json()).status_page
    assert (page.name, page.description, page.public_url) == ("Acme Corp", UNSET, UNSET)
    assert page["widget_api_enabled"] is False
    shown = await client.get(f"/v2/status_pages/{created.id}", headers=Keys.header(keys.read))
    assert shown.json() == updated.json()


async def test_pages_are_listed_in_creation_order_across_pages(client: Client, keys: Keys) -> None:
    ids = [(await create_page(client, keys, f"page-{n}"))["id"] for n in range(5)]
    seen: list[str] = []
    cursors: list[str | None] = []
    params: dict[str, Any] = {"page_size": 2}
    while True:
        response = await client.get("/v2/status_pages", params=params, headers=Keys.header(keys.read))
        assert response.status_code == 200, response.text
        result = StatusPagesListStatusPagesResultV2.from_dict(response.json())
        assert result.pagination_meta.page_size == 2
        seen += [page.id for page in result.status_pages]
        after = result.pagination_meta.after
        cursors.append(None if after is UNSET else str(after))
        if after is UNSET:
            break
        params["after"] = after
    assert seen == ids
    assert cursors == [ids[1], ids[3], None]

    # A page that ends exactly at the last record has no `after`.
    response = await client.get("/v2/status_pages", params={"page_size": 5}, headers=Keys.header(keys.read))
    assert "after" not in response.json()["pagination_meta"]
    assert len(response.json()["status_pages"]) == 5


@pytest.mark.parametrize(
    "params",
    [{"page_size": 251}, {"page_size": 0}, {"after": "not-an-id"}, {"after": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}],
)
async def test_bad_pagination_is_a_validation_error(client: Client, keys: Keys, params: dict[str, Any]) -> None:
    await create_page(client, keys, "acme")
    response = await client.get("/v2/status_pages", params=params, headers=Keys.header(keys.read))
    body = assert_envelope(response, 422, "validation_error")
    assert body["errors"][0]["source"]["field"] in params


async def test_page_size_250_is_allowed(client: Client, keys: Keys) -> None:
    response = await client.get("/v2/status_pages", params={"page_size": 250}, headers=Keys.header(keys.read))
    assert response.status_code == 200
    assert response.json() == {"status_pages": [], "pagination_meta": {"page_size": 250}}


async def test_slugs_are_unique_and_never_reserved(client: Client, keys: Keys) -> None:
    await create_page(client, keys, "acme")
    admin = Keys.header(keys.admin)
    taken = await client.post("/v2/status_pages", json={"name": "Other", "slug": "acme"}, headers=admin)
    body = assert_envelope(taken, 409, "conflict")
    assert body["errors"][0]["source"]["field"] == "slug"

    for slug, status in (("v2", 422), ("healthz", 422), ("Not A Slug", 422), ("", 422)):
        response = await client.post("/v2/status_pages", json={"name": "X", "slug": slug}, headers=admin)
        assert_envelope(response, status, "validation_error")

    listed = await client.get("/v2/status_pages", headers=Keys.header(keys.read))
    assert [page["slug"] for page in listed.json()["status_pages"]] == ["acme"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v2/status_pages", {"name": "Acme", "slug": "acme"}),
        ("PUT", "/v2/status_pages/{page}", {"name": "Acme"}),
        ("PUT", "/v2/status_page_structures/{page}", {"items": []}),
        ("POST", "/v2/status_page_components", {"name": "API"}),
        ("PUT", "/v2/status_page_components/{component}", {"name": "API"}),
        ("DELETE", "/v2/status_page_components/{component}", None),
    ],
)
@pytest.mark.parametrize("who", ["publish", "read"])
async def test_only_admin_keys_manage_pages_components_and_structure(
    client: Client, keys: Keys, method: str, path: str, body: dict[str, Any] | None, who: str
) -> None:
    page = await create_page(client, keys, "existing")
    component = await create_component(client, keys, "Existing")
    url = path.format(page=page["id"], component=component)
    kwargs: dict[str, Any] = {"json": body} if body is not None else {}
    response = await client.request(method, url, headers=Keys.header(getattr(keys, who)), **kwargs)
    assert_envelope(response, 403, "resource_forbidden")
    # Nothing changed.
    assert len((await client.get("/v2/status_pages", headers=Keys.header(keys.read))).json()["status_pages"]) == 1
    shown = await client.get(f"/v2/status_page_components/{component}", headers=Keys.header(keys.read))
    assert shown.json()["status_page_component"]["name"] == "Existing"


@pytest.mark.parametrize(
    "path",
    [
        "/v2/status_pages/{id}",
        "/v2/status_page_structures/{id}",
        "/v2/status_page_components/{id}",
    ],
)
@pytest.mark.parametrize("page_id", ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "not-a-ulid", "ZZZZZZZZZZZZZZZZZZZZZZZZZZ"])
async def test_unknown_or_malformed_ids_are_404(client: Client, keys: Keys, path: str, page_id: str) -> None:
    response = await client.get(path.format(id=page_id), headers=Keys.header(keys.read))
    assert_envelope(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v2/status_pages/{id}", {"name": "Acme"}),
        ("PUT", "/v2/status_page_structures/{id}", {"items": []}),
        ("PUT", "/v2/status_page_components/{id}", {"name": "API"}),
        ("DELETE", "/v2/status_page_components/{id}", None),
    ],
)
@pytest.mark.parametrize("target", ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "not-a-ulid"])
async def test_writes_to_unknown_ids_are_404(
    client: Client, keys: Keys, method: str, path: str, body: dict[str, Any] | None, target: str
) -> None:
    kwargs: dict[str, Any] = {"json": body} if body is not None else {}
    response = await client.request(method, path.format(id=target), headers=Keys.header(keys.admin), **kwargs)
    body_json = assert_envelope(response, 404, "not_found")
    assert target in body_json["errors"][0]["message"]


async def test_components_are_created_listed_updated_and_deleted(client: Client, keys: Keys) -> None:
    api = await create_component(client, keys, "API", description="The public API")
    web = await create_component(client, keys, "Web")

    listed = await client.get("/v2/status_page_components", headers=Keys.header(keys.read))
    assert listed.status_code == 200
    components = StatusPageComponentsListResultV2.from_dict(listed.json()).status_page_components
    assert [(c.id, c.name, c.description) for c in components] == [(api, "API", "The public API"), (web, "Web", UNSET)]

    updated = await client.put(
        f"/v2/status_page_components/{api}", json={"name": "Public API"}, headers=Keys.header(keys.admin)
    )
    assert updated.status_code == 200, updated.text
    component = StatusPageComponentsUpdateResultV2.from_dict(updated.json()).status_page_component
    assert (component.id, component.name, component.description) == (api, "Public API", "The public API")
    shown = await client.get(f"/v2/status_page_components/{api}", headers=Keys.header(keys.read))
    assert StatusPageComponentsShowResultV2.from_dict(shown.json()).status_page_component.name == "Public API"

    deleted = await client.delete(f"/v2/status_page_components/{api}", headers=Keys.header(keys.admin))
    assert deleted.status_code == 204 and deleted.content == b""
    gone = await client.get(f"/v2/status_page_components/{api}", headers=Keys.header(keys.read))
    assert_envelope(gone, 404, "not_found")
    listed = await client.get("/v2/status_page_components", headers=Keys.header(keys.read))
    assert [c["id"] for c in listed.json()["status_page_components"]] == [web]
    again = await client.delete(f"/v2/status_page_components/{api}", headers=Keys.header(keys.admin))
    assert_envelope(again, 404, "not_found")
    rename = await client.put(f"/v2/status_page_components/{api}", json={"name": "X"}, headers=Keys.header(keys.admin))
    assert_envelope(rename, 404, "not_found")


async def test_component_names_are_validated(client: Client, keys: Keys) -> None:
    for body, field in (({"name": ""}, "name"), ({"name": "x" * 201}, "name"), ({}, "name")):
        response = await client.post("/v2/status_page_components", json=body, headers=Keys.header(keys.admin))
        error = assert_envelope(response, 422, "validation_error")
        assert error["errors"][0]["source"]["field"] == field


async def test_a_new_page_has_an_empty_structure(client: Client, keys: Keys) -> None:
    page = await create_page(client, keys, "acme")
    response = await client.get(f"/v2/status_page_structures/{page['id']}", headers=Keys.header(keys.read))
    assert response.status_code == 200
    StatusPagesShowStatusPageStructureResultV2.from_dict(response.json())
    assert response.json() == {
        "current_structure": {"items": []},
        "display_uptime_mode": "chart_and_percentage",
        "management_meta": {"annotations": {}, "managed_by": "dashboard"},
    }


async def test_structure_with_groups_and_sub_pages_is_replaced_and_shown(client: Client, keys: Keys) -> None:
    page = await create_page(client, keys, "acme")
    login, api, web, eu_db = [await create_component(client, keys, name) for name in ("Login", "API", "Web", "EU DB")]
    body = {
        "display_uptime_mode": "chart_only",
        "items": [
            {"component": {"component_id": web, "name": "Web"}},
            {"group": {"name": "Auth", "description": "Sign-in", "components": [{"component_id": login}]}},
            {
                "sub_page": {
                    "name": "Europe (EU) Region",
                    "items": [
                        {"component": {"component_id": api, "hidden": True, "display_uptime": False}},
                        {"group": {"name": "Data", "hidden": True, "components": [{"component_id": eu_db}]}},
                    ],
                }
            },
        ],
    }
    response = await client.put(f"/v2/status_page_structures/{page['id']}", json=body, headers=Keys.header(keys.admin))
    assert response.status_code == 200, response.text
    replaced = response.json()
    parsed = StatusPagesShowStatusPageStructureResultV2.from_dict(replaced)
    assert str(parsed.display_uptime_mode) == "chart_only"

    web_item, group_item, sub_page_item = replaced["current_structure"]["items"]
    assert web_item == {"component": {"component_id": web, "name": "Web", "hidden": False, "display_uptime": True}}
    group = group_item["group"]
    assert is_ulid(group["id"])
    assert group == {
        "id": group["id"], "name": "Auth", "description": "Sign-in", "hidden": False,
        "display_aggregated_uptime": True,
        "components": [{"component_id": login, "name": "Login", "hidden": False, "display_uptime": True}],
    }
    sub_page = sub_page_item["sub_page"]
    assert is_ulid(sub_page["id"]) and sub_page["id"] != group["id"]
    assert sub_page["name"] == "Europe (EU) Region" and sub_page["slug"] == "europe-eu-region"
    api_item, data_item = sub_page["items"]
    assert api_item == {"component": {"component_id": api, "name": "API", "hidden": True, "display_uptime": False}}
    assert is_ulid(data_item["group"]["id"]) and data_item["group"]["hidden"] is True
    assert data_item["group"]["components"][0]["name"] == "EU DB"

    # Read-your-writes: Show returns exactly what Replace answered.
    shown = await client.get(f"/v2/status_page_structures/{page['id']}", headers=Keys.header(keys.read))
    assert shown.status_code == 200 and shown.json() == replaced

    # Sending Show's body back keeps every id and the sub-page's slug; a renamed component shows its new name.
    again = await client.put(f"/v2/status_page_structures/{page['id']}", json=replaced, headers=Keys.header(keys.admin))
    assert again.status_code == 200, again.text
    assert again.json() == replaced
    await client.put(f"/v2/status_page_components/{login}", json={"name": "Sign in"}, headers=Keys.header(keys.admin))
    shown = await client.get(f"/v2/status_page_structures/{page['id']}", headers=Keys.header(keys.read))
    assert shown.json()["current_structure"]["items"][1]["group"]["components"][0]["name"] == "Sign in"

    # A deleted component disappears from the structure it was placed on.
    await client.delete(f"/v2/status_page_components/{web}", headers=Keys.header(keys.admin))
    shown = await client.get(f"/v2/status_page_structures/{page['id']}", headers=Keys.header(keys.read))
    assert [next(iter(item)) for item in shown.json()["current_structure"]["items"]] == ["group", "sub_page"]


async def test_structure_rejects_unknown_deleted_and_duplicate_components(client: Client, keys: Keys) -> None:
    page = await create_page(client, keys, "acme")
    api = await create_component(client, keys, "API")
    old = await create_component(client, keys, "Old")
    await client.delete(f"/v2/status_page_components/{old}", headers=Keys.header(keys.admin))
    url = f"/v2/status_page_structures/{page['id']}"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"items": [{"component": {"component_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}}]}, "items[0].component.component_id"),
        ({"items": [{"component": {"component_id": "nope"}}]}, "items[0].component.component_id"),
        ({"items": [{"group": {"name": "G", "components": [{"component_id": old}]}}]},
         "items[0].group.components[0].component_id"),
        ({"items": [{"component": {"component_id": api}}, {"component": {"component_id": api}}]},
         "items[1].component.component_id"),
        ({"items": [{}]}, "items[0]"),
        ({"items": [{"group": {"components": []}}]}, "items[0].group.name"),
        ({"items": [], "display_uptime_mode": "sometimes"}, "display_uptime_mode"),
        ({"display_uptime_mode": "nothing"}, "items"),
    ]
    for body, field in cases:
        response = await client.put(url, json=body, headers=Keys.header(keys.admin))
        error = assert_envelope(response, 422, "validation_error")
        assert error["errors"][0]["source"]["field"] == field, body
    shown = await client.get(url, headers=Keys.header(keys.read))
    assert shown.json()["current_structure"] == {"items": []}


async def test_sub_page_slugs_are_kept_given_or_derived_uniquely(client: Client, keys: Keys) -> None:
    page = await create_page(client, keys, "acme")
    url = f"/v2/status_page_structures/{page['id']}"
    body = {"items": [{"sub_page": {"name": "EU", "items": []}}, {"sub_page": {"name": "EU", "slug": "eu"}},
                      {"sub_page": {"name": "US", "slug": "americas"}}]}
    response = await client.put(url, json=body, headers=Keys.header(keys.admin))
    assert response.status_code == 200, response.text
    slugs = [item["sub_page"]["slug"] for item in response.json()["current_structure"]["items"]]
    assert slugs == ["eu-2", "eu", "americas"]

    reserved = {"items": [{"sub_page": {"name": "X", "slug": "api"}}]}
    bad = await client.put(url, json=reserved, headers=Keys.header(keys.admin))
    assert_envelope(bad, 422, "validation_error")
