"""Webhook deliveries to a real HTTP receiver on loopback that verifies each one with the official
`standardwebhooks` package: what each answer means (2xx delivered; 410 gone; a redirect, a failure status or
no answer in time failed), `Retry-After`, both secrets during a rotation, the address rule at every attempt,
and proxy variables ignored."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import trustme

from infra.clock import SystemClock
from infra.webhooks import ForbiddenTarget, WebhookOutcome, WebhookSender, retry_after_seconds, target_resolver
from tests.support.webhook_receiver import Behaviour, Receiver, webhook_receiver

SECRET = "whsec_" + base64.b64encode(b"s" * 24).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 24).decode()
BODY = json.dumps({"meta": {"unsubscribe": "https://x/u"}, "incident": {"name": "Database latency"}}).encode()


async def loopback(url: str) -> str:
    return "127.0.0.1"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as receiver:
        yield receiver


async def deliver(
    receiver: Receiver, path: str, *, secrets: list[str] | None = None, timeout: float = 15.0
) -> WebhookOutcome:
    sender = WebhookSender(target_resolver(allow_private=True), timeout=timeout)
    try:
        url = receiver.url(path)
        now = SystemClock().now()
        return await sender.deliver(url, message_id=str(uuid.uuid4()), body=BODY, secrets=secrets or [SECRET], now=now)
    finally:
        await sender.close()


async def test_a_delivery_verifies_with_standard_webhooks(receiver: Receiver) -> None:
    receiver.secrets["/hook"] = [SECRET]
    outcome = await deliver(receiver, "/hook")
    assert outcome.kind == "delivered" and outcome.http_status == 200
    [delivery] = receiver.at("/hook")
    assert delivery.verified and delivery.payload == json.loads(BODY)
    assert delivery.body == BODY and delivery.headers["content-type"] == "application/json"
    assert uuid.UUID(delivery.webhook_id)


async def test_during_a_rotation_either_secret_verifies(receiver: Receiver) -> None:
    receiver.secrets["/new"] = [SECRET]
    receiver.secrets["/old"] = [OLD_SECRET]
    for path in ("/new", "/old"):
        assert (await deliver(receiver, path, secrets=[SECRET, OLD_SECRET])).kind == "delivered"
    assert all(d.verified for d in receiver.deliveries)
    assert len(receiver.deliveries[0].headers["webhook-signature"].split(" ")) == 2


@pytest.mark.parametrize(
    ("behaviour", "kind", "status"),
    [
        (Behaviour(status=500), "failed", 500),
        (Behaviour(status=404), "failed", 404),
        (Behaviour(status=302, headers={"location": "https://elsewhere.example/"}), "failed", 302),
        (Behaviour(status=410), "gone", 410),
        (Behaviour(status=204), "delivered", 204),
    ],
)
async def test_what_each_answer_means(receiver: Receiver, behaviour: Behaviour, kind: str, status: int) -> None:
    receiver.behaviours["/hook"] = behaviour
    outcome = await deliver(receiver, "/hook")
    assert (outcome.kind, outcome.http_status) == (kind, status)
    assert len(receiver.at("/hook")) == 1  # a redirect is not followed


async def test_no_answer_in_time_is_a_failure(receiver: Receiver) -> None:
    receiver.behaviours["/slow"] = Behaviour(delay=2.0)
    outcome = await deliver(receiver, "/slow", timeout=0.3)
    assert outcome.kind == "failed" and outcome.http_status is None


async def test_retry_after_is_read(receiver: Receiver) -> None:
    receiver.behaviours["/busy"] = Behaviour(status=503, headers={"retry-after": "120"})
    outcome = await deliver(receiver, "/busy")
    assert (outcome.kind, outcome.retry_after) == ("failed", 120.0)
    now = datetime(2026, 1, 28, 10, 0, tzinfo=UTC)
    assert retry_after_seconds("Wed, 28 Jan 2026 10:05:00 GMT", now) == 300.0
    assert retry_after_seconds("soon", now) is None


async def test_a_private_address_is_refused_at_the_attempt(receiver: Receiver) -> None:
    sender = WebhookSender(target_resolver(allow_private=False))
    try:
        for url in (receiver.url("/hook"), f"https://127.0.0.1:{receiver.port}/hook", "https://169.254.169.254/x"):
            outcome = await sender.deliver(url, message_id="m", body=BODY, secrets=[SECRET], now=SystemClock().now())
            assert outcome.kind == "forbidden_address", url
    finally:
        await sender.close()
    assert receiver.deliveries == []


async def test_proxy_variables_are_ignored(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert os.environ["HTTP_PROXY"]
    assert (await deliver(receiver, "/hook")).kind == "delivered"


async def test_the_checked_address_is_the_one_connected_to(receiver: Receiver) -> None:
    """The name is resolved once, by the rule; the request goes to that address with the name as Host."""
    asked: list[str] = []

    async def resolve(url: str) -> str:
        asked.append(url)
        return "127.0.0.1"

    sender = WebhookSender(resolve)
    try:
        url = f"http://receiver.invalid:{receiver.port}/hook"
        outcome = await sender.deliver(url, message_id="m", body=BODY, secrets=[SECRET], now=SystemClock().now())
    finally:
        await sender.close()
    assert outcome.kind == "delivered" and asked == [url]
    assert receiver.at("/hook")[0].headers["host"] == f"receiver.invalid:{receiver.port}"

    async def refuse(url: str) -> str:
        raise ForbiddenTarget("no")

    sender = WebhookSender(refuse)
    try:
        outcome = await sender.deliver(url, message_id="m", body=BODY, secrets=[SECRET], now=SystemClock().now())
    finally:
        await sender.close()
    assert outcome.kind == "forbidden_address"


def test_https_is_pinned_to_the_checked_address_and_the_certificate_checked_against_the_name() -> None:
    """The connection goes to the address the rule checked, while TLS still verifies the receiver's name."""
    authority = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("receiver.test").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    authority.configure_trust(client_tls)
    with webhook_receiver(tls=server_tls) as receiver:

        async def deliver(url: str) -> WebhookOutcome:
            sender = WebhookSender(loopback, verify=client_tls)
            try:
                return await sender.deliver(url, message_id="m", body=BODY, secrets=[SECRET], now=SystemClock().now())
            finally:
                await sender.close()

        good = asyncio.run(deliver(f"https://receiver.test:{receiver.port}/hook"))
        wrong_name = asyncio.run(deliver(f"https://impostor.test:{receiver.port}/hook"))
    assert good.kind == "delivered"
    assert wrong_name.kind == "failed" and "certificate" in (wrong_name.detail or "").lower()
    assert [d.headers["host"] for d in receiver.deliveries] == [f"receiver.test:{receiver.port}"]
