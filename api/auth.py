"""Authentication and authorisation for every `/v2` route (docs/architecture.md#scopes).

One router-level guard: it resolves the bearer token to an API key (a short in-process cache keeps
this off the database for hot keys; revocation through this process takes effect at once, through
another within `CACHE_SECONDS`), applies the key's rate limit, and checks the scope the route handler
declares in `opt={"scope": …}` (none = any valid key)."""

from __future__ import annotations

import time
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.errors import ApiError
from api.services import Services
from domain.base import Actor
from infra.api_keys import ApiKey, find_by_token

CACHE_SECONDS = 2.0


class KeyCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, ApiKey | None]] = {}

    def get(self, token: str) -> tuple[bool, ApiKey | None]:
        entry = self._entries.get(token)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, token: str, key: ApiKey | None) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[token] = (time.monotonic() + CACHE_SECONDS, key)

    def forget(self, key_id: str) -> None:
        self._entries = {t: e for t, e in self._entries.items() if e[1] is None or e[1].id != key_id}


def _bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any], services: Services) -> ApiKey:
    token = _bearer_token(connection)
    if token is None:
        raise ApiError(401, "Missing API key: send `Authorization: Bearer <api key>`", code="unauthenticated")
    cached, key = services.key_cache.get(token)
    if not cached:
        key = await find_by_token(services.pool, token)
        services.key_cache.put(token, key)
    if key is None:
        raise ApiError(401, "Unknown or revoked API key", code="unauthenticated")
    return key


async def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    services: Services = connection.app.state.services
    key = await authenticate(connection, services)
    connection.state.api_key = key
    connection.state.actor = Actor(type="api_key", id=key.id, name=key.name)
    now = services.clock.now()
    services.rate_limits.check(key.id, now, name="api_key")
    if handler.opt.get("rate_limit") == "retrospective":
        services.retrospective_limits.check(key.id, now, name="retrospective_incidents")
    scope = handler.opt.get("scope")
    if not key.grants(scope):
        raise ApiError(403, f"This API key lacks the `{scope}` scope", code="forbidden")
    if connection.scope.get("method") in _BODY_METHODS and not _sends_json(connection):
        raise ApiError(415, "Send the body as application/json", code="unsupported_media_type")


_BODY_METHODS = {"POST", "PUT", "PATCH"}


def _sends_json(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    content_type = connection.headers.get("content-type")
    if content_type is None:
        # Only a bodiless request may omit it; `curl -d` without a header sends form encoding.
        return connection.headers.get("content-length", "0") == "0" and "transfer-encoding" not in connection.headers
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")
