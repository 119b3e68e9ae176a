"""`GET /v2/status_pages/{id}/widget` (any key): the page's public widget document, the same bytes and
ETag as `/{slug}/api/v1/summary`, found by id. Served from this process's widget cache."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.params import FromPath
from litestar.response import Response

from api.controllers.components import not_found, path_id
from api.errors import ApiError
from api.services import services_of
from api.widget import WidgetCache
from projections.public_widget import page_exists


class StatusPageWidgetController(Controller):
    path = "/status_pages"

    @get("/{status_page_id:str}/widget", summary="ShowStatusPageWidget")
    async def show(self, request: Request, status_page_id: FromPath[str]) -> Response[bytes]:  # type: ignore[type-arg]
        services = services_of(request)
        path_id(status_page_id, "status page")
        cache: WidgetCache | None = services.extras.get("widget_cache")
        document = cache.by_page_id.get(status_page_id) if cache is not None else None
        if document is None:
            async with services.pool.acquire() as conn:
                exists = await page_exists(conn, status_page_id)
            if exists:
                raise ApiError(404, f"The widget API of status page {status_page_id!r} is disabled", code="not_found")
            raise not_found("status page", status_page_id)
        return Response(
            content=document.body,
            media_type="application/json",
            headers={"ETag": document.etag},
        )
