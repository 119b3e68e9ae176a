"""Status page components (SDK 2.29): list and show (any key); create, update and delete (admin).

Deleting archives the component: it disappears from every read here (404 afterwards), pages can no
longer place it, and its history stays in the log.
"""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.params import FromPath, JSONBody

from api.services import services_of
from api.wire import ManagementMeta, management_meta, not_found, path_id
from domain.base import NotFound
from domain.component import Component, archive_component, create_component, update_component
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


class StatusPageComponentPayload(msgspec.Struct):
    """The body of create and update (PUT: an absent description clears it)."""

    name: str
    description: str | None = None


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
    async def list_components(self, request: Request) -> StatusPageComponentList:  # type: ignore[type-arg]
        rows = await catalog.list_components(services_of(request).pool)
        return StatusPageComponentList(status_page_components=[_view(r.id, r.name, r.description) for r in rows])

    @get("/{component_id:str}")
    async def show_component(self, request: Request, component_id: FromPath[str]) -> StatusPageComponentResult:  # type: ignore[type-arg]
        row = await catalog.get_component(services_of(request).pool, component_id)
        if row is None or row.archived:
            raise not_found("status page component", component_id)
        return StatusPageComponentResult(status_page_component=_view(row.id, row.name, row.description))

    @post("/", status_code=201, opt={"scope": ADMIN})
    async def create_component(
        self, request: Request, data: JSONBody[StatusPageComponentPayload]  # type: ignore[type-arg]
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
        request: Request,  # type: ignore[type-arg]
        component_id: FromPath[str],
        data: JSONBody[StatusPageComponentPayload],
    ) -> StatusPageComponentResult:
        services = services_of(request)
        context = services.context(request)
        try:
            component = await update_component(
                services.store,
                component_id=path_id(component_id, "status page component"),
                name=data.name,
                description=data.description,
                context=context,
            )
        except NotFound as error:  # the domain names the stream by UUID; the client knows the ULID
            raise not_found("status page component", component_id) from error
        await services.settle_command(context)
        return _from_aggregate(component)

    @delete("/{component_id:str}", status_code=204, opt={"scope": ADMIN})
    async def delete_component(self, request: Request, component_id: FromPath[str]) -> None:  # type: ignore[type-arg]
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
