"""Beacon's OpenAPI document tells the truth about errors (issue 6 §5): Litestar documents only the happy
status and its own `{status_code, detail}` 400 body, while every non-2xx Beacon answers is the SPEC §1
envelope. The document is finished once, when first served, from the app's own route table (the scope a
handler declares decides whether it can answer 403); and `OPTIONS` answers list every method of a path.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.datastructures import MutableScopeHeaders
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope

from api.errors import ErrorEnvelope

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


def error_statuses(method: str, *, has_body: bool, scoped: bool) -> list[int]:
    """Every error status an operation can answer, in the envelope."""
    statuses = [400, 401, 404, 422, 429, 500, 503]
    if scoped:
        statuses.append(403)
    if method in _WRITES:
        statuses.append(409)
    if has_body:
        statuses += [413, 415]
    return sorted(statuses)


def _scoped_operations(app: Litestar) -> set[tuple[str, str]]:
    """(path, method) of every operation whose handler demands a scope (`api.auth`), i.e. can answer 403."""
    scoped = set()
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if handler.opt.get("scope"):
                    scoped |= {(route.path_format, method.lower()) for method in handler.http_methods}
    return scoped


def document_errors(document: dict[str, Any], app: Litestar) -> None:
    """Add the envelope schema and an envelope response for each error status to every operation (in place,
    idempotent); Litestar's own 400 schema is replaced, since Beacon never sends that body."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorEnvelope" in schemas:
        return
    _, components = msgspec.json.schema_components([ErrorEnvelope], ref_template="#/components/schemas/{name}")
    schemas.update(components)
    scoped = _scoped_operations(app)
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status in error_statuses(method, has_body="requestBody" in operation, scoped=(path, method) in scoped):
                response: dict[str, Any] = {
                    "description": ERROR_DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": ENVELOPE_REF}},
                }
                if status in (429, 503):
                    response["headers"] = RETRY_AFTER
                responses[str(status)] = response


class BeaconOpenAPIJson(JsonRenderPlugin):
    """`/schema/openapi.json` (and the UI that loads it) with the error responses documented."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        # `openapi_schema` is Litestar's cached document: finishing it once serves every later request.
        document_errors(openapi_schema, request.app)
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
