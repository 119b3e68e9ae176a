"""The public documents' cache and fast path without a database (api/public_documents.py,
docs/architecture.md#5-the-widget-is-bytes): documents keyed by (host, path), each served with its own
content type and headers; the URLs a source owns answered without a document; a notification naming a
source re-reads only that source."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, MutableMapping, Sequence
from typing import Any, cast

import msgspec
import pytest

from api.metrics import DocumentCounts
from api.public_documents import (
    DEFAULT_HOST,
    DocumentCache,
    PublicDocument,
    PublicFrontend,
    PublicRoute,
    Serving,
)
from api.widget import SERVING, WidgetSource
from infra.follow import Session
from projections.public_documents import DocumentsChanged
from projections.widget_document import CONTENT_TYPE, etag_of, widget_path

HTML = Serving(cache_control=b"public, max-age=30", cors=False, counts=DocumentCounts())


def widget(page: str, body: bytes, position: int = 1, sub: str = "", host: str = DEFAULT_HOST) -> PublicDocument:
    return PublicDocument(
        host,
        widget_path(page, sub),
        CONTENT_TYPE,
        body,
        etag_of(body),
        position,
        f"id-{page}",
        SERVING,
        page_name=None if sub else "widget",
    )


def page(slug: str, body: bytes, position: int = 1) -> PublicDocument:
    return PublicDocument(
        DEFAULT_HOST, f"/{slug}", "text/html; charset=utf-8", body, etag_of(body), position, slug, HTML
    )


class FakeSource:
    """A source whose stored documents and checkpoint a test sets; it records what was read."""

    def __init__(self, name: str, routes: Sequence[PublicRoute] = (), *, writes_wait: bool = True) -> None:
        self.name = name
        self.writes_wait = writes_wait
        self.routes = routes
        self.stored: list[PublicDocument] = []
        self.checkpoint = 0
        self.reads: list[int | None] = []

    async def position(self, conn: Any) -> int:
        return self.checkpoint

    async def read(self, conn: Any, *, after: int | None) -> list[PublicDocument]:
        self.reads.append(after)
        return [d for d in self.stored if after is None or d.position > after]


class FakePool:
    @contextlib.asynccontextmanager
    async def acquire(self, timeout: float | None = None) -> AsyncIterator[None]:
        yield None


PAGES_ROUTE = PublicRoute(
    name="page", owns=lambda path: path.count("/") == 1, not_found="No page here", preflight_headers=None
)


async def call(
    frontend: PublicFrontend, method: str, path: str, *headers: tuple[bytes, bytes]
) -> tuple[int, dict[bytes, bytes], bytes] | None:
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": list(headers)}
    if not await frontend.try_serve(scope, send):
        return None
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


def frontend_of(*documents: PublicDocument, routes: Sequence[PublicRoute] = ()) -> PublicFrontend:
    source = FakeSource("test", routes)
    cache = DocumentCache(cast(Any, FakePool()), [source])
    cache.load("test", documents, full=True)
    frontend = PublicFrontend()
    frontend.cache = cache
    return frontend


async def test_each_document_is_served_at_its_path_with_its_own_content_type_and_headers() -> None:
    frontend = frontend_of(widget("acme", b'{"a":1}'), page("acme", b"<!doctype html><p>ok"))

    answer = await call(frontend, "GET", "/acme/api/v1/summary")
    html = await call(frontend, "GET", "/acme")

    assert answer is not None and html is not None
    status, headers, body = answer
    assert (status, body) == (200, b'{"a":1}')
    assert headers[b"content-type"] == b"application/json" and headers[b"etag"] == etag_of(body).encode()
    assert headers[b"access-control-allow-origin"] == b"*"
    assert headers[b"cache-control"] == b"public, max-age=10, stale-while-revalidate=30, stale-if-error=86400"
    status, headers, body = html
    assert (status, body) == (200, b"<!doctype html><p>ok")
    assert (
        headers[b"content-type"] == b"text/html; charset=utf-8" and headers[b"cache-control"] == b"public, max-age=30"
    )
    assert b"access-control-allow-origin" not in headers
    assert headers[b"content-length"] == str(len(body)).encode() and b"x-request-id" in headers


async def test_a_matching_etag_is_a_304_counted_for_its_kind_of_document() -> None:
    served = page("acme", b"<p>ok")
    frontend = frontend_of(served)
    before = HTML.counts.not_modified

    answer = await call(frontend, "GET", "/acme", (b"if-none-match", served.etag.encode()))

    assert answer is not None and answer[0] == 304 and answer[2] == b""
    assert HTML.counts.not_modified == before + 1


async def test_the_host_picks_the_documents_only_once_some_are_on_a_host_of_their_own() -> None:
    own = widget("acme", b'{"own":1}')
    custom = PublicDocument(
        "status.acme.test", "/api/v1/summary", CONTENT_TYPE, b'{"custom":1}', etag_of(b'{"custom":1}'), 1, "id", SERVING
    )
    frontend = frontend_of(own, custom)

    on_custom = await call(frontend, "GET", "/api/v1/summary", (b"host", b"Status.Acme.Test:443"))
    elsewhere = await call(frontend, "GET", "/acme/api/v1/summary", (b"host", b"beacon.internal"))
    default_path_on_custom = await call(frontend, "GET", "/acme/api/v1/summary", (b"host", b"status.acme.test"))

    assert on_custom is not None and on_custom[2] == b'{"custom":1}'
    assert elsewhere is not None and elsewhere[2] == b'{"own":1}'
    assert default_path_on_custom is None  # not the custom host's document, and no route owns it
    assert frontend.cache is not None and frontend.cache.get("/api/v1/summary", "status.acme.test") is not None


async def test_owned_urls_are_answered_without_a_document_and_others_fall_through() -> None:
    frontend = frontend_of(page("acme", b"<p>ok"), routes=[PAGES_ROUTE, *WidgetSource.routes])

    missing = await call(frontend, "GET", "/nowhere")
    missing_widget = await call(frontend, "HEAD", "/nowhere/eu/api/v1/summary")
    preflight = await call(frontend, "OPTIONS", "/nowhere/api/v1/summary")
    no_preflight = await call(frontend, "OPTIONS", "/acme")
    post = await call(frontend, "POST", "/acme")
    other = await call(frontend, "GET", "/v2/status_pages")
    deeper = await call(frontend, "GET", "/a/b/c/api/v1/summary")

    assert missing is not None and missing[0] == 404
    assert msgspec.json.decode(missing[2])["errors"][0] == {"code": "not_found", "message": "No page here"}
    assert missing_widget is not None and missing_widget[0] == 404 and missing_widget[2] == b""
    assert preflight is not None and preflight[0] == 204
    assert preflight[1][b"access-control-allow-headers"] == b"If-None-Match, Cache-Control, Pragma"
    assert no_preflight is not None and no_preflight[0] == 405
    assert post is not None and post[0] == 405 and post[1][b"allow"] == b"GET, HEAD, OPTIONS"
    assert (
        msgspec.json.decode(post[2])["errors"][0]["message"]
        == "POST is not allowed here; the page answers GET, HEAD and OPTIONS"
    )
    assert other is None and deeper is None


async def test_a_page_s_own_document_is_found_by_the_page_s_id_and_kind() -> None:
    frontend = frontend_of(widget("acme", b'{"page":1}'), widget("acme", b'{"eu":1}', sub="eu"))
    cache = frontend.cache
    assert cache is not None

    found = cache.page_document("id-acme", "widget")

    assert found is not None and found.body == b'{"page":1}'
    assert cache.page_document("id-acme", "page") is None and cache.get(widget_path("acme", "eu")) is not None


async def test_a_notification_re_reads_only_the_source_it_names_past_what_is_held() -> None:
    widgets, pages = FakeSource("public_widget"), FakeSource("public_html", writes_wait=False)
    cache = DocumentCache(cast(Any, FakePool()), [widgets, pages])
    widgets.stored, widgets.checkpoint = [widget("acme", b"1", position=3)], 3
    pages.stored, pages.checkpoint = [page("acme", b"<p>1", position=2)], 2
    await cache.refresh(full=True)
    widgets.reads.clear()
    pages.reads.clear()
    widgets.stored = [widget("acme", b"1", position=3), widget("beta", b"2", position=5)]
    widgets.checkpoint = 6

    cache._on_notify("beacon_public_documents", DocumentsChanged("public_widget", 6, 1, 0).payload)
    cache._on_notify("beacon_public_documents", DocumentsChanged("public_feeds", 9, 4, 0).payload)
    await cache._step(Session(conn=cast(Any, None), fresh=False))

    assert (widgets.reads, pages.reads) == ([3], [])
    assert cache.get(widget_path("beta")) is not None and cache.get("/acme") is not None
    assert cache.positions == {"public_widget": 6, "public_html": 2}
    assert cache.position == 6  # only the sources writes wait for
    assert await cache.wait_for(6, timeout=0.01)


async def test_a_removal_re_reads_the_source_in_full() -> None:
    widgets = FakeSource("public_widget")
    cache = DocumentCache(cast(Any, FakePool()), [widgets])
    widgets.stored, widgets.checkpoint = [widget("acme", b"1", position=1), widget("beta", b"2", position=2)], 2
    await cache.refresh(full=True)
    widgets.stored, widgets.checkpoint = [widget("acme", b"1", position=1)], 4

    cache._on_notify("beacon_public_documents", DocumentsChanged("public_widget", 4, 0, 1).payload)
    await cache._step(Session(conn=cast(Any, None), fresh=False))

    assert widgets.reads[-1] is None
    assert cache.get(widget_path("beta")) is None and cache.get(widget_path("acme")) is not None


@pytest.mark.parametrize("payload", ["public_widget:4711:2:0", "a:b:1:0:0"])
def test_the_payload_names_the_source_and_round_trips(payload: str) -> None:
    change = DocumentsChanged.parse(payload)

    assert change.payload == payload
    assert change.position == int(payload.split(":")[-3])
