"""`?as_of=` on the public widget URLs and `POST /v2/as_of_links` (api/as_of.py): the past is read with a
`Bearer` key or a 15-minute link signed for one path and one instant, never with an API key in the URL,
answered `private, no-store` and never kept in the public documents' memory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from infra.clock import FakeClock, format_timestamp
from infra.settings import Settings
from tests.support.builders import T0
from tests.support.http import Keys, assert_envelope, create_page

Client = AsyncTestClient[Litestar]
WIDGET = "/acme/api/v1/summary"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=create_app(settings, clock=clock)) as client:
        yield client


async def _renamed_page(client: Client, keys: Keys, pool: asyncpg.Pool, clock: FakeClock) -> tuple[str, str]:
    """Page `acme` created as "Acme" and renamed "Acme Corp" a minute later; returns the page id and an
    instant between the two."""
    page = await create_page(client, keys, "acme")
    before = format_timestamp(await pool.fetchval("SELECT max(recorded_at) FROM beacon_events"))
    clock.advance(timedelta(minutes=1))
    response = await client.put(
        f"/v2/status_pages/{page['id']}", json={"name": "Acme Corp"}, headers=Keys.header(keys.admin)
    )
    assert response.status_code == 200, response.text
    return page["id"], before


async def _link(client: Client, keys: Keys, path: str, as_of: str) -> dict[str, Any]:
    response = await client.post(
        "/v2/as_of_links", json={"path": path, "as_of": as_of}, headers=Keys.header(keys.read)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _assert_private(response: Any, title: str) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "private, no-store"
    assert response.json()["page_title"] == title


async def test_a_bearer_key_reads_the_past_of_a_public_url(
    client: Client, keys: Keys, pool: asyncpg.Pool, clock: FakeClock
) -> None:
    page_id, before = await _renamed_page(client, keys, pool, clock)

    assert_envelope(await client.get(WIDGET, params={"as_of": before}), 401, "authentication_error")
    past = await client.get(WIDGET, params={"as_of": before, "utm_source": "x"}, headers=Keys.header(keys.read))
    _assert_private(past, "Acme")
    by_id = await client.get(
        f"/v2/status_pages/{page_id}/widget", params={"as_of": before}, headers=Keys.header(keys.read)
    )
    assert past.content == by_id.content
    # Never kept in memory: the present is unchanged for everyone.
    assert (await client.get(WIDGET)).json()["page_title"] == "Acme Corp"
    revoked = await client.get(WIDGET, params={"as_of": before}, headers=Keys.header(keys.revoked))
    assert_envelope(revoked, 401, "authentication_error")
    assert_envelope(
        await client.get(WIDGET, params={"as_of": "yesterday"}, headers=Keys.header(keys.read)), 422, "validation_error"
    )


async def test_a_minted_link_opens_one_path_at_one_instant_for_15_minutes(
    client: Client, keys: Keys, pool: asyncpg.Pool, clock: FakeClock
) -> None:
    _, before = await _renamed_page(client, keys, pool, clock)
    link = await _link(client, keys, WIDGET, before)
    assert link["url"].startswith(f"{WIDGET}?as_of=") and "&key=" in link["url"]
    assert link["expires_at"] == format_timestamp(clock.now() + timedelta(minutes=15))

    _assert_private(await client.get(link["url"]), "Acme")
    _assert_private(await client.get(link["url"] + "&utm_campaign=status"), "Acme")

    token = link["url"].split("&key=")[1]
    later = format_timestamp(clock.now())
    for url in (
        f"/other/api/v1/summary?as_of={before}&key={token}",  # another path
        f"{WIDGET}?as_of={later}&key={token}",  # another instant
        f"{WIDGET}?as_of={before}&key={token[:-2]}xx",  # forged
    ):
        assert_envelope(await client.get(url), 401, "authentication_error")

    clock.advance(timedelta(minutes=15, seconds=1))
    assert_envelope(await client.get(link["url"]), 401, "authentication_error")


async def test_an_api_key_in_a_url_is_refused(
    client: Client, keys: Keys, pool: asyncpg.Pool, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    _, before = await _renamed_page(client, keys, pool, clock)
    caplog.set_level(logging.DEBUG)
    response = await client.get(WIDGET, params={"as_of": before, "key": keys.read})
    error = assert_envelope(response, 401, "authentication_error")["errors"][0]
    assert "never goes in a URL" in error["message"]
    beacon = [record.getMessage() for record in caplog.records if record.name.startswith("beacon")]
    assert beacon and not any(keys.read in line or "as_of" in line for line in beacon)  # no query string logged


async def test_links_are_minted_for_public_paths_only(client: Client, keys: Keys) -> None:
    for path in ("acme", "https://evil.example/acme", "/acme?as_of=x"):
        response = await client.post(
            "/v2/as_of_links", json={"path": path, "as_of": "2026-01-28T10:00:00Z"}, headers=Keys.header(keys.read)
        )
        assert assert_envelope(response, 422, "validation_error")["errors"][0]["source"]["field"] == "path"
    response = await client.post("/v2/as_of_links", json={"path": "/acme", "as_of": "2026-01-28T10:00:00Z"})
    assert_envelope(response, 401, "authentication_error")


async def test_a_link_for_a_custom_domain_path_works_there(settings: Settings, keys: Keys, pool: asyncpg.Pool) -> None:
    clock = FakeClock(T0)
    async with AsyncTestClient(app=create_app(replace(settings), clock=clock)) as client:
        page_id, before = await _renamed_page(client, keys, pool, clock)
        body = {"custom_domain": "status.acme.example"}
        response = await client.put(f"/v2/status_pages/{page_id}", json=body, headers=Keys.header(keys.admin))
        assert response.status_code == 200, response.text
        link = await _link(client, keys, "/api/v1/summary", before)
        _assert_private(await client.get(link["url"], headers={"host": "status.acme.example"}), "Acme")
