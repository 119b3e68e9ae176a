"""ShowStatusPageComponentAvailability (SDK 2.29): a component's availability over a window, from the
`component_availability` read model (docs/architecture.md#availability)."""

from __future__ import annotations

from datetime import datetime

import msgspec
from litestar import Controller, get
from litestar.params import FromPath, FromQuery

from api.errors import ApiError
from api.services import services_of
from api.types import AnyRequest
from api.wire import not_found
from domain.structure import component_ids
from infra.clock import format_timestamp
from projections import status_page_catalog as catalog
from projections.component_availability import MAX_WINDOW, component_availability, data_available_since


class StatusPageComponentAvailability(msgspec.Struct, omit_defaults=True, kw_only=True):
    status_page_id: str
    component_id: str
    start_at: str
    end_at: str
    data_available_since: str
    availability_percent: str | None = None


class ShowStatusPageComponentAvailabilityResult(msgspec.Struct):
    availability: StatusPageComponentAvailability


def _check_window(start_at: datetime, end_at: datetime) -> None:
    for field, value in (("start_at", start_at), ("end_at", end_at)):
        if value.tzinfo is None:
            raise ApiError(422, f"{field} must carry a time zone", parameter=field)
    if start_at >= end_at:
        raise ApiError(422, "start_at must be before end_at", parameter="end_at")
    if end_at - start_at > MAX_WINDOW:
        raise ApiError(422, f"the window can be at most {MAX_WINDOW.days} days long", parameter="end_at")


class ComponentAvailabilityController(Controller):
    path = "/status_pages/{status_page_id:str}/components/{component_id:str}/availability"

    @get("/")
    async def show_component_availability(
        self,
        request: AnyRequest,
        status_page_id: FromPath[str],
        component_id: FromPath[str],
        start_at: FromQuery[datetime],
        end_at: FromQuery[datetime],
    ) -> ShowStatusPageComponentAvailabilityResult:
        _check_window(start_at, end_at)
        services = services_of(request)
        structure = await catalog.get_structure(services.pool, status_page_id)
        if structure is None:
            raise not_found("status page", status_page_id)
        component = await catalog.get_component(services.pool, component_id)
        if component is None or component.archived or component_id not in component_ids(structure.items):
            raise not_found("status page component", component_id)
        since = await data_available_since(services.pool, status_page_id, component_id, component.created_at)
        percent = await component_availability(
            services.pool,
            status_page_id,
            component_id,
            data_available_since=since,
            start_at=start_at,
            end_at=end_at,
            now=services.clock.now(),
        )
        return ShowStatusPageComponentAvailabilityResult(
            availability=StatusPageComponentAvailability(
                status_page_id=status_page_id,
                component_id=component_id,
                start_at=format_timestamp(start_at),
                end_at=format_timestamp(end_at),
                data_available_since=format_timestamp(since),
                availability_percent=percent,
            )
        )
