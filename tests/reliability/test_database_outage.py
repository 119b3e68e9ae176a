"""Issue 6 §4: Postgres goes away under a live `beacon serve` (every connection dropped, new ones refused,
through a proxy the test controls) and comes back. Meanwhile writes and API reads answer 503 with the
envelope and `Retry-After` instead of hanging, the public widget keeps serving the last document, and once
the database is back everything works again by itself: writes, reads, projections, the widget."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support.databases import fresh_database
from tests.support.http import Keys, assert_envelope, make_keys
from tests.support.live_server import live_server
from tests.support.tcp_proxy import PostgresProxy

ANSWER_WITHIN = 5.0
"""Issue 6: no hanging request while the database is down (used as the client's timeout)."""
RECOVER_WITHIN = 10.0


def update(incident_id: str, message: str) -> dict[str, Any]:
    return {"status_page_incident_id": incident_id, "message": message, "notify_subscribers": False}


async def test_outage_answers_503_serves_the_widget_and_recovers_by_itself(
    server_url: str, template_database: str, tmp_path: Path
) -> None:
    async with fresh_database(server_url, template_database) as url:
        keys = await make_keys(url)
        proxy = PostgresProxy(url)
        proxy.start()
        try:
            with live_server(proxy.url, tmp_path) as server:
                async with httpx.AsyncClient(base_url=server.url, timeout=ANSWER_WITHIN) as http:
                    await _outage(http, keys, proxy)
        finally:
            proxy.close()


async def _outage(http: httpx.AsyncClient, keys: Keys, proxy: PostgresProxy) -> None:
    admin, publish = Keys.header(keys.admin), Keys.header(keys.publish)
    page = await http.post("/v2/status_pages", json={"name": "Outage", "slug": "outage"}, headers=admin)
    assert page.status_code == 201, page.text
    page_id = page.json()["status_page"]["id"]
    created = await http.post(
        "/v2/status_page_incidents",
        json={
            "idempotency_key": "before",
            "status_page_id": page_id,
            "name": "Database trouble",
            "message": "Looking into it",
            "incident_status": "investigating",
            "notify_subscribers": False,
        },
        headers=publish,
    )
    assert created.status_code == 201, created.text
    incident_id = created.json()["status_page_incident"]["id"]
    before = await http.get("/outage/api/v1/summary")
    assert before.status_code == 200
    assert [i["id"] for i in before.json()["ongoing_incidents"]] == [incident_id]

    proxy.cut()

    writes = [
        ("POST", "/v2/status_page_incident_updates", update(incident_id, "during the outage"), publish),
        ("PUT", f"/v2/status_page_incidents/{incident_id}", {"name": "Renamed in the dark"}, publish),
        ("POST", "/v2/status_pages", {"name": "New", "slug": f"new-{uuid.uuid4().hex[:6]}"}, admin),
    ]
    for method, path, body, headers in writes:
        started = time.monotonic()
        response = await http.request(method, path, json=body, headers=headers)  # times out if it hangs
        body_json = assert_envelope(response, 503)
        assert body_json["type"] == "api_error"
        assert response.headers["retry-after"].isdigit(), response.headers
        print(f"{method} {path} during the outage: {response.status_code} in {time.monotonic() - started:.2f}s")
    read = await http.get(f"/v2/status_page_incidents/{incident_id}", headers=publish)
    assert_envelope(read, 503)

    for _ in range(3):  # the widget keeps serving the last document, byte for byte
        during = await http.get("/outage/api/v1/summary")
        assert during.status_code == 200
        assert during.content == before.content
        assert during.headers["etag"] == before.headers["etag"]

    proxy.restore()
    restored = time.monotonic()
    acknowledged = await _first_acknowledged_update(http, incident_id, publish, restored + RECOVER_WITHIN)
    write_recovered = time.monotonic() - restored
    # Read-your-writes holds again at once: the show endpoint and the widget reflect the write.
    shown = await http.get(f"/v2/status_page_incidents/{incident_id}", headers=publish)
    assert shown.status_code == 200, shown.text
    assert shown.json()["status_page_incident"]["updates"][-1]["message"] == acknowledged
    widget = await http.get("/outage/api/v1/summary")
    assert widget.status_code == 200
    assert widget.json()["ongoing_incidents"][0]["last_update_message"] == acknowledged
    # A new page exercises every projection and the widget cache from scratch.
    slug = f"after-{uuid.uuid4().hex[:6]}"
    page = await http.post("/v2/status_pages", json={"name": "After", "slug": slug}, headers=admin)
    assert page.status_code == 201, page.text
    assert (await http.get(f"/{slug}/api/v1/summary")).status_code == 200
    listed = await http.get("/v2/status_pages", headers=admin)
    assert slug in {p["slug"] for p in listed.json()["status_pages"]}
    recovered = time.monotonic() - restored
    print(f"outage recovery: first acknowledged write {write_recovered:.2f}s, everything {recovered:.2f}s")
    assert recovered < RECOVER_WITHIN


async def _first_acknowledged_update(
    http: httpx.AsyncClient, incident_id: str, headers: dict[str, str], deadline: float
) -> str:
    """Post updates until one is acknowledged; every refusal on the way is still the 503 envelope."""
    attempt = 0
    while True:
        attempt += 1
        message = f"back after the outage (attempt {attempt})"
        response = await http.post(
            "/v2/status_page_incident_updates", json=update(incident_id, message), headers=headers
        )
        if response.status_code == 201:
            return message
        assert_envelope(response, 503)
        assert time.monotonic() < deadline, f"no write acknowledged {RECOVER_WITHIN}s after the database came back"
        await asyncio.sleep(0.1)
