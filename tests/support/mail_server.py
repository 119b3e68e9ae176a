"""A real SMTP server on loopback (aiosmtpd's controller) for the notification tests: it keeps every message
it accepts, and can be told to refuse a recipient at `RCPT TO`, refuse authentication or offer STARTTLS
with a test certificate authority's certificate."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, Session

from tests.support.live_server import free_port


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Sink:
    """What the server accepted, and how it answers `RCPT TO` per address (default `250 OK`)."""

    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    rcpt_seen: list[str] = field(default_factory=list)
    auth_attempts: int = 0

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        self.rcpt_seen.append(address)
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(data)))
        return "250 2.0.0 queued"

    def to(self, address: str) -> list[Received]:
        return [item for item in self.received if address in item.recipients]


@dataclass
class MailServer:
    sink: Sink
    port: int
    url: str


def _refuse_every_login(server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    return AuthResult(success=False, handled=False)


@contextmanager
def smtp_server(*, tls: ssl.SSLContext | None = None, refuse_auth: bool = False) -> Iterator[MailServer]:
    """An SMTP server on 127.0.0.1 until the block ends. `tls`: offer STARTTLS with this server context.
    `refuse_auth`: offer AUTH (after STARTTLS) and refuse every credential."""
    sink = Sink()
    port = free_port()
    extra: dict[str, Any] = {}
    if tls is not None:
        extra["tls_context"] = tls
    if refuse_auth:
        original = _refuse_every_login

        def authenticator(*args: Any) -> AuthResult:
            sink.auth_attempts += 1
            return original(*args)

        extra["authenticator"] = authenticator
        extra["auth_require_tls"] = tls is not None
    controller = Controller(sink, hostname="127.0.0.1", port=port, **extra)
    controller.start()
    try:
        yield MailServer(sink=sink, port=port, url=f"smtp://127.0.0.1:{port}")
    finally:
        controller.stop()
