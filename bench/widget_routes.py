"""Which widget route is cheapest (docs/adr/0001-widget-route.md): the same in-memory document served by
(1) a Litestar `@get` route, (2) a Litestar `@asgi` route handler (static path: see below), (3) the raw
ASGI fast path installed as Litestar's `asgi_handler` (Litestar's `__call__` and before_send hooks still run),
(4) the raw fast
path in a `Litestar.__call__` override (nothing of Litestar runs). Calls the ASGI apps in-process, so
it measures framework work only; `bench/widget.py` measures the chosen one over HTTP.

Run: `.venv/bin/python bench/widget_routes.py`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from typing import Any, cast

from litestar import Litestar, Response, asgi, get

from api.public_documents import (
    DEFAULT_HOST,
    CachedDocument,
    DocumentCache,
    PublicDocument,
    PublicFrontend,
    PublicLitestar,
)
from api.request_id import add_request_id_header
from api.widget import SERVING, WidgetSource
from projections.widget_document import CONTENT_TYPE, etag_of, widget_path

BODY = b'{"page_title":"Acme","page_url":"https://status.acme.test","ongoing_incidents":[],' + (
    b'"in_progress_maintenances":[],"scheduled_maintenances":[]}'
)
STORED = PublicDocument(DEFAULT_HOST, widget_path("acme"), CONTENT_TYPE, BODY, etag_of(BODY), 1, "page", SERVING)
DOC = CachedDocument.of(STORED)
N = 20_000


class FakeCache(DocumentCache):
    """The process's cache holding one widget document, never connected to a database."""

    def __init__(self) -> None:
        super().__init__(cast(Any, None), [WidgetSource()])
        self.load(WidgetSource.name, [STORED], full=True)


@get("/{page_slug:str}/api/v1/summary")
async def litestar_route(page_slug: str) -> Response[bytes]:
    return Response(
        DOC.body,
        media_type="application/json",
        headers={k.decode(): v.decode() for k, v in DOC.headers if k not in (b"content-type", b"content-length")},
    )


# Litestar 2.25 cannot route an `@asgi` handler with path parameters (KeyError 'GET' in the routing trie),
# so this variant is measured on the static path, which flatters it.
@asgi("/acme/api/v1/summary")
async def asgi_route(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": DOC.headers})
    await send({"type": "http.response.body", "body": DOC.body})


def app_route() -> Any:
    return Litestar([litestar_route], before_send=[add_request_id_header])


def app_asgi_handler() -> Any:
    return Litestar([asgi_route], before_send=[add_request_id_header])


def app_wrapped_handler() -> Any:
    app = Litestar([], before_send=[add_request_id_header])
    frontend = PublicFrontend(cast(Any, app.asgi_handler))
    frontend.cache = FakeCache()
    app.asgi_handler = cast(Any, frontend)
    return app


def app_call_override() -> Any:
    app = PublicLitestar([], before_send=[add_request_id_header])
    app.public.cache = FakeCache()
    return app


async def measure(app: Any) -> float:
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    def scope() -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/acme/api/v1/summary",
            "raw_path": b"/acme/api/v1/summary",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 8000),
        }

    await app(scope(), receive, send)
    assert sent[0]["status"] == 200, sent[0]
    start = time.perf_counter()
    for _ in range(N):
        sent.clear()
        await app(scope(), receive, send)
    return N / (time.perf_counter() - start)


async def main() -> None:
    variants = {
        "litestar @get route": app_route(),
        "litestar @asgi route handler": app_asgi_handler(),
        "raw fast path as asgi_handler": app_wrapped_handler(),
        "raw fast path in __call__": app_call_override(),
    }
    results = {name: await measure(app) for name, app in variants.items()}
    base = results["litestar @get route"]
    for name, rate in results.items():
        print(f"{name:32s} {rate:10.0f} calls/s  {rate / base:5.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
