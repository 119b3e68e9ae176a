"""Beacon's OpenAPI document, served whole at `/schema` and `/schema/openapi.json` (README, "The API
document"): JSON only, so nothing is loaded from elsewhere and an offline install reads it as well.

It tells the truth about errors (docs/architecture.md#error-envelope): Litestar documents only the happy
status and its own `{status_code, detail}` 400 body, while every non-2xx Beacon answers is the envelope. It
tells the truth about access (docs/architecture.md#scopes): the bearer scheme, the scope each `/v2`
operation needs, and the public routes Litestar never sees (the widget's fast path) or keeps out of the
document (health) as operations without security. The document is finished once, when first served, from the
app's own route table (the guards and scope a handler declares); and `OPTIONS` answers list every method of
a path.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request
from litestar.datastructures import MutableScopeHeaders
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope

from api.auth import require_api_key
from api.errors import ErrorEnvelope
from infra.api_keys import ADMIN

ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
RETRY_AFTER = {
    "Retry-After": {
        "description": "When to try again: seconds (503) or an HTTP-date (429).",
        "schema": {"type": "string"},
    }
}
ERROR_DESCRIPTIONS = {
    400: "The body is not JSON (malformed, too deep, not UTF-8) or a parameter has the wrong type.",
    401: "No API key, or one Beacon does not know (or has revoked).",
    403: "The API key lacks the scope this operation needs.",
    404: "No such resource (or no such status page in a filter).",
    409: "A concurrent change to the same resource won; retry.",
    413: "The request body is larger than 64 KiB.",
    415: "The request body is not `application/json`.",
    422: "The request is well-formed but breaks a rule (unknown enum value, missing field, unknown id, limits).",
    429: "Rate limit exceeded; the body carries `rate_limit`.",
    500: "Beacon failed; the request id identifies it in the logs.",
    503: "The database is unreachable or Beacon is starting; nothing was recorded.",
}
_WRITES = frozenset({"post", "put", "patch", "delete"})

BEARER = "bearer"
SECURITY_SCHEMES = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "An API key (`bk_…`) in `Authorization: Bearer <key>`: the bootstrap key printed on the first start, "
            "or one made with `beacon keys create` or `POST /v2/api_keys`. A key grants its scopes; `admin` "
            "grants every scope."
        ),
    }
}
SCOPE_EXTENSION = "x-required-scope"
"""Each authenticated operation's scope (`null`: any valid key), also listed in its `security` requirement
(OpenAPI 3.1 allows role names there for non-OAuth schemes) and said in its description."""

WIDGET_RESPONSES: dict[str, Any] = {
    "200": {
        "description": "The page's (or sub-page's) widget document, with a strong `ETag`.",
        "headers": {"ETag": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WidgetDocument"}}},
    },
    "304": {"description": "`If-None-Match` holds the document's ETag: no body."},
    "404": {
        "description": "No such page or sub-page, or its widget API is disabled.",
        "content": {"application/json": {"schema": ENVELOPE_REF}},
    },
}
_SLUG = {"type": "string", "pattern": "^[a-z0-9-]{1,63}$"}
_HEALTH_SCHEMA = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}
PUBLIC_OPERATIONS: dict[str, dict[str, Any]] = {
    "/{page_slug}/api/v1/summary": {
        "summary": "PublicWidget",
        "operationId": "PublicWidget",
        "description": "The public widget document of a status page, by its slug.",
        "parameters": [{"name": "page_slug", "in": "path", "required": True, "schema": _SLUG}],
        "responses": WIDGET_RESPONSES,
    },
    "/{page_slug}/{sub_page_slug}/api/v1/summary": {
        "summary": "PublicSubPageWidget",
        "operationId": "PublicSubPageWidget",
        "description": "The public widget document of a sub-page: only notices touching its visible components.",
        "parameters": [
            {"name": "page_slug", "in": "path", "required": True, "schema": _SLUG},
            {"name": "sub_page_slug", "in": "path", "required": True, "schema": _SLUG},
        ],
        "responses": WIDGET_RESPONSES,
    },
    "/healthz": {
        "summary": "Healthz",
        "operationId": "Healthz",
        "description": "The process answers (never asks the database): for liveness probes.",
        "responses": {
            "200": {"description": "`ok`", "content": {"application/json": {"schema": _HEALTH_SCHEMA}}},
        },
    },
    "/readyz": {
        "summary": "Readyz",
        "operationId": "Readyz",
        "description": (
            "The database answers and its migrations are applied: for readiness probes (503 otherwise). A "
            "stopped projection does not make a process unready. With `detail`, always 200 and JSON: "
            "`status` (`ready` or `not_ready`), `projections` (each one's `name`, `checkpoint`, the log's "
            "`head`, `lag` in events and `lag_seconds`, `stopped`, `failed_position` and `error` when it "
            "stopped, `writes_wait`, and `active`: whether this process runs it) and, when `projections` is "
            "empty or the process is not ready, `reason`; the same report as `beacon projections status`."
        ),
        "parameters": [
            {
                "name": "detail",
                "in": "query",
                "required": False,
                "description": "Report every projection instead of only whether this process can serve.",
                "schema": {"type": "boolean", "default": False},
            }
        ],
        "responses": {
            "200": {
                "description": "`ready`; with `detail`, the readiness report (also when not ready).",
                "content": {"application/json": {"schema": _HEALTH_SCHEMA}},
            },
        },
    },
}
"""Routes anyone may call, which Litestar does not document: the widget is answered in front of Litestar
(api/public_documents.py), and the health handlers are kept out of its document. Added only where the document has
no such path yet, so a handler that documents itself wins."""


def error_statuses(method: str, *, has_body: bool, scoped: bool, authenticated: bool = True) -> list[int]:
    """Every error status an operation can answer, in the envelope."""
    statuses = [400, 404, 422, 500, 503]
    if authenticated:
        statuses += [401, 429]
    if scoped:
        statuses.append(403)
    if method in _WRITES:
        statuses.append(409)
    if has_body:
        statuses += [413, 415]
    return sorted(statuses)


def operation_scopes(app: Litestar) -> dict[tuple[str, str], str | None]:
    """(path, method) of every operation behind `require_api_key` with the scope its handler demands
    (`None`: any valid key, `api.auth`); operations missing here need no key."""
    scopes: dict[tuple[str, str], str | None] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if require_api_key in handler.resolve_guards():
                    scope = handler.opt.get("scope")
                    scopes |= {(route.path_format, method.lower()): scope for method in handler.http_methods}
    return scopes


def document_access(document: dict[str, Any], app: Litestar) -> None:
    """Declare the bearer scheme, each authenticated operation's scope, and every other operation (the
    public routes included) as needing no key (in place, idempotent)."""
    document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    document["security"] = [{BEARER: []}]
    paths = document.setdefault("paths", {})
    for path, operation in PUBLIC_OPERATIONS.items():
        paths.setdefault(path, {"get": copy.deepcopy(operation)})  # finishing changes it
    scopes = operation_scopes(app)
    for path, item in paths.items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if (path, method) not in scopes:
                operation["security"] = []
                operation.pop(SCOPE_EXTENSION, None)
                continue
            scope = scopes[path, method]
            operation["security"] = [{BEARER: [scope] if scope else []}]
            operation[SCOPE_EXTENSION] = scope
            needs = f"Needs an API key with the `{scope}` scope" if scope else "Needs any valid API key"
            if scope and scope != ADMIN:
                needs += " (or `admin`)"
            sentence = needs + "."
            description = operation.get("description", "")
            if sentence not in description:
                operation["description"] = f"{description}\n\n{sentence}" if description else sentence


def document_errors(document: dict[str, Any], app: Litestar) -> None:
    """Add the envelope schema and an envelope response for each error status to every operation (in place,
    idempotent); Litestar's own 400 schema is replaced, since Beacon never sends that body."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    _, components = msgspec.json.schema_components([ErrorEnvelope], ref_template="#/components/schemas/{name}")
    schemas.update(components)
    scopes = operation_scopes(app)
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            statuses = error_statuses(
                method,
                has_body="requestBody" in operation,
                scoped=scopes.get((path, method)) is not None,
                authenticated=(path, method) in scopes,
            )
            for status in statuses:
                response: dict[str, Any] = {
                    "description": ERROR_DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": ENVELOPE_REF}},
                }
                if status in (429, 503):
                    response["headers"] = RETRY_AFTER
                if _answers_envelope(responses.get(str(status))):
                    continue  # already documented as the envelope, with a more precise description
                responses[str(status)] = response


def _answers_envelope(response: dict[str, Any] | None) -> bool:
    schema = (response or {}).get("content", {}).get("application/json", {}).get("schema")
    return bool(schema == ENVELOPE_REF)


SCHEMA_REF_PREFIX = "#/components/schemas/"
_NOT_SCHEMAS = frozenset({"example", "examples", "default", "const", "enum"})
"""Keys whose values are data, not schemas: an example object is never closed."""
_SCHEMA_MAPS = frozenset({"properties", "patternProperties"})


def document_closed_bodies(document: dict[str, Any]) -> None:
    """Declare `additionalProperties: false` on every object schema a `/v2` request body reaches (the body's
    own and the structs nested in it, through `$ref`s), in place and idempotent: Beacon refuses a body
    field it does not accept, at any depth, with a 422 `unknown_field` (api/body.py). Response schemas stay
    open, so clients keep accepting fields a later Beacon adds; a schema that already says what extra
    properties may hold (a map) keeps it."""
    schemas = document.get("components", {}).get("schemas", {})
    seen: set[str] = set()
    pending: list[Any] = [
        operation["requestBody"]
        for path, item in document.get("paths", {}).items()
        if path.startswith("/v2/")
        for operation in item.values()
        if isinstance(operation, dict) and "requestBody" in operation
    ]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending += node
        elif isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(SCHEMA_REF_PREFIX):
                name = ref.removeprefix(SCHEMA_REF_PREFIX)
                if name not in seen and name in schemas:
                    seen.add(name)
                    pending.append(schemas[name])
            if node.get("type") == "object" and "properties" in node:
                node.setdefault("additionalProperties", False)
            for key, value in node.items():
                if key in _SCHEMA_MAPS and isinstance(value, dict):
                    pending += value.values()  # keyed by property name, which may be any word
                elif key not in _NOT_SCHEMAS:
                    pending.append(value)


HTML_ANSWERING_TAGS = frozenset({"public subscriptions"})
"""Tags of operations that answer a browser (a form post, an `Accept` preferring HTML) with an HTML page
carrying the same status code (api/controllers/public_subscriptions.py)."""


def document_html_answers(document: dict[str, Any]) -> None:
    """Every response of an operation tagged in `HTML_ANSWERING_TAGS` may also come as `text/html` (in place,
    idempotent)."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or not HTML_ANSWERING_TAGS & set(operation.get("tags", ())):
                continue
            for response in operation.get("responses", {}).values():
                if isinstance(response, dict):
                    response.setdefault("content", {}).setdefault("text/html", {"schema": {"type": "string"}})


class BeaconOpenAPIJson(JsonRenderPlugin):
    """The finished document as JSON, at `/schema` and `/schema/openapi.json`: no documentation UI, whose
    scripts would come from a CDN (a blank page on an offline install)."""

    def __init__(self) -> None:
        super().__init__(path=["/", "/openapi.json"], media_type=MediaType.JSON)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        # `openapi_schema` is Litestar's cached document: finishing it once serves every later request.
        document_access(openapi_schema, request.app)
        document_errors(openapi_schema, request.app)
        document_closed_bodies(openapi_schema)
        document_html_answers(openapi_schema)
        return super().render(request, openapi_schema)


async def correct_allow_header(message: Message, scope: Scope) -> None:
    """Litestar's automatic OPTIONS handler lists only the methods of the first handlers registered for a
    path (it keeps the route object it was created with when later handlers extend the path); answer with
    every method the path's route actually has."""
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    template = scope.get("path_template")
    app = scope.get("litestar_app")
    if template is None or not isinstance(app, Litestar):
        return
    methods = _methods_by_path(app).get(template)
    if methods:
        MutableScopeHeaders.from_message(message)["Allow"] = methods


def _methods_by_path(app: Litestar) -> dict[str, str]:
    # Computed per OPTIONS request: those are rare, and a cache keyed by app would outlive test apps.
    return {route.path_format: ", ".join(sorted(route.methods)) for route in app.routes if isinstance(route, HTTPRoute)}
