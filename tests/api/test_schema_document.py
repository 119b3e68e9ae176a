"""The API document is self-contained and says who may call what: `/schema` and `/schema/openapi.json` are
the same JSON (no documentation UI loading scripts from a CDN, a blank page offline), with the bearer
scheme, each `/v2` operation's scope, and the public routes as needing no key. Access is checked against
the server: every operation the document names is called without a key and with keys lacking scopes."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from infra.api_keys import ADMIN, MANAGE_SUBSCRIBERS, PUBLISH
from tests.support.http import Keys

Client = AsyncTestClient[Litestar]
PUBLIC = {
    ("get", "/{page_slug}/api/v1/summary"),
    ("get", "/{page_slug}/{sub_page_slug}/api/v1/summary"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    *(
        (method, f"{base}/subscriptions{action}")
        for base in ("/{page_slug}", "/{page_slug}/{sub_page_slug}")
        for method, action in [("post", "")]
        + [(method, f"/{link}") for link in ("confirm", "manage", "unsubscribe") for method in ("get", "post")]
    ),
}


@pytest.fixture
async def document(client: Client) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "responses" in operation
    ]


def concrete(path: str) -> str:
    """The path with every parameter filled by an id nothing has (a slug for the public routes)."""
    for name in ("{page_slug}", "{sub_page_slug}"):
        path = path.replace(name, "no-such-page")
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + "01NOSUCHID00000000000000000" + path[end + 1 :]
    return path


async def test_schema_is_the_json_document_itself(client: Client, document: dict[str, Any]) -> None:
    for url in ("/schema", "/schema/"):
        response = await client.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == document
    assert document["openapi"].startswith("3.1")
    assert "<script" not in (await client.get("/schema")).text


async def test_the_bearer_scheme_and_each_operations_scope(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes == {"bearer": {"type": "http", "scheme": "bearer", "description": schemes["bearer"]["description"]}}
    assert document["security"] == [{"bearer": []}]
    found = {(method, path) for method, path, _ in operations(document)}
    assert PUBLIC <= found
    for method, path, operation in operations(document):
        if (method, path) in PUBLIC:
            assert operation["security"] == [], (method, path)
            assert "401" not in operation["responses"] and "x-required-scope" not in operation
            continue
        assert path.startswith("/v2/"), path
        scope = operation["x-required-scope"]
        assert scope in (None, PUBLISH, MANAGE_SUBSCRIBERS, ADMIN), (method, path)
        assert operation["security"] == [{"bearer": [scope] if scope else []}], (method, path)
        assert ("403" in operation["responses"]) == (scope is not None), (method, path)
        assert "401" in operation["responses"]
        sentence = f"Needs an API key with the `{scope}` scope" if scope else "Needs any valid API key"
        assert sentence in operation["description"], (method, path)
    scopes = {(method, path): operation.get("x-required-scope") for method, path, operation in operations(document)}
    # A few by hand, so the test does not only agree with the code that wrote the document.
    assert scopes["get", "/v2/status_pages"] is None
    assert scopes["post", "/v2/status_pages"] == ADMIN
    assert scopes["get", "/v2/api_keys"] == ADMIN
    assert scopes["get", "/v2/audit/events"] == ADMIN
    assert scopes["post", "/v2/status_page_incidents"] == PUBLISH
    assert scopes["delete", "/v2/status_page_maintenances/{status_page_maintenance_id}"] == PUBLISH
    assert scopes["get", "/v2/status_page_subscribers"] == MANAGE_SUBSCRIBERS


async def test_the_server_grants_what_the_document_says(client: Client, keys: Keys, document: dict[str, Any]) -> None:
    """Without a key every `/v2` operation is a 401 and no public one is; a key without scopes gets 403
    exactly where a scope is documented, a publish key exactly where a scope other than publish is. Ids name
    nothing and bodies are empty, so nothing is changed by the calls that get past the check."""
    for method, path, operation in operations(document):
        anonymous = await status(client, method, path, operation, {})
        if (method, path) in PUBLIC:
            assert anonymous in (200, 404), (method, path, anonymous)
            continue
        assert anonymous == 401, (method, path)
        scope = operation["x-required-scope"]
        reader = await status(client, method, path, operation, Keys.header(keys.read))
        assert (reader == 403) == (scope is not None), (method, path, reader)
        publisher = await status(client, method, path, operation, Keys.header(keys.publish))
        assert (publisher == 403) == (scope not in (None, PUBLISH)), (method, path, publisher)


async def status(client: Client, method: str, path: str, operation: dict[str, Any], headers: dict[str, str]) -> int:
    body: dict[str, Any] | None = {} if "requestBody" in operation else None
    response = await client.request(method.upper(), concrete(path), headers=headers, json=body)
    return response.status_code


def referenced(node: Any) -> set[str]:
    """The component schemas `node` names through `$ref`, directly."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        names = {ref.removeprefix("#/components/schemas/")} if isinstance(ref, str) else set()
        return names.union(*(referenced(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(referenced(value) for value in node))
    return set()


def reachable(document: dict[str, Any], part: str) -> set[str]:
    """The component schemas an operation's `part` (`requestBody`, `responses`) reaches, however deep."""
    schemas = document["components"]["schemas"]
    pending = set().union(*(referenced(operation.get(part)) for _, _, operation in operations(document)))
    found: set[str] = set()
    while pending:
        name = pending.pop()
        found.add(name)
        pending |= referenced(schemas[name]) - found
    return found


async def test_request_bodies_are_closed_and_responses_open(document: dict[str, Any]) -> None:
    """Beacon refuses a body field it does not accept, at any depth (a 422 `unknown_field`), so every
    request-body schema says `additionalProperties: false`; a response may gain fields in a later Beacon,
    so no response schema forbids them."""
    schemas = document["components"]["schemas"]
    requests, responses = reachable(document, "requestBody"), reachable(document, "responses")
    # By hand: the bodies themselves and the structs nested in them (impacts, structure items, meta).
    assert {
        "CreateStatusPageIncidentPayload",
        "UpdateStatusPageMaintenancePayload",
        "ReplaceStatusPageStructurePayload",
        "ComponentStatusPayload",
        "ItemPayload",
        "GroupPayload",
        "SubPagePayload",
        "ManagementMetaPayload",
        "StatusPageRetrospectiveIncidentUpdate",
    } <= requests
    for name in requests:
        assert schemas[name]["type"] == "object" and schemas[name].get("additionalProperties") is False, name
    assert {"StatusPageIncident", "StatusPageComponentView", "WidgetDocument", "ErrorEnvelope"} <= responses
    assert not requests & responses  # no schema is both, so each can tell its own truth
    for name in responses:
        assert schemas[name].get("additionalProperties") is not False, name
