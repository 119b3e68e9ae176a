"""`create_app(settings)`: the Litestar app of an HTTP process — routes, hooks, the error map. What the
process holds while it serves (pools, watermarks, widget cache, a background worker or not) is assembled
in `api/processes.py`, the one place processes are put together."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from litestar import Litestar, Router
from litestar.openapi import OpenAPIConfig
from litestar.types import ControllerRouterHandler

from api.auth import require_api_key
from api.body import check_json_body
from api.controllers.api_keys import ApiKeyController
from api.controllers.as_of_links import AsOfLinkController
from api.controllers.audit import AuditController
from api.controllers.availability import ComponentAvailabilityController
from api.controllers.components import StatusPageComponentController
from api.controllers.deliveries import SubscriberDeliveryController
from api.controllers.health import health_handlers
from api.controllers.incidents import (
    StatusPageIncidentController,
    StatusPageIncidentUpdateController,
    StatusPageRetrospectiveIncidentController,
)
from api.controllers.maintenances import StatusPageMaintenanceController, StatusPageMaintenanceUpdateController
from api.controllers.public_site_as_of import PUBLIC_SITE_AS_OF_HANDLERS
from api.controllers.public_subscriptions import PUBLIC_SUBSCRIPTION_HANDLERS
from api.controllers.status_pages import StatusPageController
from api.controllers.structures import StatusPageStructureController
from api.controllers.subscribers import StatusPageSubscriberController
from api.controllers.widget import PUBLIC_WIDGET_AS_OF_HANDLERS, StatusPageWidgetController
from api.errors import EXCEPTION_HANDLERS
from api.metrics import metrics_endpoint
from api.openapi import BeaconOpenAPIJson, correct_allow_header
from api.processes import http_process
from api.public_documents import PublicLitestar
from api.rate_share import sharing_rate_limits
from api.request_id import add_request_id_header
from api.request_log import RequestObserver
from infra.clock import Clock
from infra.settings import Settings
from projections.runner import Projection

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
    StatusPageSubscriberController,
    SubscriberDeliveryController,
    AsOfLinkController,
]
"""Every authenticated `/v2` controller. The authorisation-matrix test walks the resulting routes."""


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    run_worker: bool = True,
    projections: Sequence[Projection] | None = None,
) -> Litestar:
    """The Litestar app of one HTTP process: its routes, hooks and error map. What the process holds while
    it serves is assembled by `api.processes.http_process` from these arguments, in the app's lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with http_process(settings, clock=clock, run_worker=run_worker, projections=projections) as services:
            app.state.services = services
            app.state.scheduler = services.scheduler
            if isinstance(app, PublicLitestar):
                app.public.cache = services.public_documents  # the fast path's documents
            # Each key's limit is shared with the other API processes (docs/architecture.md#rate-limits).
            async with sharing_rate_limits(services):
                yield

    v2 = Router(path="/v2", route_handlers=V2_HANDLERS, guards=[require_api_key], before_request=check_json_body)
    # /metrics is on the HTTP port unless BEACON_METRICS_PORT names another (README "Operations").
    metrics = [metrics_endpoint] if settings.metrics_on_http_port else []
    app = PublicLitestar(
        route_handlers=[
            v2,
            *PUBLIC_SUBSCRIPTION_HANDLERS,
            *PUBLIC_WIDGET_AS_OF_HANDLERS,
            *PUBLIC_SITE_AS_OF_HANDLERS,
            *health_handlers,
            *metrics,
        ],
        lifespan=[lifespan],
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
