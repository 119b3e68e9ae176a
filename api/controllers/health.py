"""`/healthz` (the process answers) and `/readyz` (the database answers and is migrated)."""

from __future__ import annotations

import msgspec
from litestar import Request, get

from api.errors import ApiError
from api.services import services_of
from infra.migrate import is_migrated


class Health(msgspec.Struct):
    status: str


@get("/healthz", include_in_schema=False)
async def healthz() -> Health:
    return Health(status="ok")


@get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> Health:  # type: ignore[type-arg]
    services = services_of(request)
    async with services.pool.acquire(timeout=2) as conn:
        if not await is_migrated(conn):
            raise ApiError(503, "Migrations are not applied", code="not_ready")
    return Health(status="ready")


health_handlers = [healthz, readyz]
