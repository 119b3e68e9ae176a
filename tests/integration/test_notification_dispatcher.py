"""The notification dispatcher end to end on the real Postgres: subscribers and notices in the log, the outbox
projection, a real SMTP server and a real webhook receiver on loopback, and an injected clock for the retry
schedule. What a subscriber would notice: every update arrives, in order, once per attempt with a stable id;
failures are retried on the schedule with identical bytes; a 410 disables a webhook, a 5.1.1 bounces an
address, a relay refusing our login pauses the channel and blames nobody; an unsubscribe stops a pending retry."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import asyncpg
import pytest
import trustme

from infra.clock import FakeClock, SystemClock
from infra.event_store import PostgresEventStore
from infra.ids import uuid_to_ulid
from infra.mail import SmtpTransport, transport_from_url
from process_managers.notification_dispatcher import NOT_CONFIGURED, RetrySchedule
from tests.support.mail_server import MailServer, smtp_server
from tests.support.notifications import World, webhook_secret
from tests.support.webhook_receiver import Behaviour, Receiver, webhook_receiver


@pytest.fixture
async def world(pool: asyncpg.Pool) -> World:
    # Receivers check webhook-timestamp against their own clock (5 minutes' tolerance): the test clock starts now.
    world = World(pool, PostgresEventStore(pool), FakeClock(SystemClock().now().replace(microsecond=0)))
    await world.setup()
    return world


@pytest.fixture
def smtp() -> Iterator[MailServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
async def mail(smtp: MailServer) -> AsyncIterator[SmtpTransport]:
    transport = SmtpTransport(smtp.url)
    yield transport
    await transport.close()


async def test_every_update_reaches_every_subscriber_in_order(
    world: World, smtp: MailServer, receiver: Receiver, mail: SmtpTransport
) -> None:
    ada = await world.subscriber(email="ada@example.org")
    hook = await world.subscriber(url=receiver.url("/hook"), secret=webhook_secret(1))
    receiver.secrets["/hook"] = [webhook_secret(1)]
    incident_id, _ = await world.incident("Looking into it", "Found it", "Fixed")
    await world.project()
    dispatcher = world.dispatcher(mail)
    assert await dispatcher.drain() == 6

    mails = smtp.sink.to("ada@example.org")
    assert [m.message["Subject"].rsplit("— ", 1)[1] for m in mails] == ["Investigating", "Identified", "Monitoring"]
    root = mails[0].message["Message-ID"]
    assert root == f"<notice-{uuid_to_ulid(incident_id)}.{uuid_to_ulid(ada)}@status.acme.example>"
    assert all(m.message["In-Reply-To"] == root for m in mails[1:])
    assert mails[0].message["List-Unsubscribe"].startswith("<https://status.acme.example/subscriptions/unsubscribe?token=")

    deliveries = receiver.at("/hook")
    assert all(d.verified for d in deliveries)
    assert [d.payload["incident"]["incident_updates"][0]["body"] for d in deliveries] == [
        "Looking into it", "Found it", "Fixed"
    ]
    assert deliveries[0].payload["meta"]["unsubscribe"].startswith("https://status.acme.example/subscriptions/")
    intents = await world.intents(hook)
    assert [d.webhook_id for d in deliveries] == [str(i["id"]) for i in intents]
    assert {(i["state"], i["attempts"]) for i in intents + await world.intents(ada)} == {("delivered", 1)}


async def test_a_failing_update_holds_back_the_later_ones_of_its_notice(world: World, receiver: Receiver) -> None:
    await world.subscriber(url=receiver.url("/hook"), secret=webhook_secret(1))
    receiver.secrets["/hook"] = [webhook_secret(1)]
    receiver.behaviours["/hook"] = Behaviour(status=503)
    await world.incident("first", "second")
    await world.project()
    dispatcher = world.dispatcher(None)
    await dispatcher.drain()
    assert len(receiver.at("/hook")) == 1  # "second" waits behind "first"

    receiver.behaviours["/hook"] = Behaviour(status=200)
    world.clock.advance(timedelta(seconds=4))  # 5 s ±20% has not passed for sure
    assert await dispatcher.drain() == 0
    world.clock.advance(timedelta(seconds=3))
    assert await dispatcher.drain() == 2
    bodies = [d.payload["incident"]["incident_updates"][0]["body"] for d in receiver.at("/hook")[1:]]
    assert bodies == ["first", "second"]
    first = receiver.at("/hook")[0]
    assert first.webhook_id == receiver.at("/hook")[1].webhook_id and first.body == receiver.at("/hook")[1].body


async def test_a_retried_mail_has_the_same_bytes(world: World, smtp: MailServer, mail: SmtpTransport) -> None:
    await world.subscriber(email="ada@example.org")
    smtp.sink.rcpt_replies["ada@example.org"] = "451 4.3.0 Try again later"
    await world.incident("Looking into it")
    await world.project()
    dispatcher = world.dispatcher(mail)
    await dispatcher.drain()
    assert smtp.sink.received == []
    del smtp.sink.rcpt_replies["ada@example.org"]
    world.clock.advance(timedelta(seconds=6))
    await dispatcher.drain()
    world.clock.advance(timedelta(days=1))
    await world.pool.execute(
        "UPDATE beacon_notification_intents SET state = 'pending', next_attempt_at = $1", world.clock.now()
    )
    await dispatcher.drain()  # a repeat (as after a crash before recording): the receiver can drop it by id
    first, second = smtp.sink.received
    assert first.data == second.data
    attempts = await world.pool.fetch(
        "SELECT attempt, outcome, smtp_reply FROM beacon_notification_attempts ORDER BY attempt"
    )
    assert [(a["attempt"], a["outcome"]) for a in attempts] == [(1, "failed"), (2, "delivered"), (3, "delivered")]
    assert attempts[0]["smtp_reply"].startswith("451 4.3.0")


async def test_410_gone_disables_the_webhook_and_cancels_its_other_updates(world: World, receiver: Receiver) -> None:
    hook = await world.subscriber(url=receiver.url("/gone"), secret=webhook_secret(1))
    receiver.behaviours["/gone"] = Behaviour(status=410)
    await world.incident("first", "second")
    await world.incident("other notice")
    await world.project()
    await world.dispatcher(None).drain()
    assert len(receiver.at("/gone")) == 2  # the first update of each notice; nothing after the 410s
    assert "Subscriber.Disabled" in await world.subscriber_events(hook)
    assert {i["state"] for i in await world.intents(hook)} == {"failed", "cancelled"}
    assert [i["state"] for i in await world.intents(hook)].count("failed") >= 1


async def test_a_webhook_failing_every_attempt_is_disabled(world: World, receiver: Receiver) -> None:
    hook = await world.subscriber(url=receiver.url("/down"), secret=webhook_secret(1))
    receiver.behaviours["/down"] = Behaviour(status=500)
    await world.incident("first")
    await world.project()
    dispatcher = world.dispatcher(None, schedule=RetrySchedule((1, 1)))
    for _ in range(3):
        await dispatcher.drain()
        world.clock.advance(timedelta(seconds=2))
    assert len(receiver.at("/down")) == 3
    assert await world.subscriber_events(hook) == ["Subscriber.Created", "Subscriber.Disabled"]
    [intent] = await world.intents(hook)
    assert (intent["state"], intent["attempts"]) == ("failed", 3)


async def test_a_5_1_1_refusal_bounces_the_address(world: World, smtp: MailServer, mail: SmtpTransport) -> None:
    ada = await world.subscriber(email="ada@example.org")
    grace = await world.subscriber(email="grace@example.org")
    smtp.sink.rcpt_replies["ada@example.org"] = "550 5.1.1 <ada@example.org>: user unknown"
    await world.incident("first", "second")
    await world.project()
    await world.dispatcher(mail).drain()
    assert await world.subscriber_events(ada) == ["Subscriber.Created", "Subscriber.Bounced"]
    assert [i["state"] for i in await world.intents(ada)] == ["failed", "cancelled"]
    assert "Subscriber.Bounced" not in await world.subscriber_events(grace)
    assert len(smtp.sink.to("grace@example.org")) == 2
    replies = await world.pool.fetch("SELECT smtp_reply FROM beacon_notification_attempts WHERE smtp_reply IS NOT NULL")
    assert not any("ada@example.org" in row["smtp_reply"] for row in replies)


async def test_a_relay_refusing_our_login_pauses_email_and_bounces_nobody(world: World) -> None:
    authority = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    authority.configure_trust(client_tls)
    ada = await world.subscriber(email="ada@example.org")
    await world.incident("first", "second")
    await world.project()
    with smtp_server(tls=server_tls, refuse_auth=True) as relay:
        mail = transport_from_url(f"smtp://beacon:wrong@127.0.0.1:{relay.port}", tls_context=client_tls)
        dispatcher = world.dispatcher(mail)
        await dispatcher.drain()
        world.clock.advance(timedelta(days=2))  # far past every step of the schedule: still nothing exhausted
        await dispatcher.drain()
        await mail.close()
    assert relay.sink.auth_attempts >= 1 and relay.sink.rcpt_seen == []
    channel = await world.pool.fetchrow("SELECT * FROM beacon_notification_channels WHERE channel = 'email'")
    assert channel["paused_until"] > world.clock.now() and "authentication" in channel["reason"]
    assert channel["failures"] == 2
    assert [(i["state"], i["attempts"]) for i in await world.intents(ada)] == [("pending", 0), ("pending", 0)]
    assert await world.subscriber_events(ada) == ["Subscriber.Created"]
    assert await world.pool.fetchval("SELECT count(*) FROM beacon_notification_attempts") == 0

    with smtp_server() as healthy:  # the relay is fixed: the pause ends with the first delivery after it
        world.clock.set(channel["paused_until"] + timedelta(seconds=1))
        mail = transport_from_url(healthy.url)
        await world.dispatcher(mail).drain()
        await mail.close()
    assert len(healthy.sink.to("ada@example.org")) == 2
    paused = await world.pool.fetchval("SELECT paused_until FROM beacon_notification_channels WHERE channel = 'email'")
    assert paused is None


async def test_unsubscribing_while_a_retry_is_pending_cancels_it(world: World, receiver: Receiver) -> None:
    from domain.base import CommandContext
    from domain.subscriber import unsubscribe_subscriber
    from tests.support.builders import OPERATOR

    hook = await world.subscriber(url=receiver.url("/hook"), secret=webhook_secret(1))
    receiver.behaviours["/hook"] = Behaviour(status=500)
    await world.incident("first")
    await world.project()
    dispatcher = world.dispatcher(None)
    await dispatcher.drain()
    await unsubscribe_subscriber(
        world.store, subscriber_id=hook, context=CommandContext(now=world.clock.now(), actor=OPERATOR, request_id=None)
    )
    await world.project()
    world.clock.advance(timedelta(minutes=1))
    receiver.behaviours["/hook"] = Behaviour(status=200)
    await dispatcher.drain()
    assert len(receiver.at("/hook")) == 1
    [intent] = await world.intents(hook)
    assert intent["state"] == "cancelled"
    outcomes = await world.pool.fetch("SELECT outcome FROM beacon_notification_attempts ORDER BY attempt")
    assert [row["outcome"] for row in outcomes] == ["failed", "cancelled"]


async def test_without_a_mail_transport_email_waits_and_webhooks_go(world: World, receiver: Receiver) -> None:
    ada = await world.subscriber(email="ada@example.org")
    hook = await world.subscriber(url=receiver.url("/hook"), secret=webhook_secret(1))
    await world.incident("first")
    await world.project()
    dispatcher = world.dispatcher(None)
    await dispatcher.configure_channels()
    await dispatcher.drain()
    channel = await world.pool.fetchrow("SELECT * FROM beacon_notification_channels WHERE channel = 'email'")
    assert channel["reason"] == NOT_CONFIGURED
    assert [i["state"] for i in await world.intents(ada)] == ["pending"]
    assert [i["state"] for i in await world.intents(hook)] == ["delivered"]


async def test_two_dispatchers_never_send_the_same_attempt(world: World, receiver: Receiver) -> None:
    import asyncio

    hooks = [await world.subscriber(url=receiver.url(f"/h{n}"), secret=webhook_secret(n)) for n in range(30)]
    receiver.behaviours.update({f"/h{n}": Behaviour(delay=0.05) for n in range(30)})
    await world.incident("first", "second")
    await world.project()
    first, second = world.dispatcher(None, concurrency=4), world.dispatcher(None, concurrency=4)
    await asyncio.gather(first.drain(), second.drain())
    assert first.status.claimed > 0 and second.status.claimed > 0
    ids = [d.webhook_id for d in receiver.deliveries]
    assert len(ids) == len(set(ids)) == 2 * len(hooks)


async def test_an_attempt_that_cannot_be_recorded_does_not_hold_up_the_others(
    world: World, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A result whose recording fails for a reason other than the database (here: the disable verdict of a 410
    raising, as a bug would) is dropped on its own; the deliveries beside it are recorded, not resent."""
    gone = await world.subscriber(url=receiver.url("/gone"), secret=webhook_secret(1))
    fine = await world.subscriber(url=receiver.url("/fine"), secret=webhook_secret(2))
    receiver.secrets["/fine"] = [webhook_secret(2)]
    receiver.behaviours["/gone"] = Behaviour(status=410)
    await world.incident("first")
    await world.project()
    dispatcher = world.dispatcher(None, poll_interval=0.05)

    async def broken_verdict(*_args: object) -> None:
        raise RuntimeError("a bug in a verdict")

    monkeypatch.setattr(dispatcher, "_subscriber_event", broken_verdict)
    await dispatcher.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while dispatcher.status.unrecorded == 0 or dispatcher.status.recorded == 0:
            assert asyncio.get_running_loop().time() < deadline, dispatcher.status
            await asyncio.sleep(0.05)
    finally:
        await dispatcher.stop()
    [delivered] = await world.intents(fine)
    assert delivered["state"] == "delivered"
    assert len(receiver.at("/fine")) == 1
    [held] = await world.intents(gone)
    assert held["state"] == "pending"  # claimed again once its reservation runs out
    assert "Subscriber.Disabled" not in await world.subscriber_events(gone)
