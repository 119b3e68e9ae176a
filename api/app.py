"""`create_app(settings)`: the one composition root. The lifespan opens the pool, applies migrations,
starts the projection runner (unless this process is an API-only replica) and the read-your-writes
watermarks, and closes everything on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import asyncpg
from litestar import Litestar, Router
from litestar.openapi import OpenAPIConfig
from litestar.types import ControllerRouterHandler

from api.auth import KeyCache, require_api_key
from api.body import check_json_body
from api.controllers.api_keys import ApiKeyController
from api.controllers.audit import AuditController
from api.controllers.availability import ComponentAvailabilityController
from api.controllers.components import StatusPageComponentController
from api.controllers.health import health_handlers
from api.controllers.incidents import (
    StatusPageIncidentController,
    StatusPageIncidentUpdateController,
    StatusPageRetrospectiveIncidentController,
)
from api.controllers.maintenances import StatusPageMaintenanceController, StatusPageMaintenanceUpdateController
from api.controllers.status_pages import StatusPageController
from api.controllers.structures import StatusPageStructureController
from api.controllers.widget import StatusPageWidgetController
from api.errors import EXCEPTION_HANDLERS
from api.metrics import MeasuredEventStore, metrics_endpoint, metrics_lifespan
from api.openapi import BeaconOpenAPIJson, correct_allow_header
from api.rate_limit import TokenBuckets
from api.request_id import add_request_id_header
from api.request_log import RequestObserver
from api.services import Services
from api.shutdown import bounded, close_pool
from api.widget import WidgetLitestar, widget_lifespan
from infra.clock import Clock, SystemClock
from infra.db import create_pool, database_url, worker_pool_size
from infra.migrate import migrate
from infra.settings import Settings
from projections.maintenance_schedule import MaintenanceSchedule
from projections.registry import all_projections
from projections.runner import Projection, ProjectionRunner, ensure_tables
from projections.scheduler import MaintenanceScheduler
from projections.watermark import Watermarks

log = logging.getLogger("beacon.app")

MAX_BODY_BYTES = 64 * 1024

V2_HANDLERS: list[ControllerRouterHandler] = [
    ApiKeyController,
    StatusPageController,
    StatusPageStructureController,
    StatusPageComponentController,
    AuditController,
    StatusPageWidgetController,
    StatusPageIncidentController,
    StatusPageIncidentUpdateController,
    StatusPageRetrospectiveIncidentController,
    StatusPageMaintenanceController,
    StatusPageMaintenanceUpdateController,
    ComponentAvailabilityController,
]
"""Every authenticated `/v2` controller. The authorisation-matrix test walks the resulting routes."""


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    run_worker: bool = True,
    projections: Sequence[Projection] | None = None,
) -> Litestar:
    clock = clock or SystemClock()
    chosen = list(projections) if projections is not None else all_projections()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        url = await asyncio.to_thread(database_url, settings)
        pool = await create_pool(url, settings, stateless=True)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
                await ensure_tables(conn, chosen)
            store = MeasuredEventStore(pool)
            watermarks = Watermarks(
                pool,
                {p.name for p in chosen if p.writes_wait},
                poll_interval=min(0.05, settings.projection_poll_interval),
            )
            services = Services(
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
            )
            await watermarks.start()
            # The runner and scheduler get their own pool, so projections holding their connections
            # can never starve the API's requests.
            worker_pool: asyncpg.Pool | None = None
            scheduler: MaintenanceScheduler | None = None
            if run_worker:
                worker_pool = await create_pool(url, settings, max_size=worker_pool_size(len(chosen)))
                worker_store = MeasuredEventStore(worker_pool)
                services.runner = ProjectionRunner(
                    worker_pool,
                    worker_store,
                    chosen,
                    poll_interval=settings.projection_poll_interval,
                    batch_size=settings.projection_batch_size,
                )
                await services.runner.start()
                if any(p.name == MaintenanceSchedule.name for p in chosen):
                    scheduler = MaintenanceScheduler(
                        worker_pool, worker_store, clock, interval=settings.projection_poll_interval, dsn=url
                    )
                    await scheduler.start()
            app.state.services = services
            app.state.scheduler = scheduler
            try:
                yield
            finally:
                if scheduler is not None:
                    await bounded(scheduler.stop(), "scheduler")
                if services.runner is not None:
                    await bounded(services.runner.stop(), "projection runner")
                if worker_pool is not None:
                    await close_pool(worker_pool)
                await bounded(watermarks.stop(), "watermarks")
        finally:
            await close_pool(pool)

    v2 = Router(path="/v2", route_handlers=V2_HANDLERS, guards=[require_api_key], before_request=check_json_body)
    # /metrics is on the HTTP port unless BEACON_METRICS_PORT names another (README "Operations").
    metrics = [metrics_endpoint] if settings.metrics_on_http_port else []
    app = WidgetLitestar(
        route_handlers=[v2, *health_handlers, *metrics],
        lifespan=[lifespan, widget_lifespan, metrics_lifespan],
        logging_config=None,  # records go to the root logger, which infra.logs configures
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[add_request_id_header, correct_allow_header],
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="Beacon",
            version="2.0.0",
            path="/schema",
            render_plugins=[BeaconOpenAPIJson()],  # the JSON itself at /schema too: no UI, no CDN
        ),
        debug=False,
    )
    # Behind the widget fast path (whose answers only /metrics counts) and around everything Litestar does.
    app.asgi_handler = RequestObserver(app.asgi_handler)
    return app
