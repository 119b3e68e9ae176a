"""Every error path returns the error envelope (docs/architecture.md#error-envelope) with the request id; API keys
work end to end."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from infra.settings import Settings
from tests.support.http import Keys, assert_envelope

Client = AsyncTestClient[Litestar]


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
         415, "invalid_request_error"),
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
    assert body["errors"] == [
        {"code": "is_required", "message": "name is required", "source": {"field": "name", "pointer": "/name"}}
    ]


async def test_a_value_of_the_wrong_json_type_is_refused_not_coerced(client: Client, keys: Keys) -> None:
    admin = Keys.header(keys.admin)
    created = await client.post("/v2/status_pages", json={"name": "Acme", "slug": "acme"}, headers=admin)
    assert created.status_code == 201, created.text
    page = created.json()["status_page"]["id"]

    as_number = await client.put(
        f"/v2/status_pages/{page}", json={"name": "Acme", "widget_api_enabled": 0}, headers=admin
    )
    body = assert_envelope(as_number, 422, "validation_error")
    assert [error["source"] for error in body["errors"]] == [
        {"field": "widget_api_enabled", "pointer": "/widget_api_enabled"}
    ]
    assert "Expected `bool | null`, got `int`" in body["errors"][0]["message"]

    nested = {"items": [{"group": {"name": "G", "components": [{"component_id": page, "display_uptime": 0}]}}]}
    in_a_structure = await client.put(f"/v2/status_page_structures/{page}", json=nested, headers=admin)
    body = assert_envelope(in_a_structure, 422, "validation_error")
    assert body["errors"][0]["source"] == {
        "field": "items[0].group.components[0].display_uptime",
        "pointer": "/items/0/group/components/0/display_uptime",
    }

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


async def test_a_key_over_a_limit_gets_a_429_naming_the_limit_and_when_to_retry(settings: Settings, keys: Keys) -> None:
    """incident.io's SDK reads every field of `rate_limit` (`name` included) and `retry_after` as RFC 3339;
    `Retry-After` is a number of seconds (docs/architecture.md#rate-limits)."""
    limited = replace(settings, rate_limit_per_minute=2, retrospective_rate_per_second=0.01, retrospective_burst=1)
    retrospective = {"idempotency_key": "k", "status_page_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "name": "n", "updates": []}
    before = datetime.now(UTC).replace(microsecond=0)
    async with AsyncTestClient(app=create_app(limited)) as client:
        reads = [await client.get("/v2/status_pages", headers=Keys.header(keys.read)) for _ in range(3)]
        posts = [
            await client.post(
                "/v2/status_page_retrospective_incidents", json=retrospective, headers=Keys.header(keys.publish)
            )
            for _ in range(2)
        ]

    assert [response.status_code for response in reads[:2]] == [200, 200]
    assert posts[0].status_code == 422  # let through to the rules (the page does not exist)
    for response, name, limit in ((reads[2], "api_key", 2), (posts[1], "retrospective_incidents", 1)):
        body = assert_envelope(response, 429, "too_many_requests")
        rate_limit: dict[str, object] = body["rate_limit"]
        assert (rate_limit["name"], rate_limit["limit"], rate_limit["remaining"]) == (name, limit, 0), body
        retry_at = datetime.strptime(str(rate_limit["retry_after"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        seconds = int(response.headers["retry-after"])
        assert seconds >= 1 and retry_at > before, (seconds, rate_limit)
