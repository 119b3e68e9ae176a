"""The public site's URLs with `?as_of=` (docs/architecture.md#time-travel): the fast path never serves the
past, so every such request comes here, is authorised by `api.as_of.authorised_as_of` (a `Bearer` key or a
link from `POST /v2/as_of_links`) and is answered with the document the public site's renderer produces
for the log up to that instant (projections/public_site_as_of.py), `private, no-store`.
"""

from __future__ import annotations

from litestar import get
from litestar.response import Response

from api.as_of import PRIVATE_HEADERS, authorised_as_of
from api.errors import ApiError
from api.public_site import is_site_path
from api.services import services_of
from api.types import AnyRequest
from infra.event_store import PostgresEventStore
from projections.public_site_as_of import document_as_of
from projections.public_site_render import JSON_DOCUMENTS
from projections.widget_document import etag_of

_SUFFIXES = (
    "",
    "/history",
    "/history/{month:str}",
    "/incidents/{notice_id:str}",
    "/maintenances/{notice_id:str}",
    "/history.atom",
    "/history.rss",
    "/feed.atom",
    "/feed.rss",
    *(f"/api/v2/{name}.json" for name in JSON_DOCUMENTS),
)
PATHS = [
    prefix + suffix for prefix in ("/{page_slug:str}", "/{page_slug:str}/{sub_page_slug:str}") for suffix in _SUFFIXES
]


@get(PATHS, include_in_schema=False)
async def public_site_as_of(request: AnyRequest) -> Response[bytes]:
    if "as_of" not in request.query_params or not is_site_path(request.url.path):
        # Not a read of the past of a site URL (say `/metrics` on a process that serves it elsewhere).
        raise ApiError(404, "Not found", code="not_found")
    as_of = await authorised_as_of(request)
    if as_of is None:  # only reached with `as_of` in the query string, so it was empty or misspelt
        raise ApiError(422, "as_of must be an RFC 3339 time such as 2026-03-03T14:05:00Z", parameter="as_of")
    services = services_of(request)
    async with services.pool.acquire() as conn:
        document = await document_as_of(conn, PostgresEventStore(services.pool), request.url.path, as_of)
    if document is None:
        raise ApiError(404, "No public status page document here at that instant", code="not_found")
    return Response(
        content=document.body,
        media_type=document.content_type,
        headers={**PRIVATE_HEADERS, "ETag": etag_of(document.body)},
    )


PUBLIC_SITE_AS_OF_HANDLERS = [public_site_as_of]
