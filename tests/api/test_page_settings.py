"""Page settings through HTTP (README "Page settings"): `public_site_enabled`, `time_zone`, `custom_domain` and
`automatic_maintenance_notifications` on create, show, list and the partial `PUT`; the rules that refuse a bad
zone or host name; one custom domain per page; and the canonical URL the widget's links follow, with the
public base URL recorded in the log by the process that starts with `BEACON_PUBLIC_URL`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from incident_io.models.status_pages_list_status_pages_result_v2 import StatusPagesListStatusPagesResultV2
from incident_io.models.status_pages_show_status_page_result_v2 import StatusPagesShowStatusPageResultV2
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from infra.settings import Settings
from tests.support.http import Keys, assert_envelope, create_page
from tests.support.polling import wait_until

Client = AsyncTestClient[Litestar]
DEFAULTS = {
    "public_site_enabled": True,
    "time_zone": "UTC",
    "custom_domain": None,
    "automatic_maintenance_notifications": "inherit",
}


async def _put(client: Client, keys: Keys, page_id: str, body: dict[str, Any]) -> Any:
    return await client.put(f"/v2/status_pages/{page_id}", json=body, headers=Keys.header(keys.admin))


async def _show(client: Client, keys: Keys, page_id: str) -> dict[str, Any]:
    response = await client.get(f"/v2/status_pages/{page_id}", headers=Keys.header(keys.read))
    assert response.status_code == 200, response.text
    StatusPagesShowStatusPageResultV2.from_dict(response.json())  # the SDK's model takes the extra fields
    page: dict[str, Any] = response.json()["status_page"]
    return page


def _error(response: Any, status: int, error_type: str) -> dict[str, Any]:
    error: dict[str, Any] = assert_envelope(response, status, error_type)["errors"][0]
    return error


async def test_a_new_page_has_the_default_settings_in_show_and_list(client: Client, keys: Keys) -> None:
    page = await create_page(client, keys, "acme")
    assert {key: page[key] for key in DEFAULTS} == DEFAULTS
    assert await _show(client, keys, page["id"]) == page

    listed = await client.get("/v2/status_pages", headers=Keys.header(keys.read))
    assert listed.status_code == 200
    StatusPagesListStatusPagesResultV2.from_dict(listed.json())
    assert listed.json()["status_pages"] == [page]


async def test_settings_given_on_create_and_changed_by_a_partial_put(client: Client, keys: Keys) -> None:
    page = await create_page(
        client,
        keys,
        "acme",
        public_site_enabled=False,
        time_zone="Europe/Paris",
        custom_domain="Status.Acme.Example.",
        automatic_maintenance_notifications="never",
    )
    assert {key: page[key] for key in DEFAULTS} == {
        "public_site_enabled": False,
        "time_zone": "Europe/Paris",
        "custom_domain": "status.acme.example",  # lower case, without the trailing dot
        "automatic_maintenance_notifications": "never",
    }

    response = await _put(client, keys, page["id"], {"time_zone": "America/New_York"})
    assert response.status_code == 200, response.text
    assert response.json()["status_page"] == {**page, "time_zone": "America/New_York"}

    response = await _put(
        client,
        keys,
        page["id"],
        dict.fromkeys(DEFAULTS),  # every setting null
    )
    assert response.status_code == 200, response.text
    assert response.json()["status_page"] == {**page, **DEFAULTS}
    assert await _show(client, keys, page["id"]) == {**page, **DEFAULTS}


async def test_a_show_body_with_the_settings_can_be_sent_back(client: Client, keys: Keys, pool: asyncpg.Pool) -> None:
    page = await create_page(client, keys, "acme", time_zone="Asia/Tokyo", custom_domain="status.acme.example")
    before = await pool.fetchval("SELECT count(*) FROM beacon_events")
    response = await _put(client, keys, page["id"], page)
    assert response.status_code == 200, response.text
    assert response.json()["status_page"] == page
    assert await pool.fetchval("SELECT count(*) FROM beacon_events") == before  # nothing changed


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "utc+2", "../../etc/passwd", "", "localtime"])
async def test_a_time_zone_must_be_an_iana_zone(client: Client, keys: Keys, zone: str) -> None:
    page = await create_page(client, keys, "acme")
    error = _error(await _put(client, keys, page["id"], {"time_zone": zone}), 422, "validation_error")
    assert error["source"]["field"] == "time_zone"
    assert "IANA" in error["message"]
    error = _error(
        await client.post(
            "/v2/status_pages", json={"name": "B", "slug": "b", "time_zone": zone}, headers=Keys.header(keys.admin)
        ),
        422,
        "validation_error",
    )
    assert error["source"]["field"] == "time_zone"
    assert (await _show(client, keys, page["id"]))["time_zone"] == "UTC"


async def test_an_unknown_notification_mode_is_an_invalid_enum(client: Client, keys: Keys) -> None:
    page = await create_page(client, keys, "acme")
    response = await _put(client, keys, page["id"], {"automatic_maintenance_notifications": "always"})
    error = _error(response, 422, "validation_error")
    assert error["source"]["field"] == "automatic_maintenance_notifications"


@pytest.mark.parametrize(
    "domain",
    [
        "status.acme.example:8443",  # a port
        "https://status.acme.example",  # a URL
        "203.0.113.7",  # an IP literal
        "[2001:db8::1]",
        "2001:db8::1",
        "localhost",  # a single label
        "status..acme.example",
        "-status.acme.example",
        "status_acme.example",
        "status.acme.123",
        "status.beacon.example",  # the host of BEACON_PUBLIC_URL
    ],
)
async def test_a_custom_domain_must_be_a_host_name_other_than_beacons_own(
    settings: Settings, keys: Keys, domain: str
) -> None:
    async with AsyncTestClient(app=create_app(replace(settings, public_url="https://status.beacon.example"))) as client:
        page = await create_page(client, keys, "acme")
        error = _error(await _put(client, keys, page["id"], {"custom_domain": domain}), 422, "validation_error")
        assert error["source"]["field"] == "custom_domain"
        assert (await _show(client, keys, page["id"]))["custom_domain"] is None


async def test_an_internationalised_custom_domain_is_stored_in_idna_form(client: Client, keys: Keys) -> None:
    page = await create_page(client, keys, "acme", custom_domain="Status.Bücher.example")
    assert page["custom_domain"] == "status.xn--bcher-kva.example"


async def test_a_custom_domain_belongs_to_one_page_until_it_lets_it_go(client: Client, keys: Keys) -> None:
    acme = await create_page(client, keys, "acme", custom_domain="status.shared.example")
    other = await create_page(client, keys, "other")

    for response in (
        await _put(client, keys, other["id"], {"custom_domain": "STATUS.shared.example"}),
        await client.post(
            "/v2/status_pages",
            json={"name": "Third", "slug": "third", "custom_domain": "status.shared.example"},
            headers=Keys.header(keys.admin),
        ),
    ):
        error = _error(response, 409, "conflict")
        assert error["source"]["field"] == "custom_domain"
        assert "'acme'" in error["message"]  # names the page holding it
    assert (await _show(client, keys, other["id"]))["custom_domain"] is None
    third = await client.get("/v2/status_pages", headers=Keys.header(keys.read))
    assert [p["slug"] for p in third.json()["status_pages"]] == ["acme", "other"]  # the refused create made nothing

    # Moving to another domain releases the first one, which the other page can then take.
    assert (await _put(client, keys, acme["id"], {"custom_domain": "status.acme.example"})).status_code == 200
    response = await _put(client, keys, other["id"], {"custom_domain": "status.shared.example"})
    assert response.status_code == 200, response.text
    assert response.json()["status_page"]["custom_domain"] == "status.shared.example"
    assert _error(await _put(client, keys, acme["id"], {"custom_domain": "status.shared.example"}), 409, "conflict")

    # Removing it (null) releases it too.
    assert (await _put(client, keys, other["id"], {"custom_domain": None})).status_code == 200
    assert (await _put(client, keys, acme["id"], {"custom_domain": "status.shared.example"})).status_code == 200


async def test_a_create_refused_for_its_slug_gives_its_custom_domain_back(client: Client, keys: Keys) -> None:
    await create_page(client, keys, "acme")
    response = await client.post(
        "/v2/status_pages",
        json={"name": "Acme again", "slug": "acme", "custom_domain": "status.acme.example"},
        headers=Keys.header(keys.admin),
    )
    assert _error(response, 409, "conflict")["source"]["field"] == "slug"
    page = await create_page(client, keys, "acme-2", custom_domain="status.acme.example")
    assert page["custom_domain"] == "status.acme.example"


# The canonical URL of the widget's links


@pytest.fixture
async def based(settings: Settings) -> AsyncIterator[Client]:
    """An app whose process started with `BEACON_PUBLIC_URL` set."""
    app = create_app(replace(settings, public_url="https://status.beacon.example/"))
    async with AsyncTestClient(app=app) as client:
        yield client


async def _page_url(client: Client, path: str) -> str | None:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    url: str | None = response.json()["page_url"]
    return url


async def test_the_widget_links_follow_the_canonical_url(based: Client, keys: Keys, pool: asyncpg.Pool) -> None:
    client = based
    recorded = await pool.fetch("SELECT topic, actor::text FROM beacon_events WHERE stream_type = 'public_base_url'")
    assert [(r["topic"], r["actor"]) for r in recorded] == [("beacon.PublicBaseUrl.Configured", '{"type": "system"}')]

    page = await create_page(client, keys, "acme")
    assert await _page_url(client, "/acme/api/v1/summary") == "https://status.beacon.example/acme"

    await _put(client, keys, page["id"], {"custom_domain": "status.acme.example"})
    assert await _page_url(client, "/acme/api/v1/summary") == "https://status.acme.example"

    await _put(client, keys, page["id"], {"public_url": "https://acme.example/status/"})
    assert await _page_url(client, "/acme/api/v1/summary") == "https://acme.example/status"

    await _put(client, keys, page["id"], {"public_url": None, "custom_domain": None})
    assert await _page_url(client, "/acme/api/v1/summary") == "https://status.beacon.example/acme"


async def test_a_changed_base_url_is_recorded_once_and_moves_every_pages_links(
    settings: Settings, keys: Keys, pool: asyncpg.Pool
) -> None:
    async with AsyncTestClient(app=create_app(settings)) as client:
        await create_page(client, keys, "acme")
        assert await _page_url(client, "/acme/api/v1/summary") is None  # no base URL: links are null

    async def page_url_becomes(client: Client, expected: str | None) -> None:
        # The start recorded the setting; the widget follows once its projection reaches that event.
        async def reached() -> bool:
            return await _page_url(client, "/acme/api/v1/summary") == expected

        await wait_until(reached)

    for _ in range(2):  # a restart with the same setting records nothing more
        async with AsyncTestClient(app=create_app(replace(settings, public_url="https://s.example"))) as client:
            await page_url_becomes(client, "https://s.example/acme")
    assert await pool.fetchval("SELECT count(*) FROM beacon_events WHERE stream_type = 'public_base_url'") == 1

    async with AsyncTestClient(app=create_app(settings)) as client:  # unset again: recorded as null
        await page_url_becomes(client, None)
    assert await pool.fetchval("SELECT count(*) FROM beacon_events WHERE stream_type = 'public_base_url'") == 2


async def test_as_of_renders_the_links_of_that_instant(based: Client, keys: Keys, pool: asyncpg.Pool) -> None:
    client = based
    page = await create_page(client, keys, "acme")
    before = await pool.fetchval("SELECT max(recorded_at) FROM beacon_events")
    await _put(client, keys, page["id"], {"custom_domain": "status.acme.example"})

    response = await client.get(
        f"/v2/status_pages/{page['id']}/widget", params={"as_of": before.isoformat()}, headers=Keys.header(keys.read)
    )
    assert response.status_code == 200, response.text
    assert response.json()["page_url"] == "https://status.beacon.example/acme"
    assert await _page_url(client, "/acme/api/v1/summary") == "https://status.acme.example"
