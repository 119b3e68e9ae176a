"""Status page incidents (docs/architecture.md#notice-rules): create, update (rename), show and list incidents,
publish an update, record a retrospective incident. Writes go through the domain and answer from the aggregate with the
same mapping the `incident_list` read model stores, after the read models reached the write
(docs/architecture.md#6-read-your-writes)."""

from __future__ import annotations

from datetime import datetime

import msgspec
from litestar import Controller, Response, get, post, put
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
from domain.incident import (
    Incident,
    PastUpdate,
    declare_incident,
    record_retrospective_incident,
    rename_incident,
)
from domain.notice import PageComponents, publish_notice_update
from infra.api_keys import PUBLISH
from infra.ids import new_ulid, ulid_to_uuid, uuid_to_ulid
from projections.incident_list import TABLE, StatusPageIncident, StatusPageIncidentUpdate, incident_view, update_view

WHAT = "status page incident"

# Requests: incident.io's payloads, field for field; any other field is a 422 (`api.wire.Payload`).


class CreateStatusPageIncidentPayload(Payload):
    idempotency_key: str
    status_page_id: str
    name: str
    message: str
    incident_status: str
    notify_subscribers: bool
    component_statuses: list[ComponentStatusPayload] | None = None


class UpdateStatusPageIncidentPayload(UpdateNoticePayload, kw_only=True):
    """The name is the only field this changes. The rest of Show's `status_page_incident` may come back
    (an edited Show body), but only as shown: `incident_status: resolved` here would otherwise answer 200
    and resolve nothing."""

    name: str
    incident_status: str | msgspec.UnsetType = msgspec.UNSET
    component_impacts: ReadOnlyList = msgspec.UNSET


READ_ONLY = read_only_fields("/v2/status_page_incident_updates", "incident_status", "component_impacts")


class CreateStatusPageIncidentUpdatePayload(Payload):
    status_page_incident_id: str
    message: str
    notify_subscribers: bool
    incident_status: str | None = None
    component_statuses: list[ComponentStatusPayload] | None = None


class StatusPageRetrospectiveIncidentUpdate(Payload):
    published_at: datetime
    message: str
    incident_status: str
    component_statuses: list[ComponentStatusPayload] | None = None


class CreateStatusPageRetrospectiveIncidentPayload(Payload):
    idempotency_key: str
    status_page_id: str
    name: str
    updates: list[StatusPageRetrospectiveIncidentUpdate]


# Responses


class StatusPageIncidentResult(msgspec.Struct):
    """Create, Update, Show and CreateRetrospective all answer `{status_page_incident}`."""

    status_page_incident: StatusPageIncident


class StatusPageIncidentUpdateResult(msgspec.Struct):
    status_page_incident_update: StatusPageIncidentUpdate


class StatusPageIncidentList(msgspec.Struct):
    status_page_incidents: list[StatusPageIncident]
    pagination_meta: PaginationMeta


def _result(incident: Incident) -> StatusPageIncidentResult:
    return StatusPageIncidentResult(status_page_incident=incident_view(incident))


class StatusPageIncidentController(Controller):
    path = "/status_page_incidents"

    @get("/", dependencies=LIST_QUERY)
    async def list_incidents(
        self,
        request: AnyRequest,
        filters: NamedDependency[ListQuery],
    ) -> StatusPageIncidentList:
        items, meta = await list_notices(services_of(request), TABLE, filters, StatusPageIncident)
        return StatusPageIncidentList(status_page_incidents=items, pagination_meta=meta)

    @get("/{status_page_incident_id:str}")
    async def show_incident(
        self,
        request: AnyRequest,
        status_page_incident_id: FromPath[str],
        as_of: FromQuery[datetime | None] = None,
    ) -> StatusPageIncidentResult:
        services = services_of(request)
        if as_of is not None:  # docs/architecture.md#time-travel: rebuilt from the log as it was then
            with wire_not_found(WHAT, status_page_incident_id):
                incident = await load(
                    services.store, Incident, path_id(status_page_incident_id, WHAT), as_of=as_of
                )
            return _result(incident)
        view = await show_notice(services, TABLE, WHAT, status_page_incident_id, StatusPageIncident)
        return StatusPageIncidentResult(status_page_incident=view)

    @post("/", opt={"scope": PUBLISH})
    async def create_incident(
        self, request: AnyRequest, data: JSONBody[CreateStatusPageIncidentPayload]
    ) -> Response[StatusPageIncidentResult]:
        services = services_of(request)
        context = services.context(request)
        incident, replayed = await declare_incident(
            services.store,
            incident_id=ulid_to_uuid(new_ulid(context.now)),
            status_page_id=data.status_page_id,
            page_components=await existing_page_components(services, data.status_page_id),
            name=data.name,
            message=data.message,
            status=data.incident_status,
            component_statuses=statuses_input(data.component_statuses),
            notify_subscribers=data.notify_subscribers,
            idempotency_key=data.idempotency_key,
            update_id=new_ulid(context.now),
            context=context,
        )
        await services.settle_command(context)
        return created(_result(incident), replayed=replayed)

    @put("/{status_page_incident_id:str}", opt={"scope": PUBLISH})
    async def update_incident(
        self,
        request: AnyRequest,
        status_page_incident_id: FromPath[str],
        data: JSONBody[UpdateStatusPageIncidentPayload],
    ) -> StatusPageIncidentResult:
        services = services_of(request)
        context = services.context(request)
        await check_echoed(
            services, data, table=TABLE, what=WHAT, notice_id=status_page_incident_id,
            item_type=StatusPageIncident, read_only=READ_ONLY,
        )
        with wire_not_found(WHAT, status_page_incident_id):
            incident = await rename_incident(
                services.store,
                incident_id=path_id(status_page_incident_id, WHAT),
                name=data.name,
                context=context,
            )
        await services.settle_command(context)
        return _result(incident)


class StatusPageIncidentUpdateController(Controller):
    path = "/status_page_incident_updates"

    @post("/", opt={"scope": PUBLISH})
    async def create_incident_update(
        self, request: AnyRequest, data: JSONBody[CreateStatusPageIncidentUpdatePayload]
    ) -> Response[StatusPageIncidentUpdateResult]:
        services = services_of(request)
        context = services.context(request)

        async def lookup(status_page_id: str) -> PageComponents:
            return await page_components(services, status_page_id)

        with wire_not_found(WHAT, data.status_page_incident_id):
            incident = await publish_notice_update(
                services.store,
                Incident,
                path_id(data.status_page_incident_id, WHAT),
                page_components=lookup,
                message=data.message,
                status=data.incident_status,
                component_statuses=statuses_input(data.component_statuses),
                notify_subscribers=data.notify_subscribers,
                update_id=new_ulid(context.now),
                context=context,
            )
        await services.settle_command(context)
        view = update_view(uuid_to_ulid(incident.id), incident.last_update)
        return Response(StatusPageIncidentUpdateResult(status_page_incident_update=view), status_code=201)


class StatusPageRetrospectiveIncidentController(Controller):
    path = "/status_page_retrospective_incidents"

    @post("/", opt={"scope": PUBLISH, "rate_limit": "retrospective"})
    async def create_retrospective_incident(
        self,
        request: AnyRequest,
        data: JSONBody[CreateStatusPageRetrospectiveIncidentPayload],
    ) -> Response[StatusPageIncidentResult]:
        services = services_of(request)
        context = services.context(request)
        updates = [
            PastUpdate(
                # Ids carry the update's own time, so they sort like the timeline.
                id=new_ulid(update.published_at) if update.published_at.tzinfo else new_ulid(context.now),
                published_at=update.published_at,
                message=update.message,
                incident_status=update.incident_status,
                component_statuses=statuses_input(update.component_statuses),
            )
            for update in data.updates
        ]
        incident, replayed = await record_retrospective_incident(
            services.store,
            incident_id=ulid_to_uuid(new_ulid(context.now)),
            status_page_id=data.status_page_id,
            page_components=await existing_page_components(services, data.status_page_id),
            name=data.name,
            updates=updates,
            idempotency_key=data.idempotency_key,
            context=context,
        )
        await services.settle_command(context)
        return created(_result(incident), replayed=replayed)
