"""Every error path returns the SPEC §1 envelope with the request id; API keys work end to end."""

from __future__ import annotations

import uuid

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.api.conftest import Keys

Client = AsyncTestClient[Litestar]


def assert_envelope(response: object, status: int, error_type: str) -> dict[str, object]:
    body = response.json()  # type: ignore[attr-defined]
    assert response.status_code == status, body  # type: ignore[attr-defined]
    assert body["type"] == error_type
    assert body["status"] == status
    assert body["errors"] and all("code" in e and "message" in e for e in body["errors"])
    request_id = response.headers["x-request-id"]  # type: ignore[attr-defined]
    assert body["request_id"] == request_id and uuid.UUID(request_id)
    return body  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("method", "path", "who", "kwargs", "status", "error_type"),
    [
        ("GET", "/v2/api_keys", None, {}, 401, "authentication_error"),
        ("GET", "/v2/api_keys", "bogus", {}, 401, "authentication_error"),
        ("GET", "/v2/api_keys", "read", {}, 403, "resource_forbidden"),
        ("POST", "/v2/api_keys", "publish", {"json": {"name": "x", "scopes": []}}, 403, "resource_forbidden"),
        ("GET", "/v2/no_such_thing", "admin", {}, 404, "not_found"),
        ("GET", "/nowhere/at/all", None, {}, 404, "not_found"),
        ("PATCH", "/v2/api_keys", "admin", {"json": {}}, 405, "method_not_allowed"),
        ("POST", "/v2/api_keys", "admin", {"content": b"{" + b" " * 70_000 + b"}",
                                           "headers": {"content-type": "application/json"}}, 413, "payload_too_large"),
        ("POST", "/v2/api_keys", "admin", {"content": b"name=x", "headers": {"content-type": "text/plain"}},
         415, "validation_error"),
        ("POST", "/v2/api_keys", "admin", {"json": {"scopes": []}}, 422, "validation_error"),
        ("POST", "/v2/api_keys", "admin", {"json": {"name": "x", "scopes": ["root"]}}, 422, "validation_error"),
        ("POST", "/v2/api_keys", "admin", {"content": b'{"name": ', "headers": {"content-type": "application/json"}},
         400, "validation_error"),
        ("DELETE", "/v2/api_keys/01ARZ3NDEKTSV4RRFFQ69G5FAV", "admin", {}, 404, "not_found"),
    ],
)
async def test_every_error_path_returns_the_envelope(
    client: Client, keys: Keys, method: str, path: str, who: str | None, kwargs: dict[str, object],
    status: int, error_type: str,
) -> None:
    headers = dict(kwargs.pop("headers", {}))  # type: ignore[call-overload]
    if who == "bogus":
        headers |= Keys.header("bk_not_a_key")
    elif who:
        headers |= Keys.header(getattr(keys, who))
    response = await client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
    assert_envelope(response, status, error_type)


async def test_a_missing_field_names_the_field(client: Client, keys: Keys) -> None:
    response = await client.post("/v2/api_keys", json={"scopes": []}, headers=Keys.header(keys.admin))
    body = assert_envelope(response, 422, "validation_error")
    assert body["errors"] == [{"code": "is_required", "message": "name is required", "source": {"field": "name"}}]


async def test_a_value_of_the_wrong_json_type_is_refused_not_coerced(client: Client, keys: Keys) -> None:
    admin = Keys.header(keys.admin)
    created = await client.post("/v2/status_pages", json={"name": "Acme", "slug": "acme"}, headers=admin)
    assert created.status_code == 201, created.text
    page = created.json()["status_page"]["id"]

    as_number = await client.put(
        f"/v2/status_pages/{page}", json={"name": "Acme", "widget_api_enabled": 0}, headers=admin
    )
    body = assert_envelope(as_number, 422, "validation_error")
    assert [error["source"] for error in body["errors"]] == [{"field": "widget_api_enabled"}]  # type: ignore[attr-defined]
    assert "Expected `bool`, got `int`" in body["errors"][0]["message"]  # type: ignore[index]

    nested = {"items": [{"group": {"name": "G", "components": [{"component_id": page, "display_uptime": 0}]}}]}
    in_a_structure = await client.put(f"/v2/status_page_structures/{page}", json=nested, headers=admin)
    body = assert_envelope(in_a_structure, 422, "validation_error")
    assert body["errors"][0]["source"] == {"field": "items[0].group.components[0].display_uptime"}  # type: ignore[index]

    shown = await client.get(f"/v2/status_pages/{page}", headers=admin)
    assert shown.json()["status_page"]["widget_api_enabled"] is True  # nothing was changed


async def test_a_key_is_shown_once_listed_without_token_and_revocable(client: Client, keys: Keys) -> None:
    admin = Keys.header(keys.admin)
    created = await client.post("/v2/api_keys", json={"name": "ci bot", "scopes": ["status_pages.publish_updates"]},
                                headers=admin)
    assert created.status_code == 201, created.text
    key = created.json()["api_key"]
    assert key["name"] == "ci bot" and key["scopes"] == ["status_pages.publish_updates"]
    assert key["token"].startswith("bk_")

    listed = (await client.get("/v2/api_keys", headers=admin)).json()["api_keys"]
    assert [k for k in listed if k["id"] == key["id"]] == [{k: v for k, v in key.items() if k != "token"}]

    assert (await client.get("/v2/api_keys", headers=Keys.header(key["token"]))).status_code == 403
    assert (await client.delete(f"/v2/api_keys/{key['id']}", headers=admin)).status_code == 204
    assert_envelope(await client.get("/v2/api_keys", headers=Keys.header(key["token"])), 401, "authentication_error")


async def test_health_and_readiness(client: Client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    assert (await client.get("/schema/openapi.json")).status_code == 200
