"""The subscribers admin API through HTTP: create, show, list, duplicates, webhooks and their secrets,
unsubscribe, erase, scopes, and bad input that records nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from infra.api_keys import MANAGE_SUBSCRIBERS, create_key
from infra.clock import SystemClock
from infra.ids import ulid_to_uuid
from infra.settings import Settings
from tests.support.http import Client, Keys, Page, assert_envelope, setup_page

PATH = "/v2/status_page_subscribers"
PUBLIC_HOOK = "https://93.184.216.34/hooks/beacon"  # a public address literal: no DNS needed


@pytest.fixture
async def manager(database_url: str) -> dict[str, str]:
    """A key with only the subscribers scope."""
    conn = await asyncpg.connect(database_url)
    try:
        _, token = await create_key(conn, name="subscribers", scopes=(MANAGE_SUBSCRIBERS,), now=SystemClock().now())
    finally:
        await conn.close()
    return Keys.header(token)


async def events(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM beacon_events")
        return count
    finally:
        await conn.close()


async def log_mentions(database_url: str, text: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        found: int = await conn.fetchval(
            "SELECT count(*) FROM beacon_events WHERE position(convert_to($1, 'UTF8') IN state) > 0", text
        )
        return found
    finally:
        await conn.close()


async def create(client: Client, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(PATH, json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_an_email_subscriber_is_created_shown_and_listed_and_its_address_stays_out_of_the_log(
    client: Client, keys: Keys, manager: dict[str, str], database_url: str
) -> None:
    page = await setup_page(client, keys)

    created = await create(client, manager, status_page_id=page.id, channel="email", email=" Ann@Example.COM ")
    subscriber = created["status_page_subscriber"]
    assert "secret" not in created
    assert subscriber == {
        "id": subscriber["id"],
        "status_page_id": page.id,
        "channel": "email",
        "email": "ann@example.com",
        "url": None,
        "scope": "page",
        "sub_page_id": None,
        "component_ids": [],
        "state": "pending",
        "created_at": subscriber["created_at"],
    }
    shown = await client.get(f"{PATH}/{subscriber['id']}", headers=manager)
    assert shown.json() == {"status_page_subscriber": subscriber}

    second = await create(
        client,
        manager,
        status_page_id=page.id,
        channel="email",
        email="bob@example.com",
        confirmed=True,
        sub_page_id=page.eu,
        component_ids=[page.web],
    )
    listed = await client.get(PATH, params={"status_page_id": page.id}, headers=manager)
    assert [s["id"] for s in listed.json()["status_page_subscribers"]] == [
        second["status_page_subscriber"]["id"],
        subscriber["id"],
    ]
    assert second["status_page_subscriber"]["state"] == "confirmed"
    assert second["status_page_subscriber"]["scope"] == "components"
    filtered = await client.get(PATH, params={"status_page_id": page.id, "state": "pending"}, headers=manager)
    assert [s["email"] for s in filtered.json()["status_page_subscribers"]] == ["ann@example.com"]
    paged = await client.get(PATH, params={"status_page_id": page.id, "page_size": 1}, headers=manager)
    assert paged.json()["pagination_meta"] == {"page_size": 1, "after": second["status_page_subscriber"]["id"]}

    assert await log_mentions(database_url, "ann@example.com") == 0
    assert await log_mentions(database_url, "bob@example.com") == 0


async def test_a_second_live_subscriber_with_the_same_address_is_a_409_naming_the_first(
    client: Client, keys: Keys, manager: dict[str, str]
) -> None:
    page = await setup_page(client, keys)
    first = await create(client, manager, status_page_id=page.id, channel="email", email="ann@example.com")
    first_id = first["status_page_subscriber"]["id"]

    again = await client.post(
        PATH, json={"status_page_id": page.id, "channel": "email", "email": "ANN@example.com"}, headers=manager
    )
    body = assert_envelope(again, 409, "conflict")
    assert first_id in body["errors"][0]["message"]

    # Once unsubscribed, the address may subscribe again as a new subscriber.
    assert (await client.delete(f"{PATH}/{first_id}", headers=manager)).status_code == 204
    assert (await client.delete(f"{PATH}/{first_id}", headers=manager)).status_code == 204  # idempotent
    shown = await client.get(f"{PATH}/{first_id}", headers=manager)
    assert shown.json()["status_page_subscriber"]["state"] == "unsubscribed"
    renewed = await create(client, manager, status_page_id=page.id, channel="email", email="ann@example.com")
    assert renewed["status_page_subscriber"]["id"] != first_id

    # Another page is another place.
    other = await setup_page(client, keys, "other")
    await create(client, manager, status_page_id=other.id, channel="email", email="ann@example.com")


async def test_a_webhook_gets_a_secret_once_rotates_it_and_is_enabled(
    client: Client, keys: Keys, manager: dict[str, str], database_url: str
) -> None:
    page = await setup_page(client, keys)
    created = await create(client, manager, status_page_id=page.id, channel="webhook", url=PUBLIC_HOOK)
    subscriber = created["status_page_subscriber"]
    assert created["secret"].startswith("whsec_")
    assert subscriber["state"] == "active" and subscriber["url"] == PUBLIC_HOOK and subscriber["email"] is None
    shown = (await client.get(f"{PATH}/{subscriber['id']}", headers=manager)).json()
    assert "secret" not in shown

    before = SystemClock().now()
    rotated = await client.post(f"{PATH}/{subscriber['id']}/rotate_secret", headers=manager)
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != created["secret"]
    until = datetime.fromisoformat(body["previous_valid_until"])
    assert before + timedelta(hours=24) <= until <= SystemClock().now() + timedelta(hours=24)
    assert await log_mentions(database_url, "whsec_") == 0
    assert await log_mentions(database_url, "93.184.216.34") == 0

    enabled = await client.post(f"{PATH}/{subscriber['id']}/enable", headers=manager)
    assert enabled.status_code == 200 and enabled.json()["status_page_subscriber"]["state"] == "active"

    duplicate = await client.post(
        PATH, json={"status_page_id": page.id, "channel": "webhook", "url": PUBLIC_HOOK}, headers=manager
    )
    assert_envelope(duplicate, 409)

    assert (await client.delete(f"{PATH}/{subscriber['id']}", headers=manager)).status_code == 204
    assert_envelope(await client.post(f"{PATH}/{subscriber['id']}/enable", headers=manager), 409)
    assert_envelope(await client.post(f"{PATH}/{subscriber['id']}/rotate_secret", headers=manager), 409)


async def test_erasure_deletes_the_contact_and_answers_without_it(
    client: Client, keys: Keys, manager: dict[str, str], database_url: str
) -> None:
    page = await setup_page(client, keys)
    created = await create(client, manager, status_page_id=page.id, channel="email", email="ann@example.com")
    subscriber_id = created["status_page_subscriber"]["id"]

    erased = await client.post(f"{PATH}/{subscriber_id}/erase", headers=manager)
    assert erased.status_code == 200, erased.text
    view = erased.json()["status_page_subscriber"]
    assert (view["state"], view["email"], view["url"]) == ("erased", None, None)
    assert (await client.get(f"{PATH}/{subscriber_id}", headers=manager)).json()["status_page_subscriber"] == view
    assert (await client.post(f"{PATH}/{subscriber_id}/erase", headers=manager)).status_code == 200

    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM beacon_subscriber_keys") == 0
        assert await conn.fetchval("SELECT count(*) FROM beacon_subscriber_lookup") == 0
    finally:
        await conn.close()
    # The address is free again: nothing remembers it.
    await create(client, manager, status_page_id=page.id, channel="email", email="ann@example.com")


async def test_subscribers_need_their_scope_even_to_read(client: Client, keys: Keys, manager: dict[str, str]) -> None:
    page = await setup_page(client, keys)
    for token in (keys.read, keys.publish):
        listed = await client.get(PATH, params={"status_page_id": page.id}, headers=Keys.header(token))
        assert_envelope(listed, 403)
        made = await client.post(
            PATH,
            json={"status_page_id": page.id, "channel": "email", "email": "a@example.com"},
            headers=Keys.header(token),
        )
        assert_envelope(made, 403)
    assert (
        await client.get(PATH, params={"status_page_id": page.id}, headers=Keys.header(keys.admin))
    ).status_code == 200
    assert_envelope(await client.get(PATH, headers=manager), 422)
    assert_envelope(
        await client.get(PATH, params={"status_page_id": "01KFZ0000000000000000NONE0"}, headers=manager), 404
    )
    assert_envelope(await client.get(PATH, params={"status_page_id": "\x00not-an-id"}, headers=manager), 404)
    assert_envelope(await client.get(f"{PATH}/nope", headers=manager), 404)
    assert_envelope(await client.get(f"{PATH}/01KFZ0000000000000000NONE0", headers=manager), 404)


def bad_bodies(page: Page, other: Page) -> list[tuple[dict[str, Any], str]]:
    email = {"status_page_id": page.id, "channel": "email", "email": "ann@example.com"}
    hook = {"status_page_id": page.id, "channel": "webhook", "url": PUBLIC_HOOK}
    return [
        ({**email, "email": "not-an-address"}, "email"),
        ({**email, "email": None}, "email"),
        ({**email, "channel": "sms"}, "channel"),
        ({**email, "status_page_id": "01KFZ0000000000000000NONE0"}, "status_page_id"),
        ({**email, "component_ids": ["01KFZ0000000000000000NONE0"]}, "component_ids[0]"),
        ({**email, "component_ids": [other.api]}, "component_ids[0]"),
        ({**email, "sub_page_id": other.eu}, "sub_page_id"),
        ({**email, "sub_page_id": page.eu, "component_ids": [page.api]}, "component_ids[0]"),
        ({**email, "url": PUBLIC_HOOK}, "url"),
        ({**hook, "url": None}, "url"),
        ({**hook, "url": "http://93.184.216.34/hook"}, "url"),
        ({**hook, "url": "https://127.0.0.1/hook"}, "url"),
        ({**hook, "url": "https://localhost:8443/hook"}, "url"),
        ({**hook, "url": "https://169.254.169.254/latest"}, "url"),
        ({**hook, "url": "https://10.1.2.3/hook"}, "url"),
        ({**hook, "confirmed": True}, "confirmed"),
        ({**email, "extra": 1}, "extra"),
    ]


async def test_bad_input_is_a_clear_422_and_records_nothing(
    client: Client, keys: Keys, manager: dict[str, str], database_url: str
) -> None:
    page = await setup_page(client, keys)
    other = await setup_page(client, keys, "other")
    before = await events(database_url)

    for body, field in bad_bodies(page, other):
        response = await client.post(PATH, json=body, headers=manager)
        error = assert_envelope(response, 422)["errors"][0]
        assert error["source"]["field"] == field, (body, error)

    assert await events(database_url) == before
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM beacon_subscriber_lookup") == 0
    finally:
        await conn.close()


async def test_a_restored_backup_forgets_erased_subscribers_again_when_beacon_starts(
    client: Client, keys: Keys, manager: dict[str, str], database_url: str, settings: Settings
) -> None:
    page = await setup_page(client, keys)
    created = await create(client, manager, status_page_id=page.id, channel="email", email="ann@example.com")
    kept = await create(client, manager, status_page_id=page.id, channel="email", email="bob@example.com")
    erased_id = ulid_to_uuid(created["status_page_subscriber"]["id"])
    conn = await asyncpg.connect(database_url)
    try:
        backup = await conn.fetchrow("SELECT * FROM beacon_subscriber_keys WHERE subscriber_id = $1", erased_id)
        lookup = await conn.fetchrow("SELECT * FROM beacon_subscriber_lookup WHERE subscriber_id = $1", erased_id)
        assert (
            await client.post(f"{PATH}/{created['status_page_subscriber']['id']}/erase", headers=manager)
        ).is_success
        # A backup taken before the erasure is restored: the key and lookup rows are back.
        await conn.execute(
            "INSERT INTO beacon_subscriber_keys VALUES ($1, $2, $3)", erased_id, backup["key"], backup["contact"]
        )
        await conn.execute("INSERT INTO beacon_subscriber_lookup VALUES ($1, $2, $3, $4)", *lookup.values())
        async with AsyncTestClient(app=create_app(settings)):
            pass  # a process starts
        remaining = await conn.fetch("SELECT subscriber_id FROM beacon_subscriber_keys")
        assert [row["subscriber_id"] for row in remaining] == [ulid_to_uuid(kept["status_page_subscriber"]["id"])]
        assert (
            await conn.fetchval("SELECT count(*) FROM beacon_subscriber_lookup WHERE subscriber_id = $1", erased_id)
            == 0
        )
    finally:
        await conn.close()
