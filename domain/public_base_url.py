"""Beacon's public base URL, recorded in the log (docs/architecture.md#canonical-urls-and-custom-domains).

`BEACON_PUBLIC_URL` is where Beacon's public pages are reached when a page has neither its own
`public_url` nor a custom domain. Renderers must not read it from the environment: a document would then
depend on the process that rendered it, and a rebuild elsewhere (or `as_of` a year later) would not
reproduce it. So `beacon serve` and `beacon worker` record the setting as an event whenever it differs
from the last recorded value, and renderers fold that event like any other.

One aggregate with a fixed id holds every configuration, so two processes starting together with the
same new value append it once (optimistic concurrency), and a reader finds the value as of any position
with one probe of the stream.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic

from domain.base import (
    MAX_RETRIES,
    SYSTEM,
    ActorData,
    BeaconAggregate,
    CommandContext,
    ConcurrencyConflict,
    DomainError,
    EventStore,
    NotFound,
    WriteConflict,
    load,
    save,
)

PUBLIC_BASE_URL_ID: UUID = uuid5(UUID("6f1c2a5e-4f0b-4c7e-9d59-0b7a3c1e8d21"), "beacon.PublicBaseUrl")
"""The one stream of the public base URL."""


class PublicBaseUrl(BeaconAggregate):
    """The public base URL Beacon is reached at (None: not configured)."""

    TOPIC = "beacon.PublicBaseUrl"
    STREAM_TYPE = "public_base_url"

    class Created(Aggregate.Created):
        """`PublicBaseUrlConfigured`: the setting changed. The first one creates the stream and every
        later one continues it, so readers know one event type (named `Created` only because the library
        names an aggregate's creation event so; `PublicBaseUrlConfigured` below is the same class)."""

        TOPIC = "beacon.PublicBaseUrl.Configured"
        url: str | None
        by: ActorData

        def mutate(self, aggregate: Any) -> Any:
            if aggregate is None:
                return super().mutate(None)
            # A later configuration: checked (stream, version) and applied like any other event.
            return Aggregate.Event.mutate(self, aggregate)

        def apply(self, aggregate: Any) -> None:
            aggregate.url = self.url

    @event(Created)
    def __init__(self, *, id: UUID, url: str | None, by: ActorData, timestamp: datetime) -> None:
        self.url = url

    @classmethod
    def first(cls, *, url: str, at: datetime) -> PublicBaseUrl:
        return cls(id=PUBLIC_BASE_URL_ID, url=url, by=SYSTEM.as_data(), timestamp=at)

    def configure(self, *, url: str | None, at: datetime) -> None:
        """Record `url` unless it is the current value (a restart with the same setting records nothing)."""
        if url == self.url:
            return
        self.trigger_event(
            self.Created, url=url, by=SYSTEM.as_data(), timestamp=at, originator_topic=get_topic(type(self))
        )


PublicBaseUrlConfigured = PublicBaseUrl.Created
"""The event readers fold (TOPIC `beacon.PublicBaseUrl.Configured`, fields `url`, `by`, `timestamp`)."""


def check_base_url(url: str | None) -> str | None:
    """An absolute http(s) URL without query or fragment, kept without its trailing slash; None when unset."""
    if url is None or not url.strip():
        return None
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise InvalidPublicBaseUrl(f"BEACON_PUBLIC_URL must be an absolute http(s) URL, not {url!r}")
    return url.rstrip("/")


def base_url_host(url: str | None) -> str | None:
    """The host name of a public base URL (lower case), which no page may take as its custom domain."""
    return urlsplit(url).hostname if url else None


class InvalidPublicBaseUrl(DomainError, ValueError):
    """Raised when `BEACON_PUBLIC_URL` is not an absolute http(s) URL (a setting an operator must fix: the
    command says so and exits, as for any invalid setting)."""


async def record_public_base_url(store: EventStore, url: str | None, context: CommandContext) -> bool:
    """Append `PublicBaseUrlConfigured` when `url` differs from the last recorded value; True if it did.
    An unset setting on a log that never had one records nothing."""
    url = check_base_url(url)
    for _ in range(MAX_RETRIES):
        try:
            current = await load(store, PublicBaseUrl, PUBLIC_BASE_URL_ID)
        except NotFound:
            if url is None:
                return False
            current = PublicBaseUrl.first(url=url, at=context.now)
        else:
            current.configure(url=url, at=context.now)
        try:
            result = await save(store, current, context)
        except ConcurrencyConflict:  # another process recorded it first: compare with what it recorded
            continue
        return bool(result.positions)
    raise WriteConflict("the public base URL is being recorded concurrently; try again")
