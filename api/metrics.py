"""Prometheus metrics (README "Operations"): `GET /metrics` on the HTTP port (behind `BEACON_METRICS_TOKEN` when
set) or on `BEACON_METRICS_PORT`, for every process `beacon serve` started.

`beacon serve` runs several processes (granian's HTTP workers, the background worker), and a scrape reaches
one of them. So serve gives them one fresh directory in `PROMETHEUS_MULTIPROC_DIR` before any of them starts:
prometheus-client's multiprocess mode then keeps each process's values in a memory-mapped file there, and
whichever process answers a scrape sums the files. Outside `beacon serve` (a standalone `beacon worker`, tests)
the variable is unset and each process exports its own values.

Labels never hold an id, a key, an address or anything else a client chose: routes are templates, an
unknown method is `OTHER`, an unmatched path is `unmatched`."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from litestar import Request, get
from litestar.response import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

from api.errors import ApiError
from api.services import services_of
from domain.base import AppendResult, ConcurrencyConflict
from infra.clock import SystemClock
from infra.event_store import PostgresEventStore
from projections.runner import Projection, lag

log = logging.getLogger("beacon.metrics")

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
SAMPLE_INTERVAL = 1.0
"""Seconds between a process's samples of its in-memory counts and pool use (read by any process's scrape)."""
PROJECTION_SAMPLE_INTERVAL = 5.0
"""Seconds between reads of the projections' lag from the database (a scrape on the HTTP port reads it too)."""
SCRAPE_DATABASE_TIMEOUT = 2.0
"""A scrape during a database outage answers with the last projection values rather than hang."""

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "beacon_http_requests_total",
    "HTTP requests answered through the API (not the widget fast path), by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "beacon_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response (writes include their read-your-writes wait), "
    "by route template and method.",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)
APPENDS = Counter(
    "beacon_appends_total",
    "Appends to the event log (one per command that records events), by outcome: appended, replayed "
    "(a used idempotency key), conflict (the stream moved on; the command is retried) or error.",
    ["outcome"],
)
APPENDED_EVENTS = Counter("beacon_appended_events_total", "Events appended to the log.")
APPEND_DURATION = Histogram(
    "beacon_append_duration_seconds",
    "Time one append takes, its wait for the group commit included.",
    buckets=(0.0005, *_LATENCY_BUCKETS),
)
PUBLIC_DOCUMENTS = Counter(
    "beacon_public_document_responses_total",
    "Public documents answered from memory by the fast path, by document and status "
    "(200 with the body, 304 when the client's ETag was current).",
    ["document", "status"],
)
PROJECTION_POSITION = Gauge(
    "beacon_projection_position",
    "The last log position the projection has applied (its checkpoint).",
    ["projection"],
    multiprocess_mode="mostrecent",
)
PROJECTION_LAG_EVENTS = Gauge(
    "beacon_projection_lag_events",
    "Log positions between the projection's checkpoint and the head of the log (an upper bound on "
    "events it has not applied).",
    ["projection"],
    multiprocess_mode="mostrecent",
)
PROJECTION_LAG_SECONDS = Gauge(
    "beacon_projection_lag_seconds",
    "Age of the oldest event the projection has not applied, 0 when caught up: how stale its read model is.",
    ["projection"],
    multiprocess_mode="mostrecent",
)
PROJECTION_STOPPED = Gauge(
    "beacon_projection_stopped",
    "1 while the projection is stopped by a failure (it never skips the event it failed on; "
    "`beacon projections status` says which and why), else 0.",
    ["projection"],
    multiprocess_mode="mostrecent",
)
PROJECTION_FAILURES = Counter(
    "beacon_projection_failures_total",
    "Times the projection stopped on a failure (an event it could not apply, or its runner failing), counted by "
    "the process that ran it; a restart takes it up again, and a poison event stops it again.",
    ["projection"],
)
POOL_CONNECTIONS = Gauge(
    "beacon_db_pool_connections",
    "Database connections open in Beacon's asyncpg pools, by pool (api, worker) and state (in_use, idle), "
    "summed over the processes.",
    ["pool", "state"],
    multiprocess_mode="livesum",
)
POOL_MAX_CONNECTIONS = Gauge(
    "beacon_db_pool_max_connections",
    "The most connections Beacon's asyncpg pools may open, by pool, summed over the processes.",
    ["pool"],
    multiprocess_mode="livesum",
)
NOTIFICATION_DELIVERIES = Counter(
    "beacon_notification_deliveries_total",
    "Notification delivery attempts recorded, by channel (email, webhook) and outcome: delivered, failed, "
    "forbidden_address, cancelled, or paused (the transport failed; the attempt was given back).",
    ["channel", "outcome"],
)
NOTIFICATION_BACKLOG = Gauge(
    "beacon_notification_intents_pending",
    "Notification intents not yet delivered, failed or cancelled, by channel (the backlog).",
    ["channel"],
    multiprocess_mode="mostrecent",
)
NOTIFICATION_RETRYING = Gauge(
    "beacon_notification_retry_backlog",
    "Pending notification intents that failed at least once and wait for a retry, by channel.",
    ["channel"],
    multiprocess_mode="mostrecent",
)
NOTIFICATION_OLDEST_DUE = Gauge(
    "beacon_notification_oldest_due_seconds",
    "How long the oldest due notification intent has been waiting to be sent, by channel (0 when none is due).",
    ["channel"],
    multiprocess_mode="mostrecent",
)
NOTIFICATION_PAUSED = Gauge(
    "beacon_notification_channel_paused",
    "1 while a channel's transport is paused (email without BEACON_SMTP_URL, or a relay failing), else 0.",
    ["channel"],
    multiprocess_mode="mostrecent",
)

for _channel in ("email", "webhook"):
    # Every (channel, outcome) from zero, so `rate()` and the dashboard see an outcome's first attempt.
    for _outcome in ("delivered", "failed", "forbidden_address", "cancelled", "paused"):
        NOTIFICATION_DELIVERIES.labels(_channel, _outcome)


def record_delivery(channel: str, outcome: str) -> None:
    """The dispatcher's `on_outcome`: one recorded attempt."""
    NOTIFICATION_DELIVERIES.labels(channel, outcome).inc()


def count_projection_failure(name: str) -> None:
    PROJECTION_FAILURES.labels(name).inc()


def expose_projection_failures(names: Sequence[str]) -> None:
    """Every projection's failure counter from 0, so an alert on its increase sees the first failure."""
    for name in names:
        PROJECTION_FAILURES.labels(name)


class DocumentCounts:
    """Plain integers the widget fast path adds to: a Prometheus counter costs a lock and, in multiprocess
    mode, a write to a mapped file per increment, which that path cannot afford. `Sampler` moves the counts
    into `PUBLIC_DOCUMENTS` about once a second and whenever this process answers a scrape."""

    __slots__ = ("not_modified", "ok")

    def __init__(self) -> None:
        self.ok = 0
        self.not_modified = 0


WIDGET = DocumentCounts()
"""This process's widget answers (the public documents' fast path, api/public_documents.py, adds to them)."""


_request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
"""Each (route, method, status)'s counter and histogram, looked up once: `labels()` takes a lock every call."""


def record_request(route: str, method: str, status: int, seconds: float) -> None:
    children = _request_children.get((route, method, status))
    if children is None:
        children = HTTP_REQUESTS.labels(route, method, str(status)), HTTP_DURATION.labels(route, method)
        _request_children[(route, method, status)] = children
    children[0].inc()
    children[1].observe(seconds)


class MeasuredEventStore(PostgresEventStore):
    """The event store, counting and timing each append as its caller sees it."""

    async def append(self, events: Sequence[Any], **kwargs: Any) -> AppendResult:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await super().append(events, **kwargs)
            outcome = "replayed" if result.replayed else "appended"
            if not result.replayed:
                APPENDED_EVENTS.inc(len(result.positions))
            return result
        except ConcurrencyConflict:
            outcome = "conflict"
            raise
        finally:
            APPENDS.labels(outcome).inc()
            APPEND_DURATION.observe(time.perf_counter() - started)


class Sampler:
    """Sets this process's gauges and moves its fast-path counts into Prometheus, every `SAMPLE_INTERVAL`
    (so a scrape answered by another process sees them) and before this process answers a scrape."""

    def __init__(
        self,
        pools: Mapping[str, asyncpg.Pool],
        store: PostgresEventStore | None = None,
        projections: Sequence[Projection] = (),
    ) -> None:
        self.pools = dict(pools)
        self.store = store
        self.projections = list(projections)
        self._moved = DocumentCounts()
        self._task: asyncio.Task[None] | None = None

    def sample_local(self) -> None:
        """The fast-path counts and the pools: memory only, no I/O."""
        counts = (("200", WIDGET.ok, self._moved.ok), ("304", WIDGET.not_modified, self._moved.not_modified))
        for status, now, before in counts:
            if now > before:
                PUBLIC_DOCUMENTS.labels("widget", status).inc(now - before)
        self._moved.ok, self._moved.not_modified = WIDGET.ok, WIDGET.not_modified
        for name, pool in self.pools.items():
            idle = pool.get_idle_size()
            POOL_CONNECTIONS.labels(name, "in_use").set(pool.get_size() - idle)
            POOL_CONNECTIONS.labels(name, "idle").set(idle)
            POOL_MAX_CONNECTIONS.labels(name).set(pool.get_max_size())

    async def sample_projections(self) -> None:
        """Each projection's position, lag and stop, read from the database (any process can: the runner
        may be in another process or on another machine). During an outage the last values stay."""
        if self.store is None or not self.projections:
            return
        try:
            async with asyncio.timeout(SCRAPE_DATABASE_TIMEOUT):
                report = await lag(next(iter(self.pools.values())), self.store, self.projections)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            log.warning("projection metrics not refreshed: %r", error)
            return
        for item in report:
            PROJECTION_POSITION.labels(item.name).set(item.checkpoint)
            PROJECTION_LAG_EVENTS.labels(item.name).set(item.lag)
            PROJECTION_LAG_SECONDS.labels(item.name).set(item.lag_seconds)
            PROJECTION_STOPPED.labels(item.name).set(1 if item.stopped else 0)

    async def sample_notifications(self) -> None:
        """Each notification channel's backlog, retries, oldest due age and pause, from the database."""
        from process_managers.notification_status import delivery_status

        if self.store is None or not self.projections:
            return
        try:
            async with asyncio.timeout(SCRAPE_DATABASE_TIMEOUT):
                report = await delivery_status(next(iter(self.pools.values())), SystemClock().now())
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            log.warning("notification metrics not refreshed: %r", error)
            return
        for channel in report:
            NOTIFICATION_BACKLOG.labels(channel.channel).set(channel.backlog)
            NOTIFICATION_RETRYING.labels(channel.channel).set(channel.retrying)
            NOTIFICATION_OLDEST_DUE.labels(channel.channel).set(channel.oldest_due_seconds)
            NOTIFICATION_PAUSED.labels(channel.channel).set(1 if channel.paused else 0)

    async def sample(self) -> None:
        self.sample_local()
        await self.sample_projections()
        await self.sample_notifications()

    async def start(self) -> None:
        await self.sample()
        self._task = asyncio.create_task(self._run(), name="metrics-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.sample_local()  # what this process counted since the last sample

    async def _run(self) -> None:
        last_projections = time.monotonic()
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            self.sample_local()
            if time.monotonic() - last_projections >= PROJECTION_SAMPLE_INTERVAL:
                last_projections = time.monotonic()
                await self.sample_projections()
                await self.sample_notifications()


_registry: CollectorRegistry | None = None


def registry() -> CollectorRegistry:
    """What a scrape exports: the sum of every process's files under `beacon serve`, else this process's."""
    global _registry
    if _registry is None:
        if os.environ.get(MULTIPROCESS_DIR):
            _registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(_registry)  # type: ignore[no-untyped-call]
        else:
            _registry = REGISTRY
    return _registry


def exposition() -> bytes:
    return generate_latest(registry())


def serve_metrics(host: str, port: int) -> Any:
    """`/metrics` on a port of its own (a thread of this process); no token there, by design: a separate
    port is one the network keeps private. Returns the server, to `shutdown()`."""
    server, _thread = start_http_server(port, addr=host, registry=registry())
    return server


def _bearer_matches(authorization: str | None, token: str) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    services = services_of(request)
    token = services.settings.metrics_token
    if token is not None and not _bearer_matches(request.headers.get("authorization"), token):
        raise ApiError(401, "Send `Authorization: Bearer <BEACON_METRICS_TOKEN>`", code="unauthenticated")
    await services.metrics_sampler.sample()
    # Litestar adds the charset of a text/ type itself.
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST.removesuffix("; charset=utf-8"))
