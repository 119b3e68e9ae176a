"""`GET /v2/status_pages/{id}/widget` (any key): the page's public widget document, the same bytes and
ETag as `/{slug}/api/v1/summary`, found by id. Served from this process's widget cache; with `as_of`
(docs/architecture.md#time-travel) rebuilt from the log as the projection rendered it then. `If-None-Match` with the
ETag is a 304, as on the public URL.

The public URLs themselves answer `?as_of=` here too (the fast path never serves the past), for a `Bearer`
key or a link from `POST /v2/as_of_links` (api/as_of.py)."""

from __future__ import annotations

from datetime import datetime

from litestar import Controller, get
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery
from litestar.response import Response

from api.as_of import PRIVATE_HEADERS, authorised_as_of
from api.errors import ApiError
from api.public_documents import etag_matches
from api.services import services_of
from api.types import AnyRequest
from api.widget import KIND
from api.wire import not_found, path_id
from projections import status_page_catalog as catalog
from projections.public_widget import page_exists
from projections.widget_document import WidgetDocument, etag_of
from projections.widget_history import documents_as_of


def _disabled(status_page_id: str) -> ApiError:
    return ApiError(404, f"The widget API of status page {status_page_id!r} is disabled", code="not_found")


class StatusPageWidgetController(Controller):
    path = "/status_pages"

    @get(
        "/{status_page_id:str}/widget",
        summary="ShowStatusPageWidget",
        # The body is the stored bytes; the document says what they hold (it said "string").
        responses={
            200: ResponseSpec(WidgetDocument, description="The page's widget document"),
            304: ResponseSpec(None, description="`If-None-Match` holds the document's ETag: no body"),
        },
    )
    async def show(
        self,
        request: AnyRequest,
        status_page_id: FromPath[str],
        as_of: FromQuery[datetime | None] = None,
    ) -> Response[bytes]:
        services = services_of(request)
        path_id(status_page_id, "status page")
        if as_of is not None:
            return await _as_of(request, status_page_id, as_of)
        document = services.public_documents.page_document(status_page_id, KIND)
        if document is None:
            async with services.pool.acquire() as conn:
                exists = await page_exists(conn, status_page_id)
            if exists:
                raise _disabled(status_page_id)
            raise not_found("status page", status_page_id)
        return _document(request, document.body, document.etag)


async def _as_of(request: AnyRequest, status_page_id: str, as_of: datetime) -> Response[bytes]:
    """The page's document as of `as_of`, folded from the log by the projection's own functions, so it is
    byte for byte (and ETag for ETag) what the live route served right after the last event until then.
    It starts from the page's latest snapshot before the instant and reads only that page's events
    (docs/adr/0004-time-travel-index-and-snapshots.md)."""
    if as_of.tzinfo is None:  # RFC 3339 requires an offset; guessing one would move the instant
        raise ApiError(422, "as_of must carry a time zone (e.g. a trailing Z)", parameter="as_of")
    async with services_of(request).pool.acquire() as conn:
        documents, _ = await documents_as_of(conn, status_page_id, as_of)
    if documents is None:
        raise not_found("status page", status_page_id)
    body = documents.get("")
    if body is None:
        raise _disabled(status_page_id)
    return _document(request, body, etag_of(body))


def _document(request: AnyRequest, body: bytes, etag: str) -> Response[bytes]:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and etag_matches(if_none_match.encode("latin-1"), etag):
        return Response(content=b"", status_code=304, headers={"ETag": etag})
    return Response(content=body, media_type="application/json", headers={"ETag": etag})


# The public widget URLs with `?as_of=` (api/as_of.py): the fast path leaves every such request to these.


async def _public_as_of(request: AnyRequest, page_slug: str, sub_page_slug: str) -> Response[bytes]:
    as_of = await authorised_as_of(request)
    if as_of is None:  # only reached with `as_of` in the query string, so it was empty or misspelt
        raise ApiError(422, "as_of must be an RFC 3339 time such as 2026-03-03T14:05:00Z", parameter="as_of")
    services = services_of(request)
    page = await catalog.get_page_by_slug(services.pool, page_slug)
    documents = None
    if page is not None:
        async with services.pool.acquire() as conn:
            documents, _ = await documents_as_of(conn, page.id, as_of)
    body = documents.get(sub_page_slug) if documents else None
    if body is None:
        raise ApiError(404, "No status page widget here at that instant", code="not_found")
    return Response(
        content=body, media_type="application/json", headers={**PRIVATE_HEADERS, "ETag": etag_of(body)}
    )


@get("/{page_slug:str}/api/v1/summary", include_in_schema=False)
async def public_widget_as_of(request: AnyRequest, page_slug: FromPath[str]) -> Response[bytes]:
    return await _public_as_of(request, page_slug, "")


@get("/{page_slug:str}/{sub_page_slug:str}/api/v1/summary", include_in_schema=False)
async def public_sub_page_widget_as_of(
    request: AnyRequest, page_slug: FromPath[str], sub_page_slug: FromPath[str]
) -> Response[bytes]:
    return await _public_as_of(request, page_slug, sub_page_slug)


PUBLIC_WIDGET_AS_OF_HANDLERS = [public_widget_as_of, public_sub_page_widget_as_of]
