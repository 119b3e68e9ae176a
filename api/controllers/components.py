"""Status page components (SDK 2.29): list and show (any key); create, update and delete (admin).

Deleting archives the component: it disappears from every read here (404 afterwards), pages can no
longer place it, and its history stays in the log.

Update is partial: an absent field keeps its value and `null` clears the description, so the SDK's
update payload (which cannot send `null`) renames a component without wiping its description. Show's
`status_page_component` object can be sent back as the body: its read-only `id` and `management_meta`
are accepted as shown and are a 422 naming the field (`read_only`) otherwise.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, JSONBody

from api.services import services_of
from api.types import AnyRequest
from api.wire import ManagementMeta, Payload, management_meta, not_found, path_id
from domain.base import KEEP, NotFound, Unchanged
from domain.component import Component, archive_component, create_component, update_component
from domain.rules import check_read_only
from infra.api_keys import ADMIN
from infra.ids import new_ulid, ulid_to_uuid, uuid_to_ulid
from projections import status_page_catalog as catalog


class StatusPageComponentView(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    name: str
    description: str | None = None
    management_meta: ManagementMeta


class StatusPageComponentResult(msgspec.Struct):
    status_page_component: StatusPageComponentView


class StatusPageComponentList(msgspec.Struct):
    status_page_components: list[StatusPageComponentView]


class ManagementMetaPayload(Payload):
    """`management_meta` echoed back in a body: read-only, as incident.io's SDK models it."""

    annotations: dict[str, str]
    managed_by: str
    source_url: str | msgspec.UnsetType = msgspec.UNSET


def check_management_meta(sent: ManagementMetaPayload | msgspec.UnsetType) -> None:
    """Shared with structures, whose Show body carries it too."""
    if sent is not msgspec.UNSET:  # to_builtins leaves out an absent source_url, as Show does
        check_read_only("management_meta", msgspec.to_builtins(sent), msgspec.to_builtins(management_meta()))


T = TypeVar("T")


def given(value: T | msgspec.UnsetType) -> T | Unchanged:
    """An absent wire field (UNSET) is the domain's `KEEP`."""
    return KEEP if value is msgspec.UNSET else value


class StatusPageComponentPayload(Payload):
    """The body of create."""

    name: str
    description: str | None = None


class UpdateStatusPageComponentPayload(Payload):
    """Every field optional: UNSET (absent) keeps the stored value, `None` clears the description."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType | None = msgspec.UNSET
    id: str | msgspec.UnsetType = msgspec.UNSET
    management_meta: ManagementMetaPayload | msgspec.UnsetType = msgspec.UNSET


def _view(component_id: str, name: str, description: str | None) -> StatusPageComponentView:
    return StatusPageComponentView(
        id=component_id, name=name, description=description, management_meta=management_meta()
    )


def _from_aggregate(component: Component) -> StatusPageComponentResult:
    return StatusPageComponentResult(
        status_page_component=_view(uuid_to_ulid(component.id), component.name, component.description)
    )


class StatusPageComponentController(Controller):
    path = "/status_page_components"

    @get("/")
    async def list_components(self, request: AnyRequest) -> StatusPageComponentList:
        rows = await catalog.list_components(services_of(request).pool)
        return StatusPageComponentList(status_page_components=[_view(r.id, r.name, r.description) for r in rows])

    @get("/{component_id:str}")
    async def show_component(self, request: AnyRequest, component_id: FromPath[str]) -> StatusPageComponentResult:
        row = await catalog.get_component(services_of(request).pool, component_id)
        if row is None or row.archived:
            raise not_found("status page component", component_id)
        return StatusPageComponentResult(status_page_component=_view(row.id, row.name, row.description))

    @post("/", status_code=201, opt={"scope": ADMIN})
    async def create_component(
        self, request: AnyRequest, data: JSONBody[StatusPageComponentPayload]
    ) -> StatusPageComponentResult:
        services = services_of(request)
        context = services.context(request)
        component = await create_component(
            services.store,
            component_id=ulid_to_uuid(new_ulid(context.now)),
            name=data.name,
            description=data.description,
            context=context,
        )
        await services.settle_command(context)
        return _from_aggregate(component)

    @put("/{component_id:str}", opt={"scope": ADMIN})
    async def update_component(
        self,
        request: AnyRequest,
        component_id: FromPath[str],
        data: JSONBody[UpdateStatusPageComponentPayload],
    ) -> StatusPageComponentResult:
        services = services_of(request)
        context = services.context(request)
        stream_id = path_id(component_id, "status page component")
        if data.id is not msgspec.UNSET:
            check_read_only("id", data.id, component_id)
        check_management_meta(data.management_meta)
        try:
            component = await update_component(
                services.store,
                component_id=stream_id,
                name=given(data.name),
                description=given(data.description),
                context=context,
            )
        except NotFound as error:  # the domain names the stream by UUID; the client knows the ULID
            raise not_found("status page component", component_id) from error
        await services.settle_command(context)
        return _from_aggregate(component)

    @delete("/{component_id:str}", status_code=204, opt={"scope": ADMIN})
    async def delete_component(self, request: AnyRequest, component_id: FromPath[str]) -> None:
        services = services_of(request)
        context = services.context(request)
        try:
            await archive_component(
                services.store,
                component_id=path_id(component_id, "status page component"),
                context=context,
            )
        except NotFound as error:
            raise not_found("status page component", component_id) from error
        await services.settle_command(context)
