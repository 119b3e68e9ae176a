"""The widget tests' scene, shared with the public site's: page `acme` with a group, a hidden component and a
sub-page, and incidents declared through the domain in the app's own event loop, then settled."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.services import Services
from domain.base import Actor, CommandContext, save
from domain.incident import Incident
from infra.clock import SystemClock
from infra.ids import new_ulid, uuid_to_ulid
from tests.support.http import Keys, create_component, create_page

Client = AsyncTestClient[Litestar]
BASE = "https://status.acme.test"


def services(client: Client) -> Services:
    app = client.app
    assert isinstance(app, Litestar)
    result: Services = app.state.services
    return result


async def acme(client: Client, keys: Keys) -> dict[str, Any]:
    """Page `acme` with API (top level), Login in group Auth, a hidden Secret and sub-page `eu` with EU API."""
    page = await create_page(client, keys, "acme", public_url=BASE)
    api = await create_component(client, keys, "API")
    login = await create_component(client, keys, "Login")
    secret = await create_component(client, keys, "Secret")
    eu_api = await create_component(client, keys, "EU API")
    items = [
        {"component": {"component_id": api, "hidden": False, "display_uptime": True}},
        {
            "group": {
                "name": "Auth",
                "hidden": False,
                "display_aggregated_uptime": True,
                "components": [
                    {"component_id": login, "hidden": False, "display_uptime": True},
                    {"component_id": secret, "hidden": True, "display_uptime": True},
                ],
            }
        },
        {
            "sub_page": {
                "name": "Europe",
                "slug": "eu",
                "items": [{"component": {"component_id": eu_api, "hidden": False, "display_uptime": True}}],
            }
        },
    ]
    response = await client.put(
        f"/v2/status_page_structures/{page['id']}", json={"items": items}, headers=Keys.header(keys.admin)
    )
    assert response.status_code == 200, response.text
    return {"page": page, "api": api, "login": login, "secret": secret, "eu_api": eu_api}


async def declare(client: Client, page_id: str, name: str, statuses: dict[str, str]) -> str:
    """Incidents come from the incidents issue's endpoints; here through the domain, then settled."""
    svc = services(client)
    now = SystemClock().now()

    async def in_app_loop() -> str:  # the test client runs the app on its own event loop
        result = await save(svc.store, incident, CommandContext(now=now, actor=Actor(type="system")))
        await svc.settle(result.last_position)
        return uuid_to_ulid(incident.id)

    incident = Incident.declare(
        id=uuid4(),
        status_page_id=page_id,
        page_components=frozenset(statuses),
        name=name,
        message="Looking into it",
        status="investigating",
        component_statuses=statuses,
        notify_subscribers=False,
        update_id=new_ulid(now),
        at=now,
        by=Actor(type="api_key", id="test", name="test"),
    )
    return await asyncio.to_thread(client.blocking_portal.call, in_app_loop)
