"""Notification mail: composing one subscriber's message from a notification's stored content, and sending it
(docs/architecture.md#notification-delivery).

The message is computed, never stored: from the content the outbox fixed as of the update and the
subscriber's id, every header and every byte comes out the same on each retry (the boundary is derived from
the intent id, the `Date` from the update), so a receiver that keeps the first copy loses nothing.

Sending goes through a `MailTransport`: an SMTP relay through a small pool of aiosmtplib connections, or a
folder of `.eml` files. What a relay answered is sorted into what it means for Beacon: delivered; the
recipient refused for good at `RCPT TO` (a 5xx with enhanced code `5.1.x`: the address bounced); the
recipient refused otherwise (retried like any failed delivery); or the transport failed (connection, TLS,
authentication, `MAIL FROM`, `DATA`) — a fault of the relay or of Beacon's configuration, which pauses the
whole channel and is never counted against a subscriber.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import email.header
import email.utils
import functools
import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit
from uuid import UUID

import aiosmtplib

from infra.ids import uuid_to_ulid

log = logging.getLogger("beacon.mail")

SMTP_TIMEOUT = 30.0
"""Seconds for each SMTP command (connecting included) before the relay counts as failing."""
MAX_CONNECTIONS = 4
"""SMTP connections a worker keeps open at most: relays limit connections per client, and a few suffice."""

MailOutcomeKind = Literal["delivered", "bounced", "recipient_failed", "transport_failed"]


@dataclass(frozen=True)
class MailOutcome:
    kind: MailOutcomeKind
    reply: str | None = None
    """The relay's reply (code and text), or what went wrong before it could answer."""


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipient: str
    message: bytes
    subscriber_id: UUID
    intent_id: UUID


class MailTransport(Protocol):
    """Where mail goes."""

    description: str
    """Where, for the log and operators (no password)."""

    async def send(self, envelope: Envelope) -> MailOutcome: ...

    async def close(self) -> None: ...


# --- composing --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    """The subscriber's own links, each carrying its token."""

    unsubscribe: str | None
    manage: str | None = None
    confirm: str | None = None


def notice_message_id(notice_id: str, subscriber_id: UUID, host: str) -> str:
    """The thread's root: the `Message-ID` of a notice's first mail to a subscriber, and the `In-Reply-To`
    of every later one, so mail clients show one incident as one conversation. Ids as the API shows them."""
    return f"<notice-{notice_id}.{uuid_to_ulid(subscriber_id)}@{host}>"


def compose(
    content: Mapping[str, Any],
    *,
    intent_id: UUID,
    subscriber_id: UUID,
    sender: str,
    recipient: str,
    host: str,
    links: Links,
    sent_at: datetime,
) -> bytes:
    """One subscriber's mail: `multipart/alternative` (text and HTML) with the list and threading headers.

    `sent_at` is the `Date`: the update's `published_at` (or the message's creation for a confirmation), fixed
    in the content, never the moment of sending."""
    page = content.get("page") or {}
    headers = [
        ("From", sender),
        ("To", recipient),
        ("Subject", content["subject"]),
        ("Date", email.utils.format_datetime(sent_at)),
    ]
    notice = content.get("notice")
    first_update = bool(content.get("first_update", _is_first_update(content)))
    if notice:
        root = notice_message_id(notice["id"], subscriber_id, host)
        if first_update:
            headers.append(("Message-ID", root))
        else:
            headers += [("Message-ID", f"<{intent_id}@{host}>"), ("In-Reply-To", root), ("References", root)]
    else:
        headers.append(("Message-ID", f"<{intent_id}@{host}>"))
    if page.get("slug"):
        headers.append(("List-Id", f"<{page['slug']}.{host}>"))
    if links.unsubscribe:
        headers.append(("List-Unsubscribe", f"<{links.unsubscribe}>"))
        if links.unsubscribe.startswith("https://"):
            headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    # The one random part of a MIME message, the boundary, derived from the intent: every retry is identical.
    boundary = f"==beacon-{intent_id.hex}=="
    headers += [
        ("Auto-Submitted", "auto-generated"),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    lines = [f"{name}: {_header_value(name, value)}" for name, value in headers]
    parts = (
        ("text/plain", content["text"] + _text_footer(links)),
        ("text/html", _with_html_footer(content["html"], links)),
    )
    for subtype, body in parts:
        lines += [
            "",
            f"--{boundary}",
            f'Content-Type: {subtype}; charset="utf-8"',
            "Content-Transfer-Encoding: quoted-printable",
            "",
            _quoted_printable(body),
        ]
    lines += [f"--{boundary}--", ""]
    return "\r\n".join(lines).encode("ascii")


# Written out rather than built with `email.message.EmailMessage`, which took 6 ms per message (most of a
# delivery's cost to a local relay); the tests read every message back with the `email` package.


@functools.lru_cache(maxsize=1024)
def _header_value(name: str, value: str) -> str:
    """A header's value as 7-bit text: line breaks (a header injection) become spaces, and a value that is not
    ASCII is an RFC 2047 encoded word (subjects of non-English pages, the em dash of every subject)."""
    value = " ".join(value.splitlines())
    if value.isascii():
        return value
    return email.header.Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


def _quoted_printable(text: str) -> str:
    """A part's body as quoted-printable (76-character lines, CRLF) from text with any line endings."""
    normal = "\n".join(text.splitlines()) + ("\n" if text.endswith(("\n", "\r")) else "")
    encoded = binascii.b2a_qp(normal.encode("utf-8"), istext=True)
    return encoded.decode("ascii").replace("\n", "\r\n")


def _is_first_update(content: Mapping[str, Any]) -> bool:
    incident = (content.get("webhook") or {}).get("incident") or {}
    updates = incident.get("incident_updates")
    return isinstance(updates, list) and len(updates) == 1


def _text_footer(links: Links) -> str:
    lines = []
    if links.confirm:
        lines.append(f"Confirm your subscription: {links.confirm}")
    if links.manage:
        lines.append(f"Manage your subscription: {links.manage}")
    if links.unsubscribe:
        lines.append(f"Unsubscribe: {links.unsubscribe}")
    return ("\n" + "\n".join(lines) + "\n") if lines else ""


def _with_html_footer(body: str, links: Links) -> str:
    from html import escape

    items = []
    if links.confirm:
        items.append(f'<a href="{escape(links.confirm)}">Confirm your subscription</a>')
    if links.manage:
        items.append(f'<a href="{escape(links.manage)}">Manage your subscription</a>')
    if links.unsubscribe:
        items.append(f'<a href="{escape(links.unsubscribe)}">Unsubscribe</a>')
    if not items:
        return body
    footer = f"<hr>\n<p>{' · '.join(items)}</p>\n"
    index = body.lower().rfind("</body>")
    return body[:index] + footer + body[index:] if index >= 0 else body + footer


# --- sending -----------------------------------------------------------------------------------------------------


class MailNotConfigured(ValueError):
    """Raised when `BEACON_SMTP_URL` is not an `smtp://`, `smtps://` or `file://` URL."""


def default_mail_url(data_dir: Path) -> str:
    """Where the embedded default writes mail: `.eml` files under `$BEACON_DATA_DIR/mail`."""
    return f"file://{(data_dir / 'mail').resolve()}"


def mail_transport(smtp_url: str | None, *, embedded: bool, data_dir: Path) -> MailTransport | None:
    """The configured transport; on the embedded default without one, `.eml` files (said in the log); with a
    database of its own and no `BEACON_SMTP_URL`, None — the email channel stays paused, and mail is never
    quietly written to some worker's disk."""
    if smtp_url:
        return transport_from_url(smtp_url)
    if embedded:
        url = default_mail_url(data_dir)
        log.warning("BEACON_SMTP_URL is not set: notification mail is written as .eml files under %s", url[7:])
        return transport_from_url(url)
    return None


def transport_from_url(url: str, *, tls_context: ssl.SSLContext | None = None) -> MailTransport:
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return FolderTransport(Path(unquote(urlsplit(url).path)))
    if scheme in ("smtp", "smtps"):
        return SmtpTransport(url, tls_context=tls_context)
    raise MailNotConfigured(f"BEACON_SMTP_URL must start with smtp://, smtps:// or file://, not {scheme or url!r}")


class FolderTransport:
    """`.eml` files under `{folder}/{subscriber_id}/{intent_id}.eml` (the embedded default, and `file://`): a
    retry rewrites the same file with the same bytes; erasing a subscriber deletes its folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.description = f"files under {folder}"

    async def send(self, envelope: Envelope) -> MailOutcome:
        try:
            await asyncio.to_thread(self._write, envelope)
        except OSError as error:
            return MailOutcome("transport_failed", f"cannot write to {self.folder}: {error.strerror or error}")
        return MailOutcome("delivered", "written")

    def _write(self, envelope: Envelope) -> None:
        directory = self.folder / str(envelope.subscriber_id)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{envelope.intent_id}.eml"
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(envelope.message)
        temporary.replace(path)

    async def close(self) -> None:
        return None


class SmtpTransport:
    """A relay, through at most `MAX_CONNECTIONS` kept-open connections.

    `smtp://` upgrades with STARTTLS when the relay offers it and insists on it when the URL carries
    credentials (a password is never sent in clear); `smtps://` is TLS from the first byte."""

    def __init__(
        self, url: str, *, tls_context: ssl.SSLContext | None = None, connections: int = MAX_CONNECTIONS
    ) -> None:
        parts = urlsplit(url)
        self.implicit_tls = parts.scheme == "smtps"
        self.hostname = parts.hostname or "localhost"
        self.port = parts.port or (465 if self.implicit_tls else 587)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.tls_context = tls_context
        self.description = f"{parts.scheme}://{self.hostname}:{self.port}"
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(connections)

    async def send(self, envelope: Envelope) -> MailOutcome:
        async with self._slots:
            reused = bool(self._idle)
            try:
                client = self._idle.pop() if reused else await self._connect()
            except _TRANSPORT_ERRORS as error:
                return MailOutcome("transport_failed", _describe(error, "connecting"))
            outcome, keep = await self._transaction(client, envelope)
            if outcome.kind == "transport_failed" and reused and not keep:
                # A kept connection the relay closed while idle: one fresh try before blaming the relay.
                try:
                    client = await self._connect()
                except _TRANSPORT_ERRORS as error:
                    return MailOutcome("transport_failed", _describe(error, "connecting"))
                outcome, keep = await self._transaction(client, envelope)
            if keep:
                self._idle.append(client)
            else:
                await _close(client)
            return outcome

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.hostname,
            port=self.port,
            use_tls=self.implicit_tls,
            # Credentials are never sent in clear: with them, STARTTLS is required, not just taken if offered.
            start_tls=None if self.implicit_tls else (True if self.username else None),
            username=self.username,
            password=self.password,
            timeout=SMTP_TIMEOUT,
            tls_context=self.tls_context,
        )
        await client.connect()
        return client

    async def _transaction(self, client: aiosmtplib.SMTP, envelope: Envelope) -> tuple[MailOutcome, bool]:
        """Send one message; returns the outcome and whether the connection can be kept."""
        try:
            _, reply = await client.sendmail(envelope.sender, [envelope.recipient], envelope.message)
        except aiosmtplib.SMTPRecipientsRefused as refused:
            error = refused.recipients[0]
            reply = _scrub(f"{error.code} {error.message}", envelope.recipient)
            keep = await _reset(client)
            if 500 <= error.code < 600 and error.message.lstrip().startswith("5.1."):
                return MailOutcome("bounced", reply), keep
            return MailOutcome("recipient_failed", reply), keep
        except aiosmtplib.SMTPSenderRefused as error:
            return MailOutcome("transport_failed", f"MAIL FROM refused: {error.code} {error.message}"), False
        except aiosmtplib.SMTPDataError as error:
            return MailOutcome("transport_failed", f"DATA refused: {error.code} {error.message}"), False
        except _TRANSPORT_ERRORS as error:
            return MailOutcome("transport_failed", _scrub(_describe(error, "sending"), envelope.recipient)), False
        return MailOutcome("delivered", _scrub(reply, envelope.recipient)), True

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            await _close(client)


_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError)


def _describe(error: BaseException, stage: str) -> str:
    if isinstance(error, aiosmtplib.SMTPAuthenticationError):
        return f"authentication refused: {error.code} {error.message}"
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"{stage}: {error.code} {error.message}"
    return f"{stage}: {type(error).__name__}: {error}"


def _scrub(reply: str, recipient: str) -> str:
    """A relay's reply often quotes the address; what Beacon stores never does (erasure must find nothing)."""
    return reply.replace(recipient, "<recipient>")


async def _reset(client: aiosmtplib.SMTP) -> bool:
    try:
        await client.rset()
    except _TRANSPORT_ERRORS:
        return False
    return True


async def _close(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(*_TRANSPORT_ERRORS):
        if client.is_connected:
            await client.quit()
    client.close()
