"""The public widget over HTTP: headers, conditional requests, HEAD, CORS preflights, 404s and 405s,
sub-pages, the authenticated variant, read-your-writes, and serving while the database is unreachable
(docs/architecture.md#widget)."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from infra.clock import SystemClock
from infra.ids import new_ulid
from tests.support.http import Keys, assert_envelope
from tests.support.live_server import free_port
from tests.support.widget_scene import BASE, Client, acme, declare, services


def exposed(response: Any) -> set[str]:
    """The response headers a cross-origin script may read beyond the CORS-safelisted ones."""
    names = response.headers.get("access-control-expose-headers", "").split(",")
    return {name.strip().lower() for name in names if name.strip()}


async def test_widget_document_and_headers(client: Client, keys: Keys) -> None:
    ids = await acme(client, keys)
    incident = await declare(
        client, ids["page"]["id"], "Login failing", {ids["login"]: "partial_outage", ids["secret"]: "full_outage"}
    )

    response = await client.get("/acme/api/v1/summary")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "public, max-age=10, stale-while-revalidate=30, stale-if-error=86400"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"]
    assert exposed(response) == {"etag", "x-request-id"}  # else a cross-origin script cannot read the ETag
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    document = response.json()
    assert list(document) == [
        "page_title",
        "page_url",
        "ongoing_incidents",
        "in_progress_maintenances",
        "scheduled_maintenances",
    ]
    assert document["page_title"] == "Acme" and document["page_url"] == BASE
    [shown] = document["ongoing_incidents"]
    assert shown["id"] == incident and shown["url"] == f"{BASE}/incidents/{incident}"
    assert shown["current_worst_impact"] == "partial_outage"  # the hidden full outage does not count
    assert shown["affected_components"] == [
        {"id": ids["login"], "name": "Login", "group_name": "Auth", "current_status": "partial_outage"}
    ]
    assert ids["secret"] not in response.text


async def test_if_none_match_and_head(client: Client, keys: Keys) -> None:
    await acme(client, keys)
    first = await client.get("/acme/api/v1/summary")
    etag = first.headers["etag"]

    cached = await client.get("/acme/api/v1/summary", headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["etag"] == etag
    assert cached.headers["access-control-allow-origin"] == "*" and "etag" in exposed(cached)
    other = await client.get("/acme/api/v1/summary", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.content == first.content

    head = await client.head("/acme/api/v1/summary")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == etag and head.headers["content-length"] == str(len(first.content))


async def test_cors_preflight_lets_a_script_send_if_none_match(client: Client, keys: Keys) -> None:
    """What a browser sends before `fetch(url, {headers: {"If-None-Match": etag}})` from another origin, and
    the checks it makes on the answer (Fetch standard, CORS-preflight fetch)."""
    await acme(client, keys)
    preflight = {
        "Origin": "https://app.customer.test",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "cache-control,if-none-match,pragma",
    }
    # An unknown page gets the same answer: a preflight carries no credentials and needs no lookup.
    for path in ("/acme/api/v1/summary", "/acme/eu/api/v1/summary", "/nope/api/v1/summary"):
        response = await client.options(path, headers=preflight)

        assert response.status_code == 204 and response.content == b"", path
        assert response.headers["access-control-allow-origin"] == "*"
        methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
        assert methods == {"GET", "HEAD", "OPTIONS"}
        assert response.headers["allow"] == "GET, HEAD, OPTIONS"
        allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
        assert set(preflight["Access-Control-Request-Headers"].split(",")) <= allowed
        assert response.headers["access-control-max-age"] == "86400"
        assert UUID(response.headers["x-request-id"])
        assert "content-length" not in response.headers and "content-type" not in response.headers


async def test_other_methods_on_widget_urls_are_405_envelopes(client: Client, keys: Keys) -> None:
    await acme(client, keys)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/acme/api/v1/summary", "/acme/eu/api/v1/summary", "/nope/api/v1/summary"):
            response = await client.request(method, path, json={})
            assert_envelope(response, 405, "method_not_allowed")
            assert response.json()["errors"][0]["code"] == "method_not_allowed"
            assert response.headers["allow"] == "GET, HEAD, OPTIONS"
    assert (await client.get("/acme/api/v1/summary")).status_code == 200  # nothing was changed


async def test_sub_page_document_shows_only_its_components(client: Client, keys: Keys) -> None:
    ids = await acme(client, keys)
    page_id = ids["page"]["id"]
    eu = await declare(client, page_id, "EU slow", {ids["eu_api"]: "degraded_performance"})
    await declare(client, page_id, "API down", {ids["api"]: "full_outage"})

    sub = (await client.get("/acme/eu/api/v1/summary")).json()
    main = (await client.get("/acme/api/v1/summary")).json()

    assert sub["page_title"] == "Europe" and sub["page_url"] == f"{BASE}/eu"
    assert [i["id"] for i in sub["ongoing_incidents"]] == [eu]
    assert [i["name"] for i in main["ongoing_incidents"]] == ["API down", "EU slow"]  # newest update first


async def test_unknown_page_and_disabled_widget_are_404_envelopes(client: Client, keys: Keys) -> None:
    ids = await acme(client, keys)
    for path in ("/nope/api/v1/summary", "/acme/nope/api/v1/summary"):
        assert_envelope(await client.get(path), 404, "not_found")

    response = await client.put(
        f"/v2/status_pages/{ids['page']['id']}",
        json={"name": "Acme", "public_url": BASE, "widget_api_enabled": False},
        headers=Keys.header(keys.admin),
    )
    assert response.status_code == 200, response.text

    body = assert_envelope(await client.get("/acme/api/v1/summary"), 404, "not_found")
    assert body["request_id"]
    assert_envelope(await client.get("/acme/eu/api/v1/summary"), 404, "not_found")
    authed = await client.get(f"/v2/status_pages/{ids['page']['id']}/widget", headers=Keys.header(keys.read))
    assert_envelope(authed, 404, "not_found")


async def test_authenticated_variant_returns_the_same_bytes(client: Client, keys: Keys) -> None:
    ids = await acme(client, keys)
    public = await client.get("/acme/api/v1/summary")

    authed = await client.get(f"/v2/status_pages/{ids['page']['id']}/widget", headers=Keys.header(keys.read))

    assert authed.status_code == 200
    assert authed.content == public.content and authed.headers["etag"] == public.headers["etag"]
    etag = authed.headers["etag"]
    for params in ({}, {"as_of": SystemClock().now().isoformat()}):
        conditional = await client.get(
            f"/v2/status_pages/{ids['page']['id']}/widget",
            params=params,
            headers={**Keys.header(keys.read), "If-None-Match": etag},
        )
        assert conditional.status_code == 304 and conditional.content == b"", params
        assert conditional.headers["etag"] == etag
        stale = await client.get(
            f"/v2/status_pages/{ids['page']['id']}/widget",
            params=params,
            headers={**Keys.header(keys.read), "If-None-Match": '"something-else"'},
        )
        assert stale.status_code == 200 and stale.content == public.content, params
    assert (await client.get(f"/v2/status_pages/{ids['page']['id']}/widget")).status_code == 401
    unknown = await client.get(
        f"/v2/status_pages/{new_ulid(SystemClock().now())}/widget", headers=Keys.header(keys.read)
    )
    assert_envelope(unknown, 404, "not_found")


async def test_a_write_is_visible_on_the_widget_when_it_answers(client: Client, keys: Keys) -> None:
    ids = await acme(client, keys)
    response = await client.put(
        f"/v2/status_page_components/{ids['login']}", json={"name": "Sign-in"}, headers=Keys.header(keys.admin)
    )
    assert response.status_code == 200, response.text
    await declare(client, ids["page"]["id"], "Sign-in broken", {ids["login"]: "full_outage"})

    document = msgspec.json.decode((await client.get("/acme/api/v1/summary")).content)
    assert document["ongoing_incidents"][0]["affected_components"][0]["name"] == "Sign-in"


async def test_still_served_while_the_database_is_unreachable(client: Client, keys: Keys) -> None:
    await acme(client, keys)
    before = await client.get("/acme/api/v1/summary")
    svc = services(client)
    cache = svc.public_documents

    async def cut_off() -> None:
        # Point the widget cache at a Postgres that does not exist: every read it tries now fails.
        cache.pool = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/none", min_size=0)
        try:
            await cache.refresh(full=True)
        except OSError:
            return
        raise AssertionError("the dead pool answered")

    await asyncio.to_thread(client.blocking_portal.call, cut_off)

    during = await client.get("/acme/api/v1/summary")

    assert during.status_code == 200 and during.content == before.content
    assert during.headers["etag"] == before.headers["etag"]
    assert cache.get("/acme/api/v1/summary") is not None
