"""Driving Beacon over HTTP as a client would: keys of every kind, the error envelope every failure
answers with (docs/architecture.md#error-envelope), and the few writes most API tests start from."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import httpx
from incident_io.models.status_page_components_create_result_v2 import StatusPageComponentsCreateResultV2
from incident_io.models.status_pages_list_status_page_incidents_result_v2 import (
    StatusPagesListStatusPageIncidentsResultV2,
)
from incident_io.models.status_pages_show_status_page_incident_result_v2 import (
    StatusPagesShowStatusPageIncidentResultV2,
)
from incident_io.types import Unset
from litestar import Litestar
from litestar.testing import AsyncTestClient

from infra.api_keys import ADMIN, PUBLISH, create_key, revoke_key
from infra.clock import SystemClock

Client = AsyncTestClient[Litestar]
T = TypeVar("T")


@dataclass(frozen=True)
class Keys:
    """Bearer tokens for each kind of caller; `revoked` was valid once and is revoked now."""

    admin: str
    publish: str
    read: str
    revoked: str

    @staticmethod
    def header(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


async def make_keys(database_url: str) -> Keys:
    conn = await asyncpg.connect(database_url)
    try:
        now = SystemClock().now()
        admin, publish, read = [
            (await create_key(conn, name=name, scopes=scopes, now=now))[1]
            for name, scopes in (("admin", (ADMIN,)), ("publisher", (PUBLISH,)), ("reader", ()))
        ]
        revoked, revoked_token = await create_key(conn, name="revoked", scopes=(ADMIN,), now=now)
        assert await revoke_key(conn, revoked.id, now=now)
    finally:
        await conn.close()
    return Keys(admin=admin, publish=publish, read=read, revoked=revoked_token)


def assert_envelope(
    response: httpx.Response, status: int | Collection[int], error_type: str | None = None
) -> dict[str, Any]:
    """The response is the error envelope: the expected status (or one of them) and type, a request id that
    matches the header, errors each with a code and a message, and no trace."""
    expected = {status} if isinstance(status, int) else set(status)
    assert response.status_code in expected, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert "Traceback" not in response.text
    body: dict[str, Any] = response.json()
    assert set(body) >= {"type", "status", "request_id", "errors"}, body
    if error_type is not None:
        assert body["type"] == error_type, body
    assert body["status"] == response.status_code
    request_id = response.headers["x-request-id"]
    assert body["request_id"] == request_id and uuid.UUID(request_id)
    assert body["errors"] and all(e["code"] and e["message"] for e in body["errors"]), body
    return body


def present(value: T | Unset) -> T:
    """The SDK types every result field as optional; Beacon always sends them."""
    assert not isinstance(value, Unset)
    return value


# Writes most API tests start from.


async def create_page(client: Client, keys: Keys, slug: str, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/v2/status_pages", json={"name": slug.title(), "slug": slug, **fields}, headers=Keys.header(keys.admin)
    )
    assert response.status_code == 201, response.text
    page: dict[str, Any] = response.json()["status_page"]
    return page


async def create_component(client: Client, keys: Keys, name: str, **fields: Any) -> str:
    response = await client.post(
        "/v2/status_page_components", json={"name": name, **fields}, headers=Keys.header(keys.admin)
    )
    assert response.status_code == 201, response.text
    body = response.json()
    StatusPageComponentsCreateResultV2.from_dict(body)
    component_id: str = body["status_page_component"]["id"]
    return component_id


@dataclass(frozen=True)
class Page:
    """A page with `api` at the top, `db` in the group `backend`, and `web` on the sub-page `eu`."""

    id: str
    api: str
    db: str
    web: str
    backend: str
    eu: str


async def setup_page(client: Client, keys: Keys, slug: str = "acme") -> Page:
    page = await create_page(client, keys, slug)
    api = await create_component(client, keys, f"{slug} API")
    db = await create_component(client, keys, f"{slug} DB")
    web = await create_component(client, keys, f"{slug} Web")
    items = [
        {"component": {"component_id": api}},
        {"group": {"name": "Backend", "components": [{"component_id": db}]}},
        {"sub_page": {"name": "EU", "items": [{"component": {"component_id": web}}]}},
    ]
    response = await client.put(
        f"/v2/status_page_structures/{page['id']}", json={"items": items}, headers=Keys.header(keys.admin)
    )
    assert response.status_code == 200, response.text
    placed = response.json()["current_structure"]["items"]
    return Page(page["id"], api, db, web, backend=placed[1]["group"]["id"], eu=placed[2]["sub_page"]["id"])


def statuses(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    """Component statuses as the wire carries them."""
    return [{"component_id": cid, "component_status": status} for cid, status in pairs]


async def create_incident(client: Client, keys: Keys, page: Page, key: str, **fields: Any) -> httpx.Response:
    body = {
        "idempotency_key": key,
        "status_page_id": page.id,
        "name": "Login failing",
        "message": "We are looking into it.",
        "incident_status": "investigating",
        "notify_subscribers": False,
        **fields,
    }
    return await client.post("/v2/status_page_incidents", json=body, headers=Keys.header(keys.publish))


async def post_incident_update(client: Client, keys: Keys, incident_id: str, **fields: Any) -> httpx.Response:
    body = {"status_page_incident_id": incident_id, "message": "More news.", "notify_subscribers": False, **fields}
    return await client.post("/v2/status_page_incident_updates", json=body, headers=Keys.header(keys.publish))


async def show_incident(client: Client, keys: Keys, incident_id: str) -> dict[str, Any]:
    response = await client.get(f"/v2/status_page_incidents/{incident_id}", headers=Keys.header(keys.read))
    assert response.status_code == 200, response.text
    StatusPagesShowStatusPageIncidentResultV2.from_dict(response.json())
    incident: dict[str, Any] = response.json()["status_page_incident"]
    return incident


async def list_incident_ids(client: Client, keys: Keys, **params: Any) -> list[str]:
    response = await client.get("/v2/status_page_incidents", params=params, headers=Keys.header(keys.read))
    assert response.status_code == 200, response.text
    result = StatusPagesListStatusPageIncidentsResultV2.from_dict(response.json())
    return [incident.id for incident in result.status_page_incidents]


MAINTENANCE_START = "2099-01-28T10:00:00.000000Z"
MAINTENANCE_END = "2099-01-28T12:00:00.000000Z"


async def create_maintenance(client: Client, keys: Keys, page: Page, key: str, **fields: Any) -> httpx.Response:
    body = {
        "idempotency_key": key,
        "status_page_id": page.id,
        "name": "DB upgrade",
        "message": "We will upgrade the database.",
        "maintenance_status": "maintenance_scheduled",
        "start_at": MAINTENANCE_START,
        "end_at": MAINTENANCE_END,
        "affected_component_ids": [page.db],
        "notify_subscribers": False,
        **fields,
    }
    return await client.post("/v2/status_page_maintenances", json=body, headers=Keys.header(keys.publish))


async def maintenance_with_status(client: Client, keys: Keys, maintenance_id: str, status: str) -> dict[str, Any]:
    """GET the window until it shows `status` (the scheduler and the read model run in the background)."""
    async with asyncio.timeout(15):
        while True:
            response = await client.get(
                f"/v2/status_page_maintenances/{maintenance_id}", headers=Keys.header(keys.read)
            )
            assert response.status_code == 200
            body: dict[str, Any] = response.json()["status_page_maintenance"]
            if body["maintenance_status"] == status:
                return body
            await asyncio.sleep(0.02)
