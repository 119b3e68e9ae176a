"""Issue 6 §6: every `/v2` route × every kind of caller answers the status docs/architecture.md#scopes
promises. The route list is read from the app itself, so a route added later is tested (or fails the
classification test) without anyone editing this file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from api.app import create_app
from infra.api_keys import ADMIN, MANAGE_SUBSCRIBERS, PUBLISH
from infra.settings import Settings
from tests.support.http import Keys

DUMMY_ID = "01JAAAAAAAAAAAAAAAAAAAAAAA"
"""ULID-shaped, so a handler gets past id parsing and answers 404/422 rather than tripping on the shape."""

READ_METHODS = {"GET", "HEAD", "OPTIONS"}
ANY_KEY = "any valid key"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    scope: Any
    reads_only: bool = False
    """A `POST` that records nothing (`opt={"reads_only": True}`, as `POST /v2/as_of_links`): any key, like a read."""

    @property
    def url(self) -> str:
        return re.sub(r"\{[^}]+\}", DUMMY_ID, self.path)

    @property
    def needs(self) -> str | None:
        """The access this route demands, or None when its declaration fits no rule of docs/architecture.md#scopes."""
        if self.scope is None:
            return ANY_KEY if self.method in READ_METHODS or self.reads_only else None  # a write names its scope
        return self.scope if self.scope in (PUBLISH, MANAGE_SUBSCRIBERS, ADMIN) else None


def v2_endpoints(app: Litestar) -> list[Endpoint]:
    found = {
        Endpoint(method, route.path, handler.opt.get("scope"), bool(handler.opt.get("reads_only")))
        for route in app.routes
        if isinstance(route, HTTPRoute) and (route.path == "/v2" or route.path.startswith("/v2/"))
        for handler in route.route_handlers
        for method in handler.http_methods
    }
    return sorted(found, key=lambda e: (e.path, e.method))


ENDPOINTS = v2_endpoints(create_app(Settings(database_url="postgresql://unused@127.0.0.1/unused")))


def test_the_route_table_is_walked_and_every_route_is_classified() -> None:
    assert len(ENDPOINTS) >= 10, ENDPOINTS  # the walk found the API, not an empty table
    unclassified = [f"{e.method} {e.path} scope={e.scope!r}" for e in ENDPOINTS if e.needs is None]
    assert unclassified == [], (
        "routes whose scope fits no rule of docs/architecture.md#scopes (every write names its scope)"
    )


def _allowed(needs: str, caller: str) -> bool:
    if caller == "admin":
        return True
    if caller == "publish":
        return needs in (ANY_KEY, PUBLISH)
    return needs == ANY_KEY  # read


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.needs], ids=lambda e: f"{e.method} {e.path}")
async def test_route_answers_each_caller_as_spec_says(
    endpoint: Endpoint, client: AsyncTestClient[Litestar], keys: Keys
) -> None:
    needs = endpoint.needs
    assert needs is not None
    callers: dict[str, dict[str, str]] = {
        "no key": {},
        "revoked": Keys.header(keys.revoked),
        "read": Keys.header(keys.read),
        "publish": Keys.header(keys.publish),
        "admin": Keys.header(keys.admin),
    }
    got: dict[str, int] = {}
    wrong: list[str] = []
    for caller, headers in callers.items():
        kwargs: dict[str, Any] = {"headers": headers}
        if endpoint.method in ("POST", "PUT", "PATCH"):
            kwargs["json"] = {}
        response = await client.request(endpoint.method, endpoint.url, **kwargs)
        got[caller] = response.status_code
        if caller in ("no key", "revoked"):
            expected_ok = response.status_code == 401
        elif _allowed(needs, caller):
            expected_ok = response.status_code not in (401, 403) and response.status_code < 500
        else:
            expected_ok = response.status_code == 403
        if not expected_ok:
            wrong.append(f"{caller}: {response.status_code} {response.text[:200]}")
        if response.status_code >= 400:
            body = response.json()
            assert body["status"] == response.status_code and body["errors"], body
            if response.status_code == 401:
                assert body["type"] == "authentication_error"
            if response.status_code == 403:
                assert body["type"] == "resource_forbidden"
    assert wrong == [], f"{endpoint.method} {endpoint.path} needs {needs}; got {got}"
