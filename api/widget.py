"""The public widget as a source of public documents (docs/architecture.md#widget): the `public_widget`
projection's documents, served at `/{page}/api/v1/summary` and `/{page}/{sub_page}/api/v1/summary` on
Beacon's own host by the fast path of api/public_documents.py, which also answers those URLs' CORS
preflights (`OPTIONS`), the 404 envelope of an unknown page or a disabled widget, and a 405 envelope for
any other method.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from api.metrics import WIDGET
from api.public_documents import DEFAULT_HOST, PublicDocument, PublicRoute, Serving
from projections import public_widget
from projections.public_widget import read_documents, widget_position
from projections.widget_document import CONTENT_TYPE, PATH_SUFFIX, widget_path

KIND = "widget"
"""The page's own widget document in `DocumentCache.page_document` (`GET /v2/status_pages/{id}/widget`)."""

CACHE_CONTROL = b"public, max-age=10, stale-while-revalidate=30, stale-if-error=86400"
PREFLIGHT_ALLOWED_HEADERS = b"If-None-Match, Cache-Control, Pragma"
"""The request headers a widget poller sets itself that the fetch spec does not safelist (so the browser
asks first): `If-None-Match` for conditional polling, and the `Cache-Control`/`Pragma: no-cache` pair
pollers use to get past caches. No `If-Modified-Since`: the widget has no `Last-Modified` to compare."""

SERVING = Serving(cache_control=CACHE_CONTROL, cors=True, counts=WIDGET)


def is_widget_path(path: str) -> bool:
    """`/{page}/api/v1/summary` or `/{page}/{sub_page}/api/v1/summary`, known page or not."""
    return path.endswith(PATH_SUFFIX) and path[1 : -len(PATH_SUFFIX)].count("/") <= 1


ROUTE = PublicRoute(
    name=KIND,
    owns=is_widget_path,
    not_found="No status page widget here (unknown page, or its widget API is disabled)",
    preflight_headers=PREFLIGHT_ALLOWED_HEADERS,
)


class WidgetSource:
    """The widget documents of the `public_widget` projection (`widget_documents`)."""

    name = public_widget.KEY
    writes_wait = True  # read-your-writes covers the widget of the process that took the write
    routes: Sequence[PublicRoute] = (ROUTE,)

    async def position(self, conn: asyncpg.Connection) -> int:
        return await widget_position(conn)

    async def read(self, conn: asyncpg.Connection, *, after: int | None) -> list[PublicDocument]:
        return [
            PublicDocument(
                host=DEFAULT_HOST,
                path=widget_path(stored.page_slug, stored.sub_page_slug),
                content_type=CONTENT_TYPE,
                body=stored.body,
                etag=stored.etag,
                position=stored.position,
                status_page_id=stored.status_page_id,
                serving=SERVING,
                page_name=None if stored.sub_page_slug else KIND,
            )
            for stored in await read_documents(conn, after=after)
        ]

