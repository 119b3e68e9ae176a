"""Custom domains over HTTP (docs/architecture.md#canonical-urls-and-custom-domains): a request whose host is a
page's custom domain gets that page's public routes at the root (its widget, its sub-pages, its public site)
plus `/healthz` and `/readyz`; every other path there is a 404; the host is matched whatever its case, port
or trailing dot, and `X-Forwarded-Host` counts only from a trusted proxy."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.services import Services
from infra.settings import Settings
from tests.support.http import Keys, assert_envelope, setup_page
from tests.support.live_server import create_key, live_server
from tests.support.polling import wait_until

Client = AsyncTestClient[Litestar]
DOMAIN = "status.acme.example"
PROXY = "10.0.0.5"


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    async with AsyncTestClient(app=create_app(replace(settings, trusted_proxies=trusted))) as client:
        yield client


def _services(client: Client) -> Services:
    app = client.app
    assert isinstance(app, Litestar)
    services: Services = app.state.services
    return services


async def _on(client: Client, path: str, host: str = DOMAIN, headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.get(path, headers={"host": host, **(headers or {})})


async def _site_caught_up(client: Client) -> None:
    """The public site is rendered in a pass of its own (writes do not wait for it)."""
    svc = _services(client)

    async def check() -> bool:
        head = await svc.pool.fetchval("SELECT coalesce(max(notification_id), 0) FROM beacon_events")
        return bool(svc.public_documents.positions.get("public_site", head) >= head)

    async def in_app_loop() -> None:
        await wait_until(check)

    await asyncio.to_thread(client.blocking_portal.call, in_app_loop)


async def _with_domain(client: Client, keys: Keys) -> Any:
    page = await setup_page(client, keys, "acme")
    response = await client.put(
        f"/v2/status_pages/{page.id}", json={"custom_domain": DOMAIN}, headers=Keys.header(keys.admin)
    )
    assert response.status_code == 200, response.text
    return page


async def test_the_pages_public_routes_answer_at_the_domains_root(client: Client, keys: Keys) -> None:
    await _with_domain(client, keys)
    await setup_page(client, keys, "other")

    own = await client.get("/acme/api/v1/summary")
    on_domain = await _on(client, "/api/v1/summary")
    assert on_domain.status_code == 200, on_domain.text
    assert (on_domain.content, on_domain.headers["etag"]) == (own.content, own.headers["etag"])
    assert on_domain.json()["page_url"] == f"https://{DOMAIN}"
    sub = await _on(client, "/eu/api/v1/summary")
    assert sub.status_code == 200 and sub.json()["page_url"] == f"https://{DOMAIN}/eu"
    assert (await _on(client, "/api/v1/summary", headers={"if-none-match": own.headers["etag"]})).status_code == 304

    for host in ("Status.ACME.example", f"{DOMAIN}:8443", f"{DOMAIN}.", f"{DOMAIN.upper()}.:443"):
        assert (await _on(client, "/api/v1/summary", host=host)).content == own.content, host

    await _site_caught_up(client)
    for path in ("/", "/api/v2/summary.json", "/history.atom", "/eu", "/eu/api/v2/status.json"):
        own_document = await client.get("/acme" + ("" if path == "/" else path))
        assert own_document.status_code == 200, path
        response = await _on(client, path)
        assert response.status_code == 200, (path, response.text[:200])
        assert response.content == own_document.content, path


async def test_everything_else_on_the_domain_is_a_404_but_health(client: Client, keys: Keys) -> None:
    await _with_domain(client, keys)
    await setup_page(client, keys, "other")

    assert (await _on(client, "/healthz")).status_code == 200
    assert (await _on(client, "/readyz")).status_code == 200
    for path in ("/v2/status_pages", "/metrics", "/schema/openapi.json", "/other/api/v1/summary", "/acme"):
        response = await _on(client, path, headers=Keys.header(keys.admin))
        assert response.status_code == 404, (path, response.status_code, response.text[:200])
    # Beacon's own host is unchanged.
    assert (await client.get("/v2/status_pages", headers=Keys.header(keys.read))).status_code == 200
    assert (await client.get("/other/api/v1/summary")).status_code == 200


async def test_a_removed_domain_is_no_alias_any_more(client: Client, keys: Keys) -> None:
    page = await _with_domain(client, keys)
    assert (await _on(client, "/api/v1/summary")).status_code == 200
    response = await client.put(
        f"/v2/status_pages/{page.id}", json={"custom_domain": None}, headers=Keys.header(keys.admin)
    )
    assert response.status_code == 200, response.text
    # Read-your-writes: the PUT answered once this process no longer routes the domain to the page.
    assert_envelope(await _on(client, "/api/v1/summary"), 404, "not_found")
    assert (await _on(client, "/acme/api/v1/summary")).status_code == 200


async def test_x_forwarded_host_counts_only_from_a_trusted_proxy(client: Client, keys: Keys) -> None:
    await _with_domain(client, keys)
    app = client.app

    async def get(peer: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://beacon.internal") as direct:
            return await direct.get("/api/v1/summary", headers={"x-forwarded-host": f"{DOMAIN}:443"})

    async def in_app_loop() -> tuple[httpx.Response, httpx.Response]:
        return await get(PROXY), await get("203.0.113.9")

    trusted, forged = await asyncio.to_thread(client.blocking_portal.call, in_app_loop)
    assert trusted.status_code == 200 and trusted.json()["page_url"] == f"https://{DOMAIN}"
    assert forged.status_code == 404  # the Host (beacon.internal) counts: no page's widget at /api/v1/summary


def test_beacon_serve_records_its_public_url_and_routes_a_custom_domain(database_url: str, tmp_path: Path) -> None:
    """Through `beacon serve` (granian, real HTTP; its worker process records the setting as it starts): the
    recorded base URL in the widget's links, then the page on its domain with a port in `Host`, and through a
    trusted proxy's `X-Forwarded-Host` (the peer is 127.0.0.1)."""
    token = create_key(database_url, "operator", "admin")
    env = {"BEACON_PUBLIC_URL": "https://status.beacon.example", "BEACON_TRUSTED_PROXIES": "127.0.0.1/32"}
    with live_server(database_url, tmp_path, extra_env=env) as server:
        with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}) as http:
            page = http.post("/v2/status_pages", json={"name": "Acme", "slug": "acme"})
            assert page.status_code == 201, page.text

            def summary(**headers: str) -> httpx.Response:
                return http.get("/api/v1/summary", headers=headers)

            def page_url() -> Any:
                return http.get("/acme/api/v1/summary").json()["page_url"]

            asyncio.run(wait_until(lambda: page_url() == "https://status.beacon.example/acme"))
            put = http.put(f"/v2/status_pages/{page.json()['status_page']['id']}", json={"custom_domain": DOMAIN})
            assert put.status_code == 200, put.text

            def routed(response: httpx.Response) -> bool:
                return response.status_code == 200 and response.json()["page_url"] == f"https://{DOMAIN}"

            asyncio.run(wait_until(lambda: routed(summary(host=f"{DOMAIN}:8080"))))  # another process may lag
            assert routed(summary(**{"x-forwarded-host": DOMAIN}))
            assert http.get("/v2/status_pages", headers={"host": DOMAIN}).status_code == 404
            assert http.get("/healthz", headers={"host": DOMAIN}).status_code == 200


async def test_public_site_enabled_gates_the_site_but_not_the_widget(client: Client, keys: Keys) -> None:
    page = await _with_domain(client, keys)
    response = await client.put(
        f"/v2/status_pages/{page.id}", json={"public_site_enabled": False}, headers=Keys.header(keys.admin)
    )
    assert response.status_code == 200, response.text
    await _site_caught_up(client)

    for path in ("/acme", "/acme/api/v2/summary.json", "/acme/history.atom"):
        assert (await client.get(path)).status_code == 404, path
    assert (await _on(client, "/")).status_code == 404
    assert (await client.get("/acme/api/v1/summary")).status_code == 200  # widget_api_enabled governs it
    assert (await _on(client, "/api/v1/summary")).status_code == 200
