"""What an operator sees of notification delivery, through HTTP and the CLI as they use them: a subscriber's
delivery attempts (newest first, paginated, with the outcome, the HTTP status and the next attempt),
`/readyz?detail=1` and `/metrics` naming a paused email channel and staying 200, and `beacon notifications
status`."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from infra.clock import FakeClock, SystemClock
from infra.event_store import PostgresEventStore
from infra.ids import new_ulid, uuid_to_ulid
from infra.mail import transport_from_url
from infra.settings import Settings
from process_managers.notification_dispatcher import NOT_CONFIGURED
from projections.registry import all_projections
from projections.runner import catch_up, ensure_tables
from tests.support.http import Keys
from tests.support.live_server import BEACON, TEST_SECRET_KEY
from tests.support.mail_server import smtp_server
from tests.support.notifications import World, webhook_secret
from tests.support.webhook_receiver import Behaviour, Receiver, webhook_receiver

Client = AsyncTestClient[Litestar]


def status(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [BEACON, "notifications", "status", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
async def world(pool: asyncpg.Pool) -> World:
    world = World(pool, PostgresEventStore(pool), FakeClock(SystemClock().now().replace(microsecond=0)))
    await world.setup()
    return world


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Client]:
    """The API without a background worker of its own: the test's dispatcher is the only one."""
    async with AsyncTestClient(app=create_app(settings, run_worker=False)) as client:
        yield client


async def test_a_subscribers_deliveries_newest_first(world: World, receiver: Receiver, api: Client, keys: Keys) -> None:
    hook = await world.subscriber(url=receiver.url("/hook"), secret=webhook_secret(1))
    receiver.behaviours["/hook"] = Behaviour(status=500)
    incident_id, update_ids = await world.incident("first")
    await world.project()
    dispatcher = world.dispatcher(None)
    await dispatcher.drain()
    receiver.behaviours["/hook"] = Behaviour(status=200)
    world.clock.advance(timedelta(seconds=10))
    await dispatcher.drain()

    url = f"/v2/status_page_subscribers/{uuid_to_ulid(hook)}/deliveries"
    response = await api.get(url, headers=keys.header(keys.admin))
    assert response.status_code == 200, response.text
    body = response.json()
    delivered, failed = body["deliveries"]
    assert delivered["outcome"] == "delivered" and delivered["attempt"] == 2 and delivered["http_status"] == 200
    assert "next_attempt_at" not in delivered
    assert failed["outcome"] == "failed" and failed["attempt"] == 1 and failed["http_status"] == 500
    assert failed["next_attempt_at"] > failed["attempted_at"]
    assert delivered["update_id"] == update_ids[0] and delivered["notice_id"] == uuid_to_ulid(incident_id)
    assert body["pagination_meta"] == {"page_size": 25}

    first = (await api.get(url, params={"page_size": 1}, headers=keys.header(keys.admin))).json()
    assert [d["id"] for d in first["deliveries"]] == [delivered["id"]]
    rest = await api.get(url, params={"after": first["pagination_meta"]["after"]}, headers=keys.header(keys.admin))
    assert [d["id"] for d in rest.json()["deliveries"]] == [failed["id"]]

    assert (await api.get(url, headers=keys.header(keys.publish))).status_code == 403
    unknown = await api.get(f"/v2/status_page_subscribers/{new_ulid(world.clock.now())}/deliveries",
                            headers=keys.header(keys.admin))
    assert unknown.status_code == 404 and unknown.json()["type"] == "not_found"
    bad_cursor = await api.get(url, params={"after": new_ulid(world.clock.now())}, headers=keys.header(keys.admin))
    assert bad_cursor.status_code == 422


async def test_a_paused_channel_is_reported_and_the_process_stays_ready(
    world: World, api: Client, database_url: str, tmp_path: Path
) -> None:
    await world.subscriber(email="ada@example.org")
    await world.incident("first")
    await world.project()
    dispatcher = world.dispatcher(None)
    await dispatcher.configure_channels()
    await dispatcher.drain()

    assert (await api.get("/readyz")).status_code == 200
    detail = await api.get("/readyz?detail=1")
    assert detail.status_code == 200
    channels = {item["channel"]: item for item in detail.json()["notifications"]}
    assert channels["email"]["paused"] and channels["email"]["paused_reason"] == NOT_CONFIGURED
    assert channels["email"]["backlog"] == 1 and channels["email"]["oldest_due_seconds"] >= 0
    assert channels["webhook"] == {
        "channel": "webhook", "backlog": 0, "retrying": 0, "oldest_due_seconds": 0.0, "failures_24h": 0
    }

    metrics = (await api.get("/metrics")).text
    assert 'beacon_notification_channel_paused{channel="email"} 1.0' in metrics
    assert 'beacon_notification_intents_pending{channel="email"} 1.0' in metrics

    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": database_url,
        "BEACON_SECRET_KEY": TEST_SECRET_KEY,
        "BEACON_DATA_DIR": str(tmp_path / "data"),
    }
    table = await asyncio.to_thread(status, env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["channel", "backlog", "retrying", "oldest", "due", "s", "failed", "24h", "state"]
    assert lines[1].split()[:3] == ["email", "1", "0"] and "PAUSED" in lines[1]
    assert lines[2].split()[:3] == ["webhook", "0", "0"] and lines[2].endswith("running")
    assert f"email: {NOT_CONFIGURED}" in table.stdout
    as_json = await asyncio.to_thread(status, env, "--json")
    assert json.loads(as_json.stdout)[0]["paused_reason"] == NOT_CONFIGURED


async def test_the_one_click_unsubscribe_in_a_mail_works(pool: asyncpg.Pool, api: Client) -> None:
    """RFC 8058: a mail client POSTs `List-Unsubscribe=One-Click` to the `List-Unsubscribe` URL, with no cookie."""
    world = World(pool, PostgresEventStore(pool), FakeClock(SystemClock().now()), public_url=None)
    await world.setup()
    ada = await world.subscriber(email="ada@example.org")
    await world.incident("first", "second")
    await world.project()
    with smtp_server() as smtp:
        mail = transport_from_url(smtp.url)
        dispatcher = world.dispatcher(mail, fallback_url="https://status.acme.example")
        await world.pool.execute(  # hold "second" back, as a retry would be
            "UPDATE beacon_notification_intents SET next_attempt_at = $1 WHERE position = (SELECT max(position)"
            " FROM beacon_notification_intents)",
            world.clock.now() + timedelta(hours=1),
        )
        await dispatcher.drain()
        await mail.close()
    [received] = smtp.sink.to("ada@example.org")
    target = received.message["List-Unsubscribe"].strip("<>")
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    path = "/" + target.split("/", 3)[3]
    async with pool.acquire() as conn:  # the public routes read the page from the read models
        await ensure_tables(conn, all_projections())
        for projection in all_projections():
            await catch_up(conn, world.store, projection)
    assert path.startswith("/acme/subscriptions/unsubscribe?token=")
    response = await api.post(
        path, content=b"List-Unsubscribe=One-Click", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200, response.text
    assert "Subscriber.Unsubscribed" in await world.subscriber_events(ada)
    await world.project()
    world.clock.advance(timedelta(hours=2))
    with smtp_server() as smtp:
        mail = transport_from_url(smtp.url)
        await world.dispatcher(mail).drain()
        await mail.close()
    assert smtp.sink.received == []
    assert [i["state"] for i in await world.intents(ada)] == ["delivered", "cancelled"]


async def test_the_confirmation_mail_confirms_and_the_next_update_is_told(pool: asyncpg.Pool, api: Client) -> None:
    """A pending address gets one mail, a confirmation; its link confirms it; updates after that reach it."""
    world = World(pool, PostgresEventStore(pool), FakeClock(SystemClock().now()), public_url=None)
    await world.setup()
    ada = await world.subscriber(email="ada@example.org", confirmed=False)
    await world.incident("before confirming")
    await world.project()
    with smtp_server() as smtp:
        mail = transport_from_url(smtp.url)
        await world.dispatcher(mail, fallback_url="https://status.acme.example").drain()
        [confirmation] = smtp.sink.to("ada@example.org")
        assert confirmation.message["Subject"] == "[Acme] Confirm your subscription"
        text = confirmation.message.get_body(("plain",))
        assert text is not None
        prefix = "Confirm your subscription: "
        [link] = [line.removeprefix(prefix) for line in str(text.get_content()).splitlines() if line.startswith(prefix)]
        path = "/" + link.split("/", 3)[3]
        assert path.startswith("/acme/subscriptions/confirm?token=")
        async with pool.acquire() as conn:
            await ensure_tables(conn, all_projections())
            for projection in all_projections():
                await catch_up(conn, world.store, projection)
        confirmed = await api.post(path, headers={"accept": "application/json"})
        assert confirmed.status_code == 200, confirmed.text
        assert "Subscriber.Confirmed" in await world.subscriber_events(ada)

        await world.incident("after confirming")
        await world.project()
        world.clock.set(SystemClock().now())  # the intent is due from when the outbox recorded it
        await world.dispatcher(mail).drain()
        await mail.close()
    subjects = [m.message["Subject"] for m in smtp.sink.to("ada@example.org")]
    assert subjects == ["[Acme] Confirm your subscription", "[Acme] Incident 3 — Investigating"]
