"""Webhook deliveries: Statuspage's body, signed per Standard Webhooks, POSTed with httpx
(docs/architecture.md#notification-delivery).

Every attempt resolves the target's name again and refuses a loopback, private, link-local or metadata
address (`infra.webhook_targets`), then connects to the address it checked — not to whatever the name
resolves to a moment later — with the certificate still checked against the name. Redirects are not
followed (a redirect is a failure, and could point anywhere), proxy variables are ignored, and the answer's
body is never read.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import hmac
import ipaddress
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

TIMEOUT = 15.0
"""Seconds for the whole delivery: a receiver that has not answered 2xx by then failed."""
USER_AGENT = "Beacon-Webhooks/1"

WebhookOutcomeKind = Literal["delivered", "failed", "gone", "forbidden_address"]


@dataclass(frozen=True)
class WebhookOutcome:
    kind: WebhookOutcomeKind
    http_status: int | None = None
    retry_after: float | None = None
    """Seconds the receiver asked us to wait (`Retry-After`), if it did."""
    detail: str | None = None


class ForbiddenTarget(Exception):
    """Raised when a webhook's name resolves to an address deliveries must never reach."""


Resolve = Callable[[str], Awaitable[str]]
"""A URL's host -> the one checked address to connect to, or `ForbiddenTarget`."""


def target_resolver(*, allow_private: bool) -> Resolve:
    """The rule every delivery follows (`infra.webhook_targets`, the same as at creation): a name that now
    resolves to a refused address, or a URL no longer allowed, is `ForbiddenTarget`; one that resolves to
    nothing is an `OSError` (a failure like a refused connection, retried)."""
    from domain.subscriber import InvalidWebhookUrl
    from infra.webhook_targets import check_target

    async def resolve(url: str) -> str:
        try:
            addresses = await check_target(url, allow_private=allow_private)
        except InvalidWebhookUrl as error:
            if error.code == "unresolvable":
                raise OSError(error.message) from None
            raise ForbiddenTarget(error.message) from None
        return str(addresses[0])

    return resolve


def sign(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` under each `whsec_…`
    secret, space-separated (two during a rotation's overlap, so a receiver on either secret verifies)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    signatures = []
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_") + "==")
        digest = hmac.new(key, signed, hashlib.sha256).digest()
        signatures.append("v1," + base64.b64encode(digest).decode("ascii"))
    return " ".join(signatures)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class WebhookSender:
    """One httpx client for every delivery of a worker (connections are reused per receiver)."""

    def __init__(
        self,
        resolve: Resolve,
        *,
        timeout: float = TIMEOUT,
        max_connections: int = 100,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """`verify`: how receivers' certificates are checked (the default: the usual public authorities)."""
        self.resolve = resolve
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,  # HTTP(S)_PROXY must not route deliveries (nor hide the address we checked)
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"user-agent": USER_AGENT},
        )

    async def deliver(
        self, url: str, *, message_id: str, body: bytes, secrets: Sequence[str], now: datetime
    ) -> WebhookOutcome:
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            address = await self.resolve(url)
        except ForbiddenTarget as error:
            return WebhookOutcome("forbidden_address", detail=str(error))
        except OSError as error:  # the name does not resolve (now): a failure like a refused connection
            return WebhookOutcome("failed", detail=f"cannot resolve {host}: {error}")
        timestamp = int(now.timestamp())
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secrets, message_id, timestamp, body),
            "host": parts.netloc.rpartition("@")[2],
        }
        literal = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
        netloc = literal + (f":{parts.port}" if parts.port else "")
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        try:
            # httpx's timeout bounds each phase; the receiver's whole answer must come within `timeout`.
            async with (
                asyncio.timeout(self.timeout),
                self._client.stream(
                    "POST", pinned, content=body, headers=headers, extensions={"sni_hostname": host}
                ) as response,
            ):
                status = response.status_code
                retry_after = retry_after_seconds(response.headers.get("retry-after"), now)
        except (httpx.TimeoutException, TimeoutError):
            return WebhookOutcome("failed", detail=f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as error:
            return WebhookOutcome("failed", detail=f"{type(error).__name__}: {error}")
        if 200 <= status < 300:
            return WebhookOutcome("delivered", http_status=status)
        if status == 410:
            return WebhookOutcome("gone", http_status=status)
        return WebhookOutcome("failed", http_status=status, retry_after=retry_after)

    async def close(self) -> None:
        await self._client.aclose()
