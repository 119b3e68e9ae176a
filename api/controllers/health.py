"""`/healthz` (the process answers) and `/readyz` (this process can serve: the database answers and is
migrated). A stopped projection or a notification backlog never makes a process unready: every replica would
leave the load balancer and take the public page down with it, during the very incident it reports
(docs/architecture.md#4-projections-and-checkpoints). `/readyz?detail=1` reports the projections and the
notification channels instead."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.params import FromQuery

from api.errors import DATABASE_UNAVAILABLE, ApiError
from api.services import Services, services_of
from api.types import AnyRequest
from infra.migrate import is_migrated
from process_managers.notification_status import ChannelStatus, delivery_status
from projections.runner import ProjectionLag


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct, omit_defaults=True):
    """`/readyz?detail=1`: whether this process can serve, and where every projection is."""

    status: str
    """`ready`, or `not_ready` when plain `/readyz` would answer 503."""
    projections: list[ProjectionLag]
    """Each projection's checkpoint, head, lag (events and seconds), stop and whether this process runs it;
    empty when the database cannot be read."""
    reason: str | None = None
    """Why not ready, or why `projections` is empty (the database cannot be read, or is not migrated)."""
    notifications: list[ChannelStatus] | None = None
    """Each notification channel's backlog, oldest due age, failures and pause (a backlog never makes a
    process unready)."""


@get("/healthz", include_in_schema=False)
async def healthz() -> Health:
    return Health(status="ok")


@get("/readyz", include_in_schema=False)
async def readyz(request: AnyRequest, detail: FromQuery[bool] = False) -> Health | Readiness:
    services = services_of(request)
    if detail:
        return await _readiness(services)
    if not await _ready(services):
        raise ApiError(503, "Migrations are not applied", code="not_ready")
    return Health(status="ready")


async def _ready(services: Services) -> bool:
    """Whether the database answers and is migrated. Without asking it while the watermarks' connection is
    alive, once the migrations were seen applied: a probe every few seconds per replica costs no query."""
    if services.migrated and services.watermarks.listening:
        return True
    async with services.pool.acquire(timeout=2) as conn:
        services.migrated = await is_migrated(conn)
    return services.migrated


async def _readiness(services: Services) -> Readiness:
    """Always answered (200): a probe of the details must not fail where the answer matters most."""
    try:
        if not await _ready(services):
            return Readiness(status="not_ready", projections=[], reason="migrations are not applied")
    except DATABASE_UNAVAILABLE as error:
        return Readiness(status="not_ready", projections=[], reason=f"the database cannot be read: {error!r}")
    try:
        return Readiness(
            status="ready",
            projections=await services.projections_lag(),
            notifications=await delivery_status(services.pool, services.clock.now()),
        )
    except DATABASE_UNAVAILABLE as error:
        return Readiness(status="ready", projections=[], reason=f"the projections cannot be read: {error!r}")


health_handlers = [healthz, readyz]
