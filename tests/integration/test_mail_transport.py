"""Notification mail through a real SMTP server on loopback: the message as a subscriber's mail client sees
it (recipients, subject, both parts, every list and threading header), byte-identical on every retry, and
what each relay answer means — delivered, bounced only on a `5.1.x` refusal at `RCPT TO`, a transport failure
(connection, authentication, no TLS for credentials) that blames no recipient."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme

from infra.ids import uuid_to_ulid
from infra.mail import Envelope, FolderTransport, Links, SmtpTransport, compose, transport_from_url
from tests.support.live_server import free_port
from tests.support.mail_server import smtp_server

SUBSCRIBER = uuid.UUID("0190f5d2-0000-7000-8000-000000000001")
INTENT = uuid.UUID("0190f5d2-0000-7000-8000-0000000000aa")
NOTICE = "01JNOTICE0000000000000000A"
PUBLISHED = datetime(2026, 1, 28, 10, 0, tzinfo=UTC)
RECIPIENT = "ada@example.org"


def content(*, updates: int = 1, url: str = "https://status.example.com/acme") -> dict[str, Any]:
    return {
        "subject": "[Acme] Database latency — Investigating",
        "page": {"id": "P", "name": "Acme", "slug": "acme", "url": url, "host": "status.example.com"},
        "notice": {"id": NOTICE, "kind": "incident", "name": "Database latency", "url": f"{url}/incidents/{NOTICE}"},
        "update": {"id": "U", "published_at": "2026-01-28T10:00:00.000000Z", "message": "We are *looking*."},
        "text": "Database latency — Investigating\n\nWe are *looking*.\n",
        "html": "<h1>Database latency — Investigating</h1>\n<p>We are <em>looking</em>.</p>\n",
        "webhook": {"incident": {"incident_updates": [{"id": str(n)} for n in range(updates)]}},
    }


LINKS = Links(
    unsubscribe="https://status.example.com/acme/subscriptions/unsubscribe?token=t1",
    manage="https://status.example.com/acme/subscriptions/manage?token=t2",
)


def mail(body: dict[str, Any] | None = None, links: Links = LINKS) -> bytes:
    return compose(
        body or content(),
        intent_id=INTENT,
        subscriber_id=SUBSCRIBER,
        sender="status@status.example.com",
        recipient=RECIPIENT,
        host="status.example.com",
        links=links,
        sent_at=PUBLISHED,
    )


def envelope(message: bytes, recipient: str = RECIPIENT) -> Envelope:
    return Envelope("status@status.example.com", recipient, message, SUBSCRIBER, INTENT)


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


async def test_a_subscriber_receives_both_parts_and_every_header() -> None:
    with smtp_server() as server:
        transport = SmtpTransport(server.url)
        try:
            outcome = await transport.send(envelope(mail()))
        finally:
            await transport.close()
    assert outcome.kind == "delivered"
    [received] = server.sink.received
    assert received.recipients == [RECIPIENT] and received.sender == "status@status.example.com"
    message = received.message
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "[Acme] Database latency — Investigating"
    assert message["From"] == "status@status.example.com" and message["To"] == RECIPIENT
    assert message["Date"] == "Wed, 28 Jan 2026 10:00:00 +0000"
    assert message["List-Id"] == "<acme.status.example.com>"
    assert message["List-Unsubscribe"] == f"<{LINKS.unsubscribe}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # The notice's first update starts the thread: its Message-ID is the one later mails reply to.
    assert message["Message-ID"] == f"<notice-{NOTICE}.{uuid_to_ulid(SUBSCRIBER)}@status.example.com>"
    assert message["In-Reply-To"] is None
    text, html = parts(message)
    assert "We are *looking*." in text and f"Unsubscribe: {LINKS.unsubscribe}" in text
    assert f"Manage your subscription: {LINKS.manage}" in text
    assert "<em>looking</em>" in html and 'href="https://status.example.com/acme/subscriptions/unsubscribe' in html


def test_a_later_update_replies_to_the_notice_thread() -> None:
    message = _parse(mail(content(updates=3)))
    root = f"<notice-{NOTICE}.{uuid_to_ulid(SUBSCRIBER)}@status.example.com>"
    assert message["Message-ID"] == f"<{INTENT}@status.example.com>"
    assert message["In-Reply-To"] == root and message["References"] == root


def test_one_click_unsubscribe_is_offered_only_over_https() -> None:
    links = Links(unsubscribe="http://localhost:8000/acme/subscriptions/unsubscribe?token=t1")
    message = _parse(mail(content(url="http://localhost:8000/acme"), links))
    assert message["List-Unsubscribe"] == f"<{links.unsubscribe}>"
    assert message["List-Unsubscribe-Post"] is None


async def test_every_retry_sends_the_same_bytes() -> None:
    with smtp_server() as server:
        transport = SmtpTransport(server.url)
        try:
            for _ in range(2):
                assert (await transport.send(envelope(mail()))).kind == "delivered"
        finally:
            await transport.close()
    first, second = server.sink.received
    assert first.data == second.data
    assert b"==beacon-" + INTENT.hex.encode() in first.data  # the MIME boundary comes from the intent


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("550 5.1.1 <ada@example.org>: Recipient address rejected: User unknown", "bounced"),
        ("553 5.1.3 Bad recipient address syntax", "bounced"),
        ("550 5.7.1 Relaying denied by policy", "recipient_failed"),
        ("452 4.2.2 Mailbox full", "recipient_failed"),
    ],
)
async def test_only_a_5_1_refusal_at_rcpt_to_is_a_bounce(reply: str, kind: str) -> None:
    with smtp_server() as server:
        server.sink.rcpt_replies[RECIPIENT] = reply
        transport = SmtpTransport(server.url)
        try:
            outcome = await transport.send(envelope(mail()))
            # The connection survives a refused recipient: the next mail goes through on it.
            assert (await transport.send(envelope(mail(), "grace@example.org"))).kind == "delivered"
        finally:
            await transport.close()
    assert outcome.kind == kind
    assert outcome.reply is not None and outcome.reply.startswith(reply[:9])
    assert RECIPIENT not in outcome.reply  # stored replies never hold the address
    assert [r.recipients for r in server.sink.received] == [["grace@example.org"]]


async def test_a_relay_that_cannot_be_reached_is_a_transport_failure() -> None:
    transport = SmtpTransport(f"smtp://127.0.0.1:{free_port()}")
    outcome = await transport.send(envelope(mail()))
    await transport.close()
    assert outcome.kind == "transport_failed"


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_contexts(authority: trustme.CA) -> Iterator[tuple[ssl.SSLContext, ssl.SSLContext]]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    authority.configure_trust(client)
    yield server, client


async def test_a_refused_login_is_a_transport_failure(tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_tls, client_tls = tls_contexts
    with smtp_server(tls=server_tls, refuse_auth=True) as server:
        transport = transport_from_url(f"smtp://beacon:wrong@127.0.0.1:{server.port}", tls_context=client_tls)
        outcome = await transport.send(envelope(mail()))
        await transport.close()
    assert outcome.kind == "transport_failed"
    assert outcome.reply is not None and "authentication" in outcome.reply
    assert server.sink.auth_attempts >= 1 and server.sink.rcpt_seen == [] and server.sink.received == []


async def test_credentials_are_never_sent_without_tls() -> None:
    with smtp_server(refuse_auth=True) as server:  # offers AUTH in clear, but no STARTTLS
        transport = transport_from_url(f"smtp://beacon:secret@127.0.0.1:{server.port}")
        outcome = await transport.send(envelope(mail()))
        await transport.close()
    assert outcome.kind == "transport_failed"
    assert server.sink.auth_attempts == 0 and server.sink.received == []


async def test_file_urls_write_one_eml_per_subscriber_and_intent(tmp_path: Path) -> None:
    transport = transport_from_url(f"file://{tmp_path}/mail")
    assert isinstance(transport, FolderTransport)
    for _ in range(2):
        assert (await transport.send(envelope(mail()))).kind == "delivered"
    [path] = (tmp_path / "mail").rglob("*.eml")
    assert path == tmp_path / "mail" / str(SUBSCRIBER) / f"{INTENT}.eml"
    assert path.read_bytes() == mail()


def _parse(data: bytes) -> EmailMessage:
    from email import message_from_bytes, policy

    parsed = message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed
