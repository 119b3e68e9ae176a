"""Custom domains (docs/architecture.md#canonical-urls-and-custom-domains): the host-name rule a page's
`custom_domain` obeys, and the reservation that keeps it unique across pages.

A slug never changes, so its reservation is an idempotency key taken once with the page's creation
(`domain.status_page.slug_reservation`). A custom domain can be released and taken by another page, which
a once-only key cannot express, so each domain is an aggregate of its own — its stream id derived from
the name — that records who holds it. Optimistic concurrency on that stream makes two pages asking for
one domain at once a race with one winner. The page handler claims the domain before recording the
page's change and releases the old one after; `CustomDomain.claim` says what happens to a claim a crash
left between the two appends.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from uuid import UUID, uuid5

import idna
from eventsourcing.domain import Aggregate, event

from domain.base import ActorData, BeaconAggregate, DomainError

_NAMESPACE = UUID("3b0d6c1e-8f4a-4d2b-9a57-6e1f0c9d2a44")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MAX_HOST_LENGTH = 253


def domain_stream_id(domain: str) -> UUID:
    """The reservation stream of a (normalised) custom domain."""
    return uuid5(_NAMESPACE, domain)


def normalise_custom_domain(value: str, *, reserved_host: str | None = None) -> str:
    """The domain as stored: lower-case IDNA (A-labels, so `bücher.test` is `xn--bcher-kva.test`), without a
    trailing dot. A port, an IP literal, a single label, and the host of Beacon's own public URL are
    refused: a request's `Host` is matched against it exactly
    (docs/architecture.md#canonical-urls-and-custom-domains)."""
    host = value.strip().rstrip(".")
    if not host:
        raise InvalidCustomDomain("custom_domain must be a host name such as status.example.com")
    if ":" in host or "/" in host or "[" in host:
        raise InvalidCustomDomain("custom_domain is a host name only: no scheme, port or path")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise InvalidCustomDomain("custom_domain must be a host name, not an IP address")
    try:
        host = idna.encode(host, uts46=True).decode("ascii").lower()
    except idna.IDNAError as error:
        raise InvalidCustomDomain(f"custom_domain is not a valid host name: {error}") from None
    labels = host.split(".")
    if len(host) > MAX_HOST_LENGTH or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidCustomDomain("custom_domain is not a valid host name")
    if len(labels) < 2 or labels[-1].isdigit():
        raise InvalidCustomDomain("custom_domain must be a fully qualified host name such as status.example.com")
    if reserved_host is not None and host == reserved_host.lower().rstrip("."):
        raise InvalidCustomDomain(
            f"custom_domain {host!r} is Beacon's own public host (BEACON_PUBLIC_URL); choose another"
        )
    return host


class CustomDomain(BeaconAggregate):
    """Who holds one custom domain (`holder`, a page's stream id; None once released)."""

    TOPIC = "beacon.CustomDomain"
    STREAM_TYPE = "custom_domain"

    class Created(Aggregate.Created):
        TOPIC = "beacon.CustomDomain.Reserved"
        domain: str
        status_page_id: UUID
        by: ActorData

    @event(Created)
    def __init__(self, *, id: UUID, domain: str, status_page_id: UUID, by: ActorData, timestamp: datetime) -> None:
        self.domain = domain
        self.holder: UUID | None = status_page_id
        self.claimed_at = timestamp

    class Claimed(Aggregate.Event):
        TOPIC = "beacon.CustomDomain.Claimed"
        status_page_id: UUID
        by: ActorData

    @event(Claimed)
    def _claimed(self, *, status_page_id: UUID, by: ActorData, timestamp: datetime) -> None:
        self.holder = status_page_id
        self.claimed_at = timestamp

    class Released(Aggregate.Event):
        TOPIC = "beacon.CustomDomain.Released"
        by: ActorData

    @event(Released)
    def _released(self, *, by: ActorData, timestamp: datetime) -> None:
        self.holder = None

    def claim(self, *, status_page_id: UUID, holder_still_uses: bool, at: datetime, by: ActorData) -> None:
        """Take the domain for a page, or raise `CustomDomainTaken`. `holder_still_uses` is the caller's
        answer for the current holder: False when that page has changed since its claim and no longer
        uses the domain — a claim whose page update never happened (a crash between the two appends) or
        whose release was lost; such a claim is taken over. A holder that has not changed since its claim
        may be finishing its own update, so its claim stands."""
        if self.holder == status_page_id:
            return
        if self.holder is not None and holder_still_uses:
            raise CustomDomainTaken(self.domain, self.holder)
        self._claimed(status_page_id=status_page_id, by=by, timestamp=at)

    def release(self, *, status_page_id: UUID, at: datetime, by: ActorData) -> None:
        """Give the domain up if `status_page_id` holds it (another holder's claim is not this page's to drop)."""
        if self.holder == status_page_id:
            self._released(by=by, timestamp=at)


class InvalidCustomDomain(DomainError):
    """Raised when a custom domain is not a lower-case IDNA host name without port, or is an IP address or
    Beacon's own public host."""

    field = "custom_domain"


class CustomDomainTaken(DomainError):
    """Raised when another status page already uses the custom domain a page asks for."""

    field = "custom_domain"
    code = "conflict"

    def __init__(self, domain: str, holder: UUID, *, holder_slug: str | None = None) -> None:
        self.domain = domain
        self.holder = holder
        named = f" {holder_slug!r}" if holder_slug else ""
        super().__init__(f"custom_domain {domain!r} is already used by status page{named}; remove it there first")
