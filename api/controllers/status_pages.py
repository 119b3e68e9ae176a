"""Status pages: ListStatusPages and ShowStatusPage (any key, from the catalog read model), and Beacon's
own CreateStatusPage and UpdateStatusPage (admin, through the domain; they answer from the aggregate).

UpdateStatusPage is a partial update: an absent field keeps its value and `null` resets it to its default
(no description, no public URL, widget on, public site on, UTC, no custom domain, maintenance
notifications inherited), so `{"widget_api_enabled": false}` alone disables the widget and touches
nothing else. The page settings are the README's "Page settings"; a custom domain already used by another
page is a 409 naming it. Show's `status_page` object can be edited and sent back as the body: its
read-only `id` and `slug` are accepted when they are the page's own, and are a 422 naming the field
(`read_only`) otherwise — a different value cannot be applied, and dropping it would hide the mistake.
"""

from __future__ import annotations

from typing import Literal, Protocol, cast

import msgspec
from litestar import Controller, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody

from api.controllers.components import given
from api.errors import register_status
from api.pagination import PaginationMeta, page_params, paginate
from api.services import services_of
from api.types import AnyRequest
from api.wire import Payload, not_found, path_id
from domain.base import NotFound
from domain.custom_domain import CustomDomainTaken
from domain.public_base_url import base_url_host
from domain.rules import check_read_only
from domain.status_page import (
    DEFAULT_MAINTENANCE_NOTIFICATIONS,
    DEFAULT_PUBLIC_SITE_ENABLED,
    DEFAULT_TIME_ZONE,
    DEFAULT_WIDGET_API_ENABLED,
    SettingsChange,
    SlugTaken,
    StatusPage,
    create_status_page,
    update_status_page,
)
from infra.api_keys import ADMIN
from infra.ids import new_ulid, ulid_to_uuid, uuid_to_ulid
from projections import status_page_catalog as catalog

register_status(SlugTaken, 409)
register_status(CustomDomainTaken, 409)

MaintenanceNotifications = Literal["inherit", "never"]


class StatusPageView(msgspec.Struct, omit_defaults=True, kw_only=True):
    """incident.io's StatusPageV2 plus Beacon's `slug`, `widget_api_enabled` and page settings (always
    present, `custom_domain` as `null` when unset)."""

    id: str
    name: str
    description: str | None = None
    public_url: str | None = None
    slug: str
    widget_api_enabled: bool
    public_site_enabled: bool
    time_zone: str
    custom_domain: str | msgspec.UnsetType | None = msgspec.UNSET
    automatic_maintenance_notifications: MaintenanceNotifications


class StatusPageResult(msgspec.Struct):
    status_page: StatusPageView


class StatusPageList(msgspec.Struct):
    status_pages: list[StatusPageView]
    pagination_meta: PaginationMeta


class CreateStatusPagePayload(Payload):
    name: str
    slug: str
    description: str | None = None
    public_url: str | None = None
    widget_api_enabled: bool = DEFAULT_WIDGET_API_ENABLED
    public_site_enabled: bool = DEFAULT_PUBLIC_SITE_ENABLED
    time_zone: str = DEFAULT_TIME_ZONE
    custom_domain: str | None = None
    automatic_maintenance_notifications: MaintenanceNotifications = DEFAULT_MAINTENANCE_NOTIFICATIONS


class UpdateStatusPagePayload(Payload):
    """Every field optional: UNSET (absent) keeps the stored value, `None` resets it (module docstring)."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType | None = msgspec.UNSET
    public_url: str | msgspec.UnsetType | None = msgspec.UNSET
    widget_api_enabled: bool | msgspec.UnsetType | None = msgspec.UNSET
    public_site_enabled: bool | msgspec.UnsetType | None = msgspec.UNSET
    time_zone: str | msgspec.UnsetType | None = msgspec.UNSET
    custom_domain: str | msgspec.UnsetType | None = msgspec.UNSET
    automatic_maintenance_notifications: MaintenanceNotifications | msgspec.UnsetType | None = msgspec.UNSET
    id: str | msgspec.UnsetType = msgspec.UNSET
    """Read-only, accepted when it is the page's own."""
    slug: str | msgspec.UnsetType = msgspec.UNSET
    """Read-only, accepted when it is the page's own."""


class _Page(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def slug(self) -> str: ...
    @property
    def description(self) -> str | None: ...
    @property
    def public_url(self) -> str | None: ...
    @property
    def widget_api_enabled(self) -> bool: ...
    @property
    def public_site_enabled(self) -> bool: ...
    @property
    def time_zone(self) -> str: ...
    @property
    def custom_domain(self) -> str | None: ...
    @property
    def automatic_maintenance_notifications(self) -> str: ...


def _view(page_id: str, page: _Page) -> StatusPageView:
    """One mapping for the read model's rows and the aggregate, so reads and writes answer alike."""
    return StatusPageView(
        id=page_id,
        name=page.name,
        description=page.description,
        public_url=page.public_url,
        slug=page.slug,
        widget_api_enabled=page.widget_api_enabled,
        public_site_enabled=page.public_site_enabled,
        time_zone=page.time_zone,
        custom_domain=page.custom_domain,
        automatic_maintenance_notifications=cast(MaintenanceNotifications, page.automatic_maintenance_notifications),
    )


def _result(page: StatusPage) -> StatusPageResult:
    return StatusPageResult(status_page=_view(uuid_to_ulid(page.id), page))


class StatusPageController(Controller):
    path = "/status_pages"

    @get("/")
    async def list_status_pages(
        self,
        request: AnyRequest,
        page_size: FromQuery[int | None] = None,
        after: FromQuery[str | None] = None,
    ) -> StatusPageList:
        pool = services_of(request).pool

        async def fetch(limit: int, cursor: str | None) -> list[catalog.PageRow] | None:
            return await catalog.list_pages(pool, limit=limit, after=cursor)

        rows, meta = await paginate(page_params(page_size, after), fetch, lambda row: row.id)
        return StatusPageList(status_pages=[_view(row.id, row) for row in rows], pagination_meta=meta)

    @get("/{status_page_id:str}")
    async def show_status_page(self, request: AnyRequest, status_page_id: FromPath[str]) -> StatusPageResult:
        row = await catalog.get_page(services_of(request).pool, status_page_id)
        if row is None:
            raise not_found("status page", status_page_id)
        return StatusPageResult(status_page=_view(row.id, row))

    @post("/", status_code=201, opt={"scope": ADMIN})
    async def create_status_page(
        self, request: AnyRequest, data: JSONBody[CreateStatusPagePayload]
    ) -> StatusPageResult:
        services = services_of(request)
        context = services.context(request)
        page = await create_status_page(
            services.store,
            page_id=ulid_to_uuid(new_ulid(context.now)),
            name=data.name,
            slug=data.slug,
            description=data.description,
            public_url=data.public_url,
            widget_api_enabled=data.widget_api_enabled,
            settings=SettingsChange(
                public_site_enabled=data.public_site_enabled,
                time_zone=data.time_zone,
                custom_domain=data.custom_domain,
                automatic_maintenance_notifications=data.automatic_maintenance_notifications,
            ),
            reserved_host=base_url_host(services.settings.public_url),
            context=context,
        )
        await services.settle_command(context)
        return _result(page)

    @put("/{status_page_id:str}", opt={"scope": ADMIN})
    async def update_status_page(
        self,
        request: AnyRequest,
        status_page_id: FromPath[str],
        data: JSONBody[UpdateStatusPagePayload],
    ) -> StatusPageResult:
        services = services_of(request)
        context = services.context(request)
        page_id = path_id(status_page_id, "status page")
        if data.id is not msgspec.UNSET:
            check_read_only("id", data.id, status_page_id)
        try:
            page = await update_status_page(
                services.store,
                page_id=page_id,
                name=given(data.name),
                description=given(data.description),
                public_url=given(data.public_url),
                widget_api_enabled=given(data.widget_api_enabled),
                slug=given(data.slug),
                settings=SettingsChange(
                    public_site_enabled=given(data.public_site_enabled),
                    time_zone=given(data.time_zone),
                    custom_domain=given(data.custom_domain),
                    automatic_maintenance_notifications=given(data.automatic_maintenance_notifications),
                ),
                reserved_host=base_url_host(services.settings.public_url),
                context=context,
            )
        except NotFound as error:  # the domain names the stream by UUID; the client knows the ULID
            raise not_found("status page", status_page_id) from error
        await services.settle_command(context)
        return _result(page)
