"""Public subscription requests through HTTP, as a browser, a script and a mail client send them: subscribe
(JSON, forms), no enumeration, the per-client rate limit, the links in mails (confirm once, manage,
one-click unsubscribe), HTML or JSON answers, and bad input that records nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from infra.clock import SystemClock
from infra.ids import ulid_to_uuid
from infra.tokens import sign
from tests.support.http import Client, Keys, Page, assert_envelope, setup_page
from tests.support.live_server import TEST_SECRET_KEY

SECRET = TEST_SECRET_KEY.encode()
FORM = {"content-type": "application/x-www-form-urlencoded"}


async def query(database_url: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def event_count(database_url: str) -> int:
    rows = await query(database_url, "SELECT count(*) AS n FROM beacon_events")
    return int(rows[0]["n"])


async def subscribers(database_url: str) -> list[dict[str, Any]]:
    """The subscribers the read model holds, newest last."""
    rows = await query(
        database_url,
        "SELECT id, state, sub_page_id, component_ids FROM subscriber_list ORDER BY id",
    )
    return [dict(row) for row in rows]


async def subscribe(client: Client, path: str = "/acme/subscriptions", **body: Any) -> Any:
    return await client.post(path, json=body)


@pytest.fixture
async def page(client: Client, keys: Keys) -> Page:
    return await setup_page(client, keys)


async def test_subscribing_records_a_pending_subscriber_as_the_public_and_never_tells_whether_it_was_known(
    client: Client, page: Page, database_url: str
) -> None:
    first = await subscribe(client, email="Ann@Example.com")
    assert first.status_code == 202, first.text
    assert first.headers["content-type"].startswith("application/json")
    assert "inbox" in first.json()["message"]
    [made] = await subscribers(database_url)
    assert (made["state"], made["sub_page_id"], made["component_ids"]) == ("pending", None, [])
    actors = await query(
        database_url,
        "SELECT convert_from(state, 'UTF8') AS body FROM beacon_events WHERE topic = 'beacon.Subscriber.Created'",
    )
    assert '"by":{"type":"public"}' in actors[0]["body"].replace(" ", "")
    assert "ann@example.com" not in actors[0]["body"]

    # The same address again, within the hour: the same answer, and nothing recorded (no second mail).
    before = await event_count(database_url)
    again = await subscribe(client, email="ann@example.com")
    assert (again.status_code, again.json()) == (202, first.json())
    assert await event_count(database_url) == before


async def test_the_public_form_subscribes_to_components_and_sub_pages_with_html_answers(
    client: Client, page: Page, database_url: str
) -> None:
    response = await client.post(
        "/acme/subscriptions",
        content=f"email=ann%40example.com&component_ids={page.api}&component_ids={page.db}&ignored=1",
        headers=FORM,
    )
    assert response.status_code == 202
    assert response.headers["content-type"].startswith("text/html")
    assert "Check your inbox" in response.text
    multipart = await client.post("/acme/eu/subscriptions", files={"email": (None, "bob@example.com")})
    assert multipart.status_code == 202 and multipart.headers["content-type"].startswith("text/html")
    browser = await client.post(
        "/acme/subscriptions", json={"email": "cy@example.com"}, headers={"accept": "text/html,*/*;q=0.8"}
    )
    assert browser.status_code == 202 and browser.headers["content-type"].startswith("text/html")

    made = await subscribers(database_url)
    assert [(s["sub_page_id"], s["component_ids"]) for s in made] == [
        (None, [page.api, page.db]),
        (page.eu, []),
        (None, []),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({}, "email"),
        ({"email": "ann@example.com", "component_ids": ["01KFZ0000000000000000NONE0"]}, "component_ids[0]"),
        ({"email": "ann@example.com", "component_ids": "OTHER"}, "component_ids[0]"),
    ],
)
async def test_bad_input_is_a_clear_error_and_records_nothing(
    client: Client, keys: Keys, page: Page, database_url: str, body: dict[str, Any], field: str
) -> None:
    other = await setup_page(client, keys, "other")
    if body.get("component_ids") == "OTHER":
        body = {**body, "component_ids": [other.api]}
    before = await event_count(database_url)
    error = assert_envelope(await subscribe(client, **body), 422)["errors"][0]
    assert error["source"]["field"] == field
    as_form = await client.post("/acme/subscriptions", content="email=nope", headers=FORM)
    assert as_form.status_code == 422 and as_form.headers["content-type"].startswith("text/html")
    assert "single email address" in as_form.text
    assert_envelope(await subscribe(client, "/nowhere/subscriptions", email="ann@example.com"), 404)
    assert_envelope(await subscribe(client, "/acme/nowhere/subscriptions", email="ann@example.com"), 404)
    assert (await client.post("/nowhere/subscriptions", content="email=a%40b.co", headers=FORM)).status_code == 404
    assert_envelope(
        await client.post("/acme/subscriptions", content=b"[1]", headers={"content-type": "application/json"}), 422
    )
    assert_envelope(
        await client.post("/acme/subscriptions", content=b"{", headers={"content-type": "application/json"}), 400
    )
    assert_envelope(await client.post("/acme/subscriptions", content=b"x", headers={"content-type": "text/plain"}), 415)
    assert await event_count(database_url) == before


async def test_a_client_gets_ten_subscribe_requests_a_minute(client: Client, page: Page) -> None:
    for n in range(10):
        assert (await subscribe(client, email=f"n{n}@example.com")).status_code == 202
    refused = await subscribe(client, email="eleven@example.com")
    body = assert_envelope(refused, 429, "too_many_requests")
    assert body["rate_limit"]["name"] == "client_address"
    assert int(refused.headers["retry-after"]) >= 1
    as_form = await client.post("/acme/subscriptions", content="email=x%40example.com", headers=FORM)
    assert as_form.status_code == 429 and as_form.headers["content-type"].startswith("text/html")
    assert "retry-after" in as_form.headers
    # Clients behind an untrusted proxy do not get a bucket each by forging X-Forwarded-For.
    forged = await client.post(
        "/acme/subscriptions", json={"email": "y@example.com"}, headers={"x-forwarded-for": "198.51.100.7"}
    )
    assert forged.status_code == 429


async def pending_id(client: Client, database_url: str, email: str = "ann@example.com") -> UUID:
    assert (await subscribe(client, email=email)).status_code == 202
    return ulid_to_uuid((await subscribers(database_url))[-1]["id"])


async def test_a_confirmation_link_shows_a_button_and_confirms_once(
    client: Client, keys: Keys, page: Page, database_url: str
) -> None:
    subscriber = await pending_id(client, database_url)
    token = sign(SECRET, "confirm", subscriber, SystemClock().now() + timedelta(days=7))

    shown = await client.get("/acme/subscriptions/confirm", params={"token": token, "utm_source": "mail"})
    assert shown.status_code == 200 and shown.headers["content-type"].startswith("text/html")
    assert 'method="post"' in shown.text and token in shown.text
    assert (await subscribers(database_url))[-1]["state"] == "pending"  # a GET changes nothing

    confirmed = await client.post("/acme/subscriptions/confirm", params={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["subscription"]["state"] == "confirmed"
    assert (await subscribers(database_url))[-1]["state"] == "confirmed"

    reused = await client.post("/acme/subscriptions/confirm", params={"token": token})
    assert assert_envelope(reused, 409)["errors"][0]["code"] == "token_used"
    # The button on the page posts the token as a form field.
    by_form = await client.post("/acme/subscriptions/confirm", content=f"token={token}", headers=FORM)
    assert by_form.status_code == 409 and by_form.headers["content-type"].startswith("text/html")


async def test_expired_forged_and_misdirected_links_are_refused(
    client: Client, keys: Keys, page: Page, database_url: str
) -> None:
    await setup_page(client, keys, "other")
    subscriber = await pending_id(client, database_url)
    before = await event_count(database_url)
    expired = sign(SECRET, "confirm", subscriber, SystemClock().now() - timedelta(seconds=1))
    cases = [
        ("/acme/subscriptions/confirm", expired, "expired_token"),
        ("/acme/subscriptions/confirm", sign(b"another-secret" * 3, "confirm", subscriber, None), "invalid_token"),
        ("/acme/subscriptions/confirm", sign(SECRET, "unsubscribe", subscriber, None), "invalid_token"),
        ("/other/subscriptions/confirm", sign(SECRET, "confirm", subscriber, None), "invalid_token"),
        ("/acme/subscriptions/unsubscribe", "garbage", "invalid_token"),
        ("/acme/subscriptions/manage", "", "invalid_token"),
    ]
    for path, token, code in cases:
        response = await client.post(path, params={"token": token})
        assert assert_envelope(response, 422)["errors"][0]["code"] == code, (path, response.text)
        shown = await client.get(path, params={"token": token})
        assert shown.status_code == 422 and 'method="post"' not in shown.text
    assert await event_count(database_url) == before


async def test_one_click_unsubscribe_needs_no_cookie_never_redirects_and_is_idempotent(
    client: Client, keys: Keys, page: Page, database_url: str
) -> None:
    subscriber = await pending_id(client, database_url)
    token = sign(SECRET, "unsubscribe", subscriber, None)
    path = f"/acme/subscriptions/unsubscribe?token={token}"

    for _ in range(2):
        response = await client.post(path, content="List-Unsubscribe=One-Click", headers=FORM)
        assert response.status_code == 200, response.text
        assert "location" not in response.headers and "set-cookie" not in response.headers
    assert (await subscribers(database_url))[-1]["state"] == "unsubscribed"

    # After erasure the link still answers 200 "unsubscribed".
    manager_erase = await client.post(
        f"/v2/status_page_subscribers/{(await subscribers(database_url))[-1]['id']}/erase",
        headers=Keys.header(keys.admin),
    )
    assert manager_erase.status_code == 200
    after = await client.post(path, content="List-Unsubscribe=One-Click", headers=FORM)
    assert after.status_code == 200 and "Unsubscribed" in after.text
    json_after = await client.post(path)
    assert json_after.status_code == 200 and json_after.json()["subscription"]["state"] == "erased"
    # A link to a subscriber this database never had: nothing to stop, still 200.
    unknown = sign(SECRET, "unsubscribe", UUID(int=42), None)
    assert (await client.post(f"/acme/subscriptions/unsubscribe?token={unknown}")).status_code == 200


async def test_the_manage_link_shows_the_subscription_and_its_button_unsubscribes(
    client: Client, page: Page, database_url: str
) -> None:
    subscriber = await pending_id(client, database_url)
    token = sign(SECRET, "manage", subscriber, None)
    shown = await client.get("/acme/subscriptions/manage", params={"token": token})
    assert shown.status_code == 200 and "Unsubscribe" in shown.text
    done = await client.post("/acme/subscriptions/manage", content=f"token={token}", headers=FORM)
    assert done.status_code == 200 and done.headers["content-type"].startswith("text/html")
    assert (await subscribers(database_url))[-1]["state"] == "unsubscribed"
    again = await client.post(
        "/acme/eu/subscriptions/unsubscribe", params={"token": sign(SECRET, "unsubscribe", subscriber, None)}
    )
    assert again.status_code == 200 and again.json()["subscription"]["state"] == "unsubscribed"


async def test_a_page_without_a_public_site_takes_no_subscriptions(
    client: Client, keys: Keys, page: Page, database_url: str
) -> None:
    off = await client.put(
        f"/v2/status_pages/{page.id}", json={"public_site_enabled": False}, headers=Keys.header(keys.admin)
    )
    assert off.status_code == 200, off.text
    before = await event_count(database_url)
    assert_envelope(await subscribe(client, email="ann@example.com"), 404)
    assert_envelope(await subscribe(client, "/acme/eu/subscriptions", email="ann@example.com"), 404)
    assert await event_count(database_url) == before
