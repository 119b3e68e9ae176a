"""The public site over HTTP (docs/architecture.md#public-site): the Statuspage JSON and the feeds as a
client reads them, the cache headers, 304, HEAD, CORS, stray query parameters, HTML errors for browsers,
the 301 of a window's incident URL, documents read on demand through the LRU, and hot documents served
while the database is unreachable."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import feedparser

from api.public_site import SiteSource
from infra.clock import format_timestamp
from projections.public_site_render import JSON_DOCUMENTS
from tests.support.http import Keys, assert_envelope, post_incident_update
from tests.support.live_server import free_port
from tests.support.polling import wait_until
from tests.support.widget_scene import Client, acme, declare, services

CACHE_CONTROL = "public, max-age=30, stale-while-revalidate=60, stale-if-error=86400"


def site(client: Client) -> SiteSource:
    cache = services(client).public_documents
    [source] = [s for s in cache.sources.values() if isinstance(s, SiteSource)]
    return source


async def caught_up(client: Client) -> None:
    """The public site is rendered in a pass of its own: wait until this process serves the log's head."""
    svc = services(client)
    cache = svc.public_documents

    async def check() -> bool:
        head = await svc.pool.fetchval("SELECT coalesce(max(notification_id), 0) FROM beacon_events")
        return bool(cache.positions["public_site"] >= head)

    async def in_app_loop() -> None:
        await wait_until(check)

    await asyncio.to_thread(client.blocking_portal.call, in_app_loop)


async def get(client: Client, path: str, **headers: str) -> Any:
    return await client.get(path, headers=headers)


async def test_statuspage_json_feeds_and_headers(client: Client, keys: Keys) -> None:
    ids = await acme(client, keys)
    incident = await declare(client, ids["page"]["id"], "Login failing", {ids["login"]: "partial_outage"})
    await caught_up(client)

    summary = await get(client, "/acme/api/v2/summary.json")
    assert summary.status_code == 200, summary.text
    assert summary.headers["content-type"] == "application/json"
    assert summary.headers["cache-control"] == CACHE_CONTROL
    assert summary.headers["access-control-allow-origin"] == "*"
    body = summary.json()
    assert list(body) == ["page", "components", "incidents", "scheduled_maintenances", "status"]
    assert body["status"] == {"indicator": "major", "description": "Partial System Outage"}
    assert [i["id"] for i in body["incidents"]] == [incident]
    assert ids["secret"] not in summary.text
    for name in JSON_DOCUMENTS:
        response = await get(client, f"/acme/api/v2/{name}.json")
        assert response.status_code == 200, name
        assert response.json()["page"]["id"] == ids["page"]["id"]
    sub = (await get(client, "/acme/eu/api/v2/summary.json")).json()
    assert sub["page"]["name"] == "Acme — Europe" and sub["incidents"] == []

    for feed in ("history.atom", "history.rss", "feed.atom", "feed.rss"):
        response = await get(client, f"/acme/{feed}")
        assert response.status_code == 200 and response.headers["access-control-allow-origin"] == "*"
        parsed = feedparser.parse(response.content)
        assert parsed.bozo == 0, feed
        assert [entry.id for entry in parsed.entries] == [f"urn:beacon:incident:{incident}"]
    assert (await get(client, "/acme/feed.rss")).content == (await get(client, "/acme/history.rss")).content

    index = await get(client, "/acme")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert "access-control-allow-origin" not in index.headers
    notice = await get(client, f"/acme/incidents/{incident}")
    assert notice.status_code == 200 and b"Login failing" in notice.content


async def test_conditional_head_and_stray_query(client: Client, keys: Keys) -> None:
    await acme(client, keys)
    await caught_up(client)
    for path in ("/acme", "/acme/api/v2/summary.json", "/acme/history.atom"):
        first = await get(client, path)
        etag = first.headers["etag"]
        assert (await get(client, path, **{"If-None-Match": etag})).status_code == 304
        head = await client.head(path)
        assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag
        stray = await client.get(path + "?utm_source=mail&_=12345")
        assert stray.content == first.content and stray.headers["etag"] == etag


async def test_browser_errors_are_html_and_clients_get_envelopes(client: Client, keys: Keys) -> None:
    await acme(client, keys)
    await caught_up(client)
    browser = await get(client, "/nope", Accept="text/html,application/xhtml+xml,*/*;q=0.8")
    assert browser.status_code == 404 and browser.headers["content-type"].startswith("text/html")
    script = await get(client, "/nope/api/v2/summary.json", Accept="application/json")
    assert script.status_code == 404 and script.json()["status"] == 404
    assert (await client.post("/acme/api/v2/summary.json", json={})).status_code == 405
    assert (await get(client, "/healthz")).status_code == 200  # not the site's


async def test_cold_documents_come_through_the_lru_and_a_window_incident_url_redirects(
    client: Client, keys: Keys
) -> None:
    ids = await acme(client, keys)
    incident = await declare(client, ids["page"]["id"], "Blip", {ids["api"]: "degraded_performance"})
    response = await post_incident_update(client, keys, incident, message="Fixed", incident_status="resolved")
    assert response.status_code == 201, response.text
    await caught_up(client)
    source = site(client)
    path = f"/acme/incidents/{incident}"
    assert services(client).public_documents.get(path) is None  # a past notice is not held in memory

    first = await get(client, path)
    assert first.status_code == 200 and b"Blip" in first.content
    assert path in source.cold
    again = await get(client, path, **{"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    history = await get(client, "/acme/history")
    assert history.status_code == 200

    for slashed, target in (("/acme/", "/acme"), ("/acme/eu/", "/acme/eu"), ("/acme/history/", "/acme/history")):
        moved = await client.get(slashed, follow_redirects=False)
        assert moved.status_code == 301 and moved.headers["location"] == target, slashed
        assert (await client.get(slashed)).content == (await get(client, target)).content
    assert (await client.get("/nope/", follow_redirects=False)).status_code == 301  # then the 404 of /nope


async def test_hot_documents_are_served_while_the_database_is_unreachable(client: Client, keys: Keys) -> None:
    await acme(client, keys)
    await caught_up(client)
    before = await get(client, "/acme/api/v2/summary.json")
    cache = services(client).public_documents

    async def cut_off() -> None:
        cache.pool = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/none", min_size=0)

    await asyncio.to_thread(client.blocking_portal.call, cut_off)

    during = await get(client, "/acme/api/v2/summary.json")
    assert during.status_code == 200 and during.content == before.content
    assert (await get(client, "/acme")).status_code == 200
    cold = await get(client, "/acme/history", Accept="text/html")
    assert cold.status_code == 503 and cold.headers["content-type"].startswith("text/html")
    assert (await get(client, "/acme/history/2020-01")).json()["status"] == 503


async def test_feed_entry_ids_survive_an_edit(client: Client, keys: Keys) -> None:
    ids = await acme(client, keys)
    incident = await declare(client, ids["page"]["id"], "Login failing", {ids["login"]: "partial_outage"})
    await caught_up(client)
    before = {
        feed: feedparser.parse((await get(client, f"/acme/{feed}")).content) for feed in ("history.atom", "history.rss")
    }

    response = await client.put(
        f"/v2/status_page_incidents/{incident}", json={"name": "Sign-in failing"}, headers=Keys.header(keys.publish)
    )
    assert response.status_code == 200, response.text
    await caught_up(client)

    for feed, parsed in before.items():
        after = feedparser.parse((await get(client, f"/acme/{feed}")).content)
        assert after.bozo == 0 and parsed.bozo == 0
        assert [e.id for e in after.entries] == [e.id for e in parsed.entries] == [f"urn:beacon:incident:{incident}"]
        assert after.entries[0].title == "Sign-in failing" and parsed.entries[0].title == "Login failing"


async def test_page_settings_shape_the_site(client: Client, keys: Keys) -> None:
    """A custom domain serves the page at its root with links on it; the time zone names the page's zone;
    `public_site_enabled: false` removes every document."""
    ids = await acme(client, keys)
    page_id = ids["page"]["id"]
    response = await client.put(
        f"/v2/status_pages/{page_id}",
        json={"custom_domain": "status.acme.example", "time_zone": "Europe/Paris", "public_url": None},
        headers=Keys.header(keys.admin),
    )
    assert response.status_code == 200, response.text
    await caught_up(client)

    on_domain = await get(client, "/api/v2/summary.json", Host="status.acme.example")
    assert on_domain.status_code == 200, on_domain.text
    page = on_domain.json()["page"]
    assert page["url"] == "https://status.acme.example" and page["time_zone"] == "Europe/Paris"
    index = await get(client, "/", Host="status.acme.example")
    assert index.status_code == 200 and b'href="https://status.acme.example/history"' in index.content
    assert index.content == (await get(client, "/acme")).content

    response = await client.put(
        f"/v2/status_pages/{page_id}", json={"public_site_enabled": False}, headers=Keys.header(keys.admin)
    )
    assert response.status_code == 200, response.text
    await caught_up(client)
    for path in ("/acme", "/acme/api/v2/summary.json", "/acme/history.atom", "/acme/eu"):
        assert (await get(client, path)).status_code == 404, path


async def test_gzip_for_clients_that_accept_it(client: Client, keys: Keys) -> None:
    """Large documents are held gzipped: a client accepting gzip gets those bytes with their own ETag, any
    other the same document inflated, each with 304s on its own ETag."""
    await acme(client, keys)
    await caught_up(client)
    raw = await client.get("/acme", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and raw.headers["vary"] == "Accept-Encoding"
    zipped = await client.get("/acme", headers={"Accept-Encoding": "gzip, deflate"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == raw.content  # httpx inflates it
    assert int(zipped.headers["content-length"]) < len(raw.content) / 3
    assert zipped.headers["etag"] != raw.headers["etag"]
    for response, encoding in ((raw, "identity"), (zipped, "gzip")):
        again = await client.get(
            "/acme", headers={"Accept-Encoding": encoding, "If-None-Match": response.headers["etag"]}
        )
        assert again.status_code == 304
    refused = await client.get("/acme", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers and refused.content == raw.content


async def test_the_public_site_as_of_an_instant(client: Client, keys: Keys, pool: asyncpg.Pool) -> None:
    """`?as_of=` with a `Bearer` key or a minted link: the page as it was, from the same renderer,
    `private, no-store`, never from memory (api/controllers/public_site_as_of.py)."""
    ids = await acme(client, keys)
    before = format_timestamp(await pool.fetchval("SELECT max(recorded_at) FROM beacon_events"))
    response = await client.put(
        f"/v2/status_pages/{ids['page']['id']}", json={"name": "Acme Corp"}, headers=Keys.header(keys.admin)
    )
    assert response.status_code == 200, response.text
    await caught_up(client)
    status = "/acme/api/v2/status.json"
    assert (await get(client, status)).json()["page"]["name"] == "Acme Corp"

    assert_envelope(await client.get(status, params={"as_of": before}), 401, "authentication_error")
    past = await client.get(status, params={"as_of": before}, headers=Keys.header(keys.read))
    assert past.status_code == 200, past.text
    assert past.headers["cache-control"] == "private, no-store" and past.json()["page"]["name"] == "Acme"

    minted = await client.post(
        "/v2/as_of_links", json={"path": "/acme", "as_of": before}, headers=Keys.header(keys.read)
    )
    assert minted.status_code == 201, minted.text
    index = await client.get(minted.json()["url"])
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert b"Acme Corp" not in index.content and b"Acme" in index.content
    atom = await client.get("/acme/eu/history.atom", params={"as_of": before}, headers=Keys.header(keys.read))
    assert atom.status_code == 200 and "Acme — Europe status history" in atom.text
    missing = await client.get("/acme/history/1999-01", params={"as_of": before}, headers=Keys.header(keys.read))
    assert_envelope(missing, 404, "not_found")
    assert (await get(client, status)).json()["page"]["name"] == "Acme Corp"  # the present is unchanged
