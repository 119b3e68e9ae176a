"""Where Beacon's processes are assembled (docs/architecture.md#processes), and nowhere else: the
background worker (projection runner, maintenance scheduler, their pool), the HTTP process (API pool,
watermarks, widget cache, metrics sampler and, when asked, a background worker of its own), the
standalone `beacon worker`, and `beacon serve` (HTTP workers plus, optionally, one background worker
process). `api/cli.py` parses arguments and calls these; `api/app.py` builds the Litestar app around
`http_process`."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import asyncpg

from api.auth import KeyCache
from api.rate_limit import TokenBuckets
from api.services import Services
from api.shutdown import bounded, close_pool
from domain.base import SYSTEM, CommandContext, EventStore
from domain.public_base_url import record_public_base_url
from infra.api_keys import ADMIN, create_key, has_any_key
from infra.clock import Clock, SystemClock
from infra.contacts import purge_erased
from infra.db import create_pool, database_url, worker_pool_size
from infra.follow import dedicated
from infra.logs import configure_logging, logging_config, resolve_log_format
from infra.mail import default_mail_url, mail_transport
from infra.migrate import migrate
from infra.settings import Settings, secret_key_bytes
from infra.webhooks import WebhookSender, target_resolver
from process_managers.maintenance_scheduler import MaintenanceScheduler
from process_managers.notification_dispatcher import NotificationDispatcher, RetrySchedule
from projections.blue_green import ReaderHeartbeat, VersionBuilder, unbuilt, wait_until_built
from projections.maintenance_schedule import MaintenanceSchedule
from projections.notification_outbox import NotificationOutbox
from projections.registry import all_projections
from projections.runner import Projection, ProjectionRunner, ensure_tables
from projections.versions import key, search_path
from projections.watermark import Watermarks

if TYPE_CHECKING:
    from api.metrics import MeasuredEventStore

# `api.metrics`, `api.public_documents` and `api.widget` import prometheus-client, so they are imported inside
# the functions that run a process, never at the top: granian forks its HTTP workers from the `beacon serve`
# process, and a worker keeps its metrics in the shared directory only if prometheus-client was first imported
# after `serve` set PROMETHEUS_MULTIPROC_DIR (`share_metrics`).

try:  # uvloop's event loop where it is installed (everywhere but Windows), as granian uses for the API
    from uvloop import run as run_async
except ImportError:  # pragma: no cover
    from asyncio import run as run_async  # type: ignore[assignment]

log = logging.getLogger("beacon.processes")


# --- the background worker: projections and process managers ------------------------------------------------------


@dataclass
class BackgroundWorker:
    """What keeps the read models current and moves maintenance windows on time, on a pool of its own."""

    pool: asyncpg.Pool
    store: MeasuredEventStore
    runner: ProjectionRunner
    scheduler: MaintenanceScheduler | None
    """None when the maintenance schedule is not among the projections (some tests run a subset)."""
    dispatcher: NotificationDispatcher | None = None
    """None when the notification outbox is not among the projections."""


@contextlib.asynccontextmanager
async def background_worker(
    settings: Settings, url: str, clock: Clock, projections: Sequence[Projection]
) -> AsyncIterator[BackgroundWorker]:
    """The projection runner and the maintenance scheduler until the block ends. Their own pool, so
    projections holding its connections can never starve an HTTP process's requests."""
    from api.metrics import MeasuredEventStore, count_projection_failure, expose_projection_failures

    expose_projection_failures([key(p) for p in projections])
    pool = await create_pool(
        url, settings, max_size=worker_pool_size(len(projections)), search_path=search_path(projections)
    )
    try:
        store = MeasuredEventStore(pool)
        await record_public_base_url_setting(settings, store, clock)
        runner = ProjectionRunner(
            pool,
            store,
            projections,
            poll_interval=settings.projection_poll_interval,
            batch_size=settings.projection_batch_size,
            unbuilt=await unbuilt(pool, projections),
            on_failure=count_projection_failure,
        )
        await runner.start()  # creates the schedule table the scheduler reads
        # Versions of this code the database lacks are built beside the runner; old ones nobody reads are dropped
        # (docs/adr/0006-projection-versions.md).
        builder = VersionBuilder(pool, store, projections, runner, retry_interval=settings.projection_poll_interval)
        await builder.start()
        heartbeat = ReaderHeartbeat(
            pool, [key(p) for p in projections], settings.reader_heartbeat_seconds, retire_old=True
        )
        await heartbeat.start()
        scheduler: MaintenanceScheduler | None = None
        try:
            if any(p.name == MaintenanceSchedule.name for p in projections):
                scheduler = MaintenanceScheduler(
                    pool,
                    store,
                    clock,
                    interval=settings.projection_poll_interval,
                    connect=partial(dedicated, url, settings),
                )
                await scheduler.start()
            dispatcher: NotificationDispatcher | None = None
            if any(p.name == NotificationOutbox.name for p in projections):
                dispatcher = await notification_dispatcher(settings, url, pool, store, clock)
                await dispatcher.start()
            try:
                yield BackgroundWorker(pool, store, runner, scheduler, dispatcher)
            finally:
                if dispatcher is not None:
                    await bounded(dispatcher.stop(), "notification dispatcher")
        finally:
            if scheduler is not None:
                await bounded(scheduler.stop(), "scheduler")
            await bounded(heartbeat.stop(), "projection readers' heartbeat")
            await bounded(builder.stop(), "projection version builder")
            await bounded(runner.stop(), "projection runner")
    finally:
        await close_pool(pool)


async def notification_dispatcher(
    settings: Settings, url: str, pool: asyncpg.Pool, store: MeasuredEventStore, clock: Clock
) -> NotificationDispatcher:
    """The dispatcher as the settings configure it (docs/architecture.md#notification-delivery)."""
    from api.metrics import record_delivery

    return NotificationDispatcher(
        pool,
        store,
        clock,
        mail=mail_transport(settings.smtp_url, embedded=settings.database_url is None, data_dir=settings.data_dir),
        webhooks=WebhookSender(target_resolver(allow_private=settings.webhook_allow_private)),
        secret_key=await asyncio.to_thread(secret_key_bytes, settings),
        schedule=RetrySchedule(settings.notify_retry_schedule),
        mail_from=settings.mail_from,
        fallback_url=f"http://{settings.host}:{settings.port}",
        concurrency=settings.notify_concurrency,
        claim_seconds=settings.notify_claim_seconds,
        poll_interval=settings.projection_poll_interval,
        connect=partial(dedicated, url, settings),
        on_outcome=record_delivery,
    )


async def run_worker(settings: Settings, stop: asyncio.Event, *, metrics_port: int | None = None) -> None:
    """`beacon worker`: a background worker, and its metrics, until `stop` is set; `/metrics` on
    `metrics_port` if given."""
    from api.metrics import Sampler, serve_metrics

    url = await asyncio.to_thread(database_url, settings)
    projections = all_projections()
    async with contextlib.AsyncExitStack() as stack:
        conn: asyncpg.Connection = await asyncpg.connect(url)
        try:
            await migrate(conn)
            await purge_erased(conn)
        finally:
            await conn.close()
        worker = await stack.enter_async_context(background_worker(settings, url, SystemClock(), projections))
        sampler = Sampler({"worker": worker.pool}, worker.store, projections)
        await sampler.start()
        stack.push_async_callback(sampler.stop)
        if metrics_port is not None:
            stack.callback(serve_metrics(settings.host, metrics_port).shutdown)
        freeze_startup_objects()
        await stop.wait()


def freeze_startup_objects() -> None:
    """Take what a server process holds once it has started (modules, templates, pools, the documents it
    serves) out of the cyclic garbage collector's walks: it lives as long as the process, and every full
    collection used to walk it again. Under write load that was about 6% of each process's CPU (py-spy);
    after it, 1% in the HTTP worker and 4% in the background worker. Only server processes call it: a test
    process starting many apps would keep each one's cycles for good."""
    gc.collect()
    gc.freeze()


async def run_worker_until_signalled(settings: Settings, *, metrics_port: int | None = None) -> int:
    """`beacon worker` in the foreground: until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print("beacon worker: projections running; Ctrl-C to stop", flush=True)
    await run_worker(settings, stop, metrics_port=metrics_port)
    return 0


async def record_public_base_url_setting(settings: Settings, store: EventStore, clock: Clock) -> None:
    """Record `BEACON_PUBLIC_URL` in the log when it differs from the last recorded value, so renderers read
    it from the log (docs/architecture.md#canonical-urls-and-custom-domains)."""
    context = CommandContext(now=clock.now(), actor=SYSTEM)
    if await record_public_base_url(store, settings.public_url, context):
        log.info("public base URL recorded", extra={"public_url": settings.public_url})


# --- the HTTP process -----------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def http_process(
    settings: Settings,
    *,
    clock: Clock | None = None,
    run_worker: bool = True,
    projections: Sequence[Projection] | None = None,
) -> AsyncIterator[Services]:
    """What one HTTP process holds while it serves: the API pool (migrated), read-your-writes watermarks,
    the widget cache, the metrics sampler and, unless this process is an API-only replica, a background
    worker of its own. Everything is stopped, in reverse order, when the block ends."""
    from api.metrics import MeasuredEventStore, Sampler
    from api.public_documents import ACQUIRE_TIMEOUT, DocumentCache, DocumentSource
    from api.public_hosts import HostSource
    from api.public_site import SiteSource
    from api.widget import WidgetSource
    from projections.public_hosts import PublicHosts
    from projections.public_site import PublicSite

    clock = clock or SystemClock()
    chosen = list(projections) if projections is not None else all_projections()
    secret_key = await asyncio.to_thread(secret_key_bytes, settings)
    url = await asyncio.to_thread(database_url, settings)
    pool = await create_pool(url, settings, stateless=True, search_path=search_path(chosen))
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            await ensure_tables(conn, chosen)
            # A database restored from before an erasure must not give the contact back
            # (docs/architecture.md#subscribers).
            await purge_erased(conn)
        store = MeasuredEventStore(pool)
        watermarks = Watermarks(
            pool,
            {key(p) for p in chosen if p.writes_wait},
            poll_interval=min(0.05, settings.projection_poll_interval),
        )
        await watermarks.start()
        try:
            async with contextlib.AsyncExitStack() as stack:
                worker: BackgroundWorker | None = None
                pools = {"api": pool}
                if run_worker:
                    worker = await stack.enter_async_context(background_worker(settings, url, clock, chosen))
                    pools["worker"] = worker.pool
                # This code's projection versions are read from here on; until each is built whole, this process
                # serves nothing (it is not ready), rather than a partial or another version's read model.
                readers = ReaderHeartbeat(pool, [key(p) for p in chosen], settings.reader_heartbeat_seconds)
                await readers.start()
                stack.push_async_callback(lambda: bounded(readers.stop(), "projection readers' heartbeat"))
                await wait_until_built(pool, chosen, settings.projection_poll_interval)
                # Every process holds every hot public document (docs/architecture.md#5-the-widget-is-bytes): the
                # widget, and the public site (docs/architecture.md#public-site) when its projection runs.
                sources: list[DocumentSource] = [WidgetSource()]
                if any(p.name == PublicHosts.name for p in chosen):  # custom domains (host aliases)
                    sources.append(HostSource())
                if any(p.name == PublicSite.name for p in chosen):
                    sources.append(SiteSource(cache_bytes=settings.public_cache_mb * 1024 * 1024))
                cache = DocumentCache(
                    pool,
                    sources,
                    connect=partial(dedicated, url, settings, timeout=ACQUIRE_TIMEOUT),
                    poll_interval=min(0.5, settings.projection_poll_interval),
                    trusted_proxies=settings.trusted_proxies,
                )
                await cache.start()
                stack.push_async_callback(lambda: bounded(cache.stop(), "public documents"))
                # This process's pools (the worker's too when it runs one), widget counts and projection lag.
                sampler = Sampler(pools, store, chosen)
                await sampler.start()
                stack.push_async_callback(sampler.stop)
                yield Services(
                    settings=settings,
                    clock=clock,
                    pool=pool,
                    store=store,
                    projections=chosen,
                    watermarks=watermarks,
                    key_cache=KeyCache(),
                    rate_limits=TokenBuckets(
                        rate=settings.rate_limit_per_minute / 60, burst=settings.rate_limit_per_minute
                    ),
                    retrospective_limits=TokenBuckets(
                        rate=settings.retrospective_rate_per_second, burst=settings.retrospective_burst
                    ),
                    public_documents=cache,
                    metrics_sampler=sampler,
                    secret_key=secret_key,
                    runner=worker.runner if worker else None,
                    scheduler=worker.scheduler if worker else None,
                )
        finally:
            await bounded(watermarks.stop(), "watermarks")
    finally:
        await close_pool(pool)


# --- beacon serve ---------------------------------------------------------------------------------------------------

_BOOTSTRAP_LOCK = 0x62656164  # "bead"


async def bootstrap_admin_key(settings: Settings) -> None:
    """First start with no key at all: make an admin key, print it once, keep a 0600 copy."""
    conn: asyncpg.Connection = await asyncpg.connect(await asyncio.to_thread(database_url, settings))
    try:
        await migrate(conn)
        # Replicas starting together queue here, so exactly one of them makes the key.
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _BOOTSTRAP_LOCK)
            if await has_any_key(conn):
                return
            key, token = await create_key(conn, name="bootstrap admin", scopes=(ADMIN,), now=SystemClock().now())
    finally:
        await conn.close()
    path = settings.data_dir / "bootstrap-admin-key"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    print(f"No API key existed, so Beacon created an admin key ({key.id}). It is shown once:\n\n    {token}\n")
    print(f"(A copy is in {path}, readable only by you.)")


async def _record_public_base_url_once(settings: Settings) -> None:
    from infra.event_store import PostgresEventStore

    pool = await create_pool(await asyncio.to_thread(database_url, settings), settings, max_size=2)
    try:
        await record_public_base_url_setting(settings, PostgresEventStore(pool), SystemClock())
    finally:
        await close_pool(pool)


def _worker_process(env: dict[str, str]) -> None:
    """The background worker process `beacon serve` starts beside its HTTP workers."""
    os.environ.update(env)
    settings = Settings.from_env()
    configure_logging(settings.log_format)
    # Its metrics reach /metrics through the directory `beacon serve` shares, not a port of its own.
    sys.exit(run_async(run_worker_until_signalled(settings)))


def share_metrics(host: str, port: int, metrics_port: int | None) -> tuple[str, Any]:
    """Before any worker starts: a fresh directory where every process of this `beacon serve` keeps its
    metrics (api/metrics.py), so one scrape covers them all; and, when `metrics_port` is not the HTTP
    port, `/metrics` served there by this process. Returns the directory and that server (or None)."""
    directory = tempfile.mkdtemp(prefix="beacon-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory  # read when prometheus-client is imported: not before here
    os.environ["BEACON_PORT"] = str(port)  # the HTTP workers compare it with BEACON_METRICS_PORT
    if metrics_port is None or metrics_port == port:
        os.environ.pop("BEACON_METRICS_PORT", None)
        return directory, None
    os.environ["BEACON_METRICS_PORT"] = str(metrics_port)
    from api.metrics import serve_metrics

    return directory, serve_metrics(host, metrics_port)


def hold_port(host: str, port: int) -> socket.socket:
    """Listen on host:port without `SO_REUSEPORT`, or raise OSError when something already listens there.

    Granian's workers bind with `SO_REUSEPORT`, so a second Beacon on a taken port would start happily and
    the kernel would split requests between two servers with different data, and a port held by another
    program fails only after the database work, with a traceback. A socket without `SO_REUSEPORT` cannot
    join either. `SO_REUSEADDR` is set so that connections of a Beacon that just stopped, still in
    TIME_WAIT, do not count as a taken port. The socket listens (a bound-only socket would not stop
    another one bound with `SO_REUSEADDR`) and is held until just before granian binds, so that two
    Beacons started together, each spending seconds on the database, cannot both pass the check. A race
    remains: a Beacon started in the instant between our close and granian's workers binding (about a
    second while they spawn) can pass it too. Granian cannot be handed a bound socket on Linux, and only
    a lock shared by every program that might listen there could close that gap."""
    [(family, kind, proto, _, address), *_] = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()
    except OSError:
        sock.close()
        raise
    return sock


def serve(settings: Settings, *, host: str, port: int, workers: int, run_worker: bool, metrics_port: int | None) -> int:
    """`beacon serve`: granian's `workers` HTTP processes (each `api.asgi:app_from_env`, an API-only
    `http_process`) and, when `run_worker`, one background worker process beside them. Returns the exit code."""
    from granian import Granian
    from granian.constants import Interfaces

    try:
        probe = hold_port(host, port)
    except OSError as error:  # socket.gaierror (an unknown host) included
        taken = error.errno == errno.EADDRINUSE
        reason = "another program (or another Beacon) listens there" if taken else error.strerror or str(error)
        print(f"beacon serve: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        return 1
    with probe:
        # Resolve the database once here, so workers share one embedded server (or the given URL).
        url = database_url(settings)
        if settings.database_url is None:
            # The children see DATABASE_URL, so the embedded defaults that depend on its absence are fixed here:
            # the generated secret key, and mail as .eml files under the data directory.
            os.environ["BEACON_SECRET_KEY"] = secret_key_bytes(settings).decode()
            if not settings.smtp_url:
                os.environ["BEACON_SMTP_URL"] = default_mail_url(settings.data_dir)
                print(f"BEACON_SMTP_URL is not set: mail is written as .eml files under {settings.data_dir / 'mail'}")
        os.environ["DATABASE_URL"] = url
        settings = Settings.from_env()
        asyncio.run(bootstrap_admin_key(settings))
        if not run_worker:  # otherwise the worker process records it as it starts
            asyncio.run(_record_public_base_url_once(settings))
    try:
        metrics_dir, metrics = share_metrics(host, port, metrics_port)
    except OSError as error:
        print(f"beacon serve: cannot serve metrics on port {metrics_port}: {error.strerror}", file=sys.stderr)
        return 1
    worker: multiprocessing.process.BaseProcess | None = None
    if run_worker:
        worker = multiprocessing.get_context("spawn").Process(target=_worker_process, args=({"DATABASE_URL": url},))
        worker.start()
    print(f"Beacon is listening on http://{host}:{port}", flush=True)
    try:
        Granian(
            "api.asgi:app_from_env",
            factory=True,
            address=host,
            port=port,
            workers=workers,
            interface=Interfaces.ASGI,
            log_access=False,  # Beacon writes one line per request itself (api/request_log.py)
            log_dictconfig=logging_config(resolve_log_format(settings.log_format)),
        ).serve()
    finally:
        if worker is not None:
            worker.terminate()
            worker.join(10)
        if metrics is not None:
            metrics.shutdown()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
