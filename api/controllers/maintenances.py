"""Status page maintenance windows (docs/architecture.md#maintenance-windows): create, update (name and window),
delete, show and list
windows, and publish an update. Writes go through the domain and answer from the aggregate with the
same mapping the `maintenance_list` read model stores, after the read models reached the write
(docs/architecture.md#6-read-your-writes)."""

from __future__ import annotations

from datetime import datetime

import msgspec
from litestar import Controller, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from api.notices import (
    LIST_QUERY,
    ComponentStatusPayload,
    ListQuery,
    ReadOnlyList,
    UpdateNoticePayload,
    check_echoed,
    created,
    existing_page_components,
    list_notices,
    page_components,
    read_only_fields,
    show_notice,
    statuses_input,
    wire_not_found,
)
from api.pagination import PaginationMeta
from api.services import services_of
from api.types import AnyRequest
from api.wire import Payload, path_id
from domain.base import load
from domain.maintenance import (
    Maintenance,
    delete_maintenance,
    edit_maintenance,
    schedule_maintenance,
)
from domain.notice import NoticeNotFound, PageComponents, publish_notice_update
from infra.api_keys import PUBLISH
from infra.ids import new_ulid, ulid_to_uuid, uuid_to_ulid
from projections.maintenance_list import (
    TABLE,
    StatusPageMaintenance,
    StatusPageMaintenanceUpdate,
    maintenance_view,
    update_view,
)

WHAT = "status page maintenance window"

# Requests: incident.io's payloads, field for field; any other field is a 422 (`api.wire.Payload`).


class CreateStatusPageMaintenancePayload(Payload):
    idempotency_key: str
    status_page_id: str
    name: str
    message: str
    maintenance_status: str
    start_at: datetime
    end_at: datetime
    affected_component_ids: list[str]
    notify_subscribers: bool
    automate_maintenance_status: bool = False  # as incident.io's SDK documents


class UpdateStatusPageMaintenancePayload(UpdateNoticePayload, kw_only=True):
    """The name and the window are what this changes. The rest of Show's `status_page_maintenance` may
    come back (an edited Show body), but only as shown: a status sent here would otherwise be dropped."""

    name: str
    start_at: datetime
    end_at: datetime
    maintenance_status: str | msgspec.UnsetType = msgspec.UNSET
    automate_maintenance_status: bool | msgspec.UnsetType = msgspec.UNSET
    component_maintenance_periods: ReadOnlyList = msgspec.UNSET


READ_ONLY = read_only_fields(
    "/v2/status_page_maintenance_updates", "maintenance_status", "component_maintenance_periods"
) | {"automate_maintenance_status": "; it is chosen when the window is created"}


class CreateStatusPageMaintenanceUpdatePayload(Payload):
    status_page_maintenance_id: str
    message: str
    notify_subscribers: bool
    maintenance_status: str | None = None
    component_statuses: list[ComponentStatusPayload] | None = None


# Responses


class StatusPageMaintenanceResult(msgspec.Struct):
    status_page_maintenance: StatusPageMaintenance


class StatusPageMaintenanceUpdateResult(msgspec.Struct):
    status_page_maintenance_update: StatusPageMaintenanceUpdate


class StatusPageMaintenanceList(msgspec.Struct):
    status_page_maintenances: list[StatusPageMaintenance]
    pagination_meta: PaginationMeta


def _result(maintenance: Maintenance) -> StatusPageMaintenanceResult:
    return StatusPageMaintenanceResult(status_page_maintenance=maintenance_view(maintenance))


class StatusPageMaintenanceController(Controller):
    path = "/status_page_maintenances"

    @get("/", dependencies=LIST_QUERY)
    async def list_maintenances(
        self,
        request: AnyRequest,
        filters: NamedDependency[ListQuery],
    ) -> StatusPageMaintenanceList:
        items, meta = await list_notices(services_of(request), TABLE, filters, StatusPageMaintenance)
        return StatusPageMaintenanceList(status_page_maintenances=items, pagination_meta=meta)

    @get("/{status_page_maintenance_id:str}")
    async def show_maintenance(
        self,
        request: AnyRequest,
        status_page_maintenance_id: FromPath[str],
        as_of: FromQuery[datetime | None] = None,
    ) -> StatusPageMaintenanceResult:
        services = services_of(request)
        if as_of is not None:  # docs/architecture.md#time-travel: rebuilt from the log as it was then
            with wire_not_found(WHAT, status_page_maintenance_id):
                maintenance = await load(
                    services.store, Maintenance, path_id(status_page_maintenance_id, WHAT), as_of=as_of
                )
                if maintenance.deleted:
                    raise NoticeNotFound(f"maintenance window {status_page_maintenance_id} was deleted")
            return _result(maintenance)
        view = await show_notice(services, TABLE, WHAT, status_page_maintenance_id, StatusPageMaintenance)
        return StatusPageMaintenanceResult(status_page_maintenance=view)

    @post("/", opt={"scope": PUBLISH})
    async def create_maintenance(
        self, request: AnyRequest, data: JSONBody[CreateStatusPageMaintenancePayload]
    ) -> Response[StatusPageMaintenanceResult]:
        services = services_of(request)
        context = services.context(request)
        maintenance, replayed = await schedule_maintenance(
            services.store,
            maintenance_id=ulid_to_uuid(new_ulid(context.now)),
            status_page_id=data.status_page_id,
            page_components=await existing_page_components(services, data.status_page_id),
            name=data.name,
            message=data.message,
            status=data.maintenance_status,
            affected_component_ids=data.affected_component_ids,
            start_at=data.start_at,
            end_at=data.end_at,
            automate_maintenance_status=data.automate_maintenance_status,
            notify_subscribers=data.notify_subscribers,
            idempotency_key=data.idempotency_key,
            update_id=new_ulid(context.now),
            start_update_id=new_ulid(context.now),  # used only by a window that is already over
            context=context,
        )
        await services.settle_command(context)
        return created(_result(maintenance), replayed=replayed)

    @put("/{status_page_maintenance_id:str}", opt={"scope": PUBLISH})
    async def update_maintenance(
        self,
        request: AnyRequest,
        status_page_maintenance_id: FromPath[str],
        data: JSONBody[UpdateStatusPageMaintenancePayload],
    ) -> StatusPageMaintenanceResult:
        services = services_of(request)
        context = services.context(request)
        await check_echoed(
            services, data, table=TABLE, what=WHAT, notice_id=status_page_maintenance_id,
            item_type=StatusPageMaintenance, read_only=READ_ONLY,
        )
        with wire_not_found(WHAT, status_page_maintenance_id):
            maintenance = await edit_maintenance(
                services.store,
                maintenance_id=path_id(status_page_maintenance_id, WHAT),
                name=data.name,
                start_at=data.start_at,
                end_at=data.end_at,
                context=context,
            )
        await services.settle_command(context)
        return _result(maintenance)

    @delete("/{status_page_maintenance_id:str}", status_code=204, opt={"scope": PUBLISH})
    async def delete_maintenance(
        self, request: AnyRequest, status_page_maintenance_id: FromPath[str]
    ) -> None:
        services = services_of(request)
        context = services.context(request)
        with wire_not_found(WHAT, status_page_maintenance_id):
            await delete_maintenance(
                services.store,
                maintenance_id=path_id(status_page_maintenance_id, WHAT),
                context=context,
            )
        await services.settle_command(context)


class StatusPageMaintenanceUpdateController(Controller):
    path = "/status_page_maintenance_updates"

    @post("/", opt={"scope": PUBLISH})
    async def create_maintenance_update(
        self, request: AnyRequest, data: JSONBody[CreateStatusPageMaintenanceUpdatePayload]
    ) -> Response[StatusPageMaintenanceUpdateResult]:
        services = services_of(request)
        context = services.context(request)

        async def lookup(status_page_id: str) -> PageComponents:
            return await page_components(services, status_page_id)

        with wire_not_found(WHAT, data.status_page_maintenance_id):
            maintenance = await publish_notice_update(
                services.store,
                Maintenance,
                path_id(data.status_page_maintenance_id, WHAT),
                page_components=lookup,
                message=data.message,
                status=data.maintenance_status,
                component_statuses=statuses_input(data.component_statuses),
                notify_subscribers=data.notify_subscribers,
                update_id=new_ulid(context.now),
                context=context,
            )
        await services.settle_command(context)
        view = update_view(uuid_to_ulid(maintenance.id), maintenance.last_update)
        return Response(StatusPageMaintenanceUpdateResult(status_page_maintenance_update=view), status_code=201)
