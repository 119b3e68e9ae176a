"""Status page components (SDK 2.29): list and show (any key); create, update and delete (admin).

Deleting archives the component: it disappears from every read here (404 afterwards), pages can no
longer place it, and its history stays in the log. This module also holds the small helpers the
status page and structure controllers share (wire ids, management meta, read-your-writes).
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.params import FromPath, JSONBody

from api.errors import DATABASE_UNAVAILABLE, ApiError
from api.services import Services, services_of
from domain.base import NotFound
from domain.component import Component, archive_component, create_component, update_component
from infra.api_keys import ADMIN
from infra.ids import is_ulid, new_ulid, ulid_to_uuid, uuid_to_ulid
from projections import status_page_catalog as catalog

log = logging.getLogger("beacon.api")


def path_id(value: str, what: str) -> UUID:
    """The stream id behind a wire id; anything that is not a ULID names nothing, so it is a 404."""
    if not is_ulid(value):
        raise not_found(what, value)
    return ulid_to_uuid(value)


def not_found(what: str, value: str) -> ApiError:
    return ApiError(404, f"No {what} with id {value!r}", code="not_found")


async def settle_latest(services: Services) -> None:
    """Read-your-writes after a domain handler (D6). The handlers return the aggregate, not the append
    position, so wait for the log's head, which is at or past this request's events.

    The write is recorded by now: if the database drops away here, answering an error would invite the
    client to send it again (updates carry no idempotency key), so keep trying for as long as `settle`
    would wait, then answer as `settle` does on a timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + services.settings.read_your_writes_timeout
    while True:
        try:
            position = await services.store.max_position()
            break
        except DATABASE_UNAVAILABLE as error:
            if loop.time() >= deadline:
                log.warning("read-your-writes skipped, the write is recorded: %r", error)
                return
            await asyncio.sleep(0.05)
    await services.settle(position)


class ManagementMeta(msgspec.Struct):
    """incident.io's marker of who manages a resource; Beacon's are all managed through this API and no
    tool claims them, which incident.io reports as its default, `dashboard`."""

    annotations: dict[str, str]
    managed_by: str


def management_meta() -> ManagementMeta:
    return ManagementMeta(annotations={}, managed_by="dashboard")


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
        await settle_latest(services)
        return _from_aggregate(component)

    @put("/{component_id:str}", opt={"scope": ADMIN})
    async def update_component(
        self,
        request: Request,  # type: ignore[type-arg]
        component_id: FromPath[str],
        data: JSONBody[StatusPageComponentPayload],
    ) -> StatusPageComponentResult:
        services = services_of(request)
        try:
            component = await update_component(
                services.store,
                component_id=path_id(component_id, "status page component"),
                name=data.name,
                description=data.description,
                context=services.context(request),
            )
        except NotFound as error:  # the domain names the stream by UUID; the client knows the ULID
            raise not_found("status page component", component_id) from error
        await settle_latest(services)
        return _from_aggregate(component)

    @delete("/{component_id:str}", status_code=204, opt={"scope": ADMIN})
    async def delete_component(self, request: Request, component_id: FromPath[str]) -> None:  # type: ignore[type-arg]
        services = services_of(request)
        try:
            await archive_component(
                services.store,
                component_id=path_id(component_id, "status page component"),
                context=services.context(request),
            )
        except NotFound as error:
            raise not_found("status page component", component_id) from error
        await settle_latest(services)
