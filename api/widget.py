"""Serving the public widget (docs/architecture.md#widget and #5-the-widget-is-bytes): every process
keeps every document in memory and answers `GET`/`HEAD /{page}/api/v1/summary` and
`/{page}/{sub_page}/api/v1/summary` from a raw ASGI
fast path in front of Litestar's router — no I/O, no routing, no serialisation on the request path
(docs/adr/0001-widget-route.md has the measurements behind that choice). The same path answers CORS
preflights (`OPTIONS`) on those URLs and a 405 envelope for any other method.

`WidgetCache` loads all documents at start and then follows the projection: `NOTIFY beacon_widget`
says which batch position changed what, and a poll of the projection's checkpoint covers lost
notifications. When Postgres is unreachable it keeps what it has, so the last documents keep being served.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg
import msgspec
from litestar import Litestar

from api.errors import ERROR_TYPES, ErrorDetail, ErrorEnvelope
from api.metrics import WIDGET
from api.request_id import ensure_request_id
from infra.follow import CONNECTION_ERRORS, Follower, Session, dedicated, wait_set
from projections.public_widget import WIDGET_CHANNEL, StoredDocument, read_documents, widget_position

log = logging.getLogger("beacon.widget")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SUFFIX = "/api/v1/summary"
ACQUIRE_TIMEOUT = 5.0  # seconds; a busy or dead database delays freshness, it never blocks serving
CACHE_CONTROL = b"public, max-age=10, stale-while-revalidate=30, stale-if-error=86400"
_COMMON_HEADERS = [
    (b"cache-control", CACHE_CONTROL),
    (b"access-control-allow-origin", b"*"),
    # Cross-origin scripts see only CORS-safelisted response headers unless told otherwise: the ETag is what
    # a poller sends back in If-None-Match, the request id is what it quotes when reporting a problem.
    (b"access-control-expose-headers", b"ETag, X-Request-Id"),
    (b"x-content-type-options", b"nosniff"),
]
ALLOWED_METHODS = b"GET, HEAD, OPTIONS"
PREFLIGHT_ALLOWED_HEADERS = b"If-None-Match, Cache-Control, Pragma"
"""The request headers a widget poller sets itself that the fetch spec does not safelist (so the browser
asks first): `If-None-Match` for conditional polling, and the `Cache-Control`/`Pragma: no-cache` pair
pollers use to get past caches. No `If-Modified-Since`: the widget has no `Last-Modified` to compare."""
_PREFLIGHT_HEADERS = [
    (b"allow", ALLOWED_METHODS),
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", ALLOWED_METHODS),
    (b"access-control-allow-headers", PREFLIGHT_ALLOWED_HEADERS),
    (b"access-control-max-age", b"86400"),  # the answer never varies; browsers cap it lower (Chromium: 2 h)
]


@dataclass(frozen=True)
class CachedDocument:
    """A document with its response headers prepared once, when it arrives, not per request."""

    body: bytes
    etag: str
    headers: list[tuple[bytes, bytes]]
    not_modified_headers: list[tuple[bytes, bytes]]
    position: int
    status_page_id: str

    @classmethod
    def of(cls, stored: StoredDocument) -> CachedDocument:
        etag = stored.etag.encode()
        return cls(
            body=stored.body,
            etag=stored.etag,
            headers=[
                (b"content-type", b"application/json"),
                (b"content-length", str(len(stored.body)).encode()),
                (b"etag", etag),
                *_COMMON_HEADERS,
            ],
            not_modified_headers=[(b"etag", etag), *_COMMON_HEADERS],
            position=stored.position,
            status_page_id=stored.status_page_id,
        )


class WidgetCache:
    """All widget documents of this process, keyed by `(page_slug, sub_page_slug)` ('' for the page)."""

    def __init__(self, pool: asyncpg.Pool, *, dsn: str | None = None, poll_interval: float = 0.5) -> None:
        self.pool = pool
        self.dsn = dsn
        """With a DSN the LISTEN connection is its own, outside the pool: the projection runner keeps
        pooled connections for its passes, and a long-held listener must not starve request handlers."""
        self.poll_interval = poll_interval
        self.documents: dict[tuple[str, str], CachedDocument] = {}
        self.by_page_id: dict[str, CachedDocument] = {}
        """Each page's own document by the page's ULID, for `GET /v2/status_pages/{id}/widget`."""
        self.position = 0
        self._pending: list[str] = []
        # Replaced on every move: a waiter holds the event current when it checked, so no move is missed.
        self._changed = asyncio.Event()
        self._follower: Follower | None = None

    def get(self, page_slug: str, sub_page_slug: str = "") -> CachedDocument | None:
        return self.documents.get((page_slug, sub_page_slug))

    async def start(self) -> None:
        """Load everything once (the process is not ready without it), then follow the projection."""
        await self.refresh(full=True)
        connect = partial(dedicated, self.dsn, timeout=ACQUIRE_TIMEOUT) if self.dsn is not None else self.pool.acquire
        self._follower = Follower(
            "widget-cache",
            connect,
            channels=[WIDGET_CHANNEL],
            on_notify=self._on_notify,
            poll_interval=self.poll_interval,
            retry_interval=self.poll_interval,
            # Any database error only delays freshness: keep serving the last documents and follow again.
            retry_on=(*CONNECTION_ERRORS, asyncpg.PostgresError),
        )
        await self._follower.start(self._step)

    async def stop(self) -> None:
        if self._follower is not None:
            await self._follower.stop()
            self._follower = None

    async def wait_for(self, position: int, timeout: float) -> bool:
        """True once this process serves documents reflecting `position` (read-your-writes,
        docs/architecture.md#6-read-your-writes)."""
        deadline = time.monotonic() + timeout
        while self.position < position:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("widget cache did not reach position %s within %.1fs", position, timeout)
                return False
            await wait_set(self._changed, remaining)
        return True

    async def refresh(self, *, full: bool) -> None:
        """Read the checkpoint first, then the documents: what is read is then at least that current."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
            checkpoint = await widget_position(conn)
            stored = await read_documents(conn, after=None if full else self.position)
        documents = {} if full else dict(self.documents)
        for item in stored:
            documents[(item.page_slug, item.sub_page_slug)] = CachedDocument.of(item)
        self.documents = documents  # one assignment: requests see the old set or the new one
        self.by_page_id = {doc.status_page_id: doc for (_, sub), doc in documents.items() if not sub}
        self._advance(checkpoint)

    def _advance(self, position: int) -> None:
        if position > self.position:
            self.position = position
            self._changed.set()
            self._changed = asyncio.Event()

    def _on_notify(self, _channel: str, payload: str) -> bool:
        self._pending.append(payload)
        return True

    async def _step(self, session: Session) -> None:
        """Apply what the notifications say changed; reload in full after any gap in listening."""
        payloads, self._pending = self._pending, []
        if session.fresh:
            await self.refresh(full=True)  # covers whatever happened while not listening
            return
        if not payloads:
            # Safety net: a notification can only be lost with its connection, but check anyway.
            if await widget_position(session.conn) > self.position:
                await self.refresh(full=True)
            return
        position, changed, deleted = 0, 0, 0
        for payload in payloads:
            p, c, d = (int(part) for part in payload.split(":"))
            position, changed, deleted = max(position, p), changed + c, deleted + d
        if deleted:
            await self.refresh(full=True)
        elif changed:
            await self.refresh(full=False)
        self._advance(position)


def _error_body(status: int, code: str, request_id: str, message: str) -> bytes:
    return msgspec.json.encode(
        ErrorEnvelope(
            type=ERROR_TYPES[status],
            status=status,
            request_id=request_id,
            errors=[ErrorDetail(code=code, message=message)],
        )
    )


def etag_matches(if_none_match: bytes, etag: str) -> bool:
    """`If-None-Match` uses the weak comparison (RFC 9110 §13.1.2): a W/ prefix is ignored."""
    for candidate in if_none_match.decode("latin-1").split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


class WidgetFrontend:
    """The raw ASGI fast path: widget requests are answered here, everything else goes to `inner`."""

    def __init__(self, inner: ASGIApp | None = None) -> None:
        self.inner = inner
        self.cache: WidgetCache | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await self.try_serve(scope, send):
            assert self.inner is not None
            await self.inner(scope, receive, send)

    async def try_serve(self, scope: Scope, send: Send) -> bool:
        """Answer a request for a widget URL and return True, or return False for everything else."""
        if scope["type"] != "http" or self.cache is None:
            return False
        path: str = scope["path"]
        if not path.endswith(SUFFIX):
            return False
        parts = path[1 : -len(SUFFIX)].split("/")
        if len(parts) == 1:
            key = (parts[0], "")
        elif len(parts) == 2:
            key = (parts[0], parts[1])
        else:
            return False
        method: str = scope["method"]
        request_id = ensure_request_id(scope)
        if method not in ("GET", "HEAD"):
            await self._other_method(method, request_id, send)
            return True
        document = self.cache.documents.get(key)
        if document is None:
            message = "No status page widget here (unknown page, or its widget API is disabled)"
            await _send_error(send, 404, "not_found", request_id, message, head=method == "HEAD")
            return True
        if_none_match = _header(scope, b"if-none-match")
        if if_none_match is not None and etag_matches(if_none_match, document.etag):
            headers = [*document.not_modified_headers, (b"x-request-id", request_id.encode())]
            WIDGET.not_modified += 1  # a plain integer: /metrics collects it (api/metrics.py)
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        headers = [*document.headers, (b"x-request-id", request_id.encode())]
        WIDGET.ok += 1
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else document.body})
        return True

    @staticmethod
    async def _other_method(method: str, request_id: str, send: Send) -> None:
        """`OPTIONS` is a CORS preflight: 204 whether or not the widget exists, since a preflight carries no
        credentials and its answer is the same for every widget URL (it reveals nothing, needs no lookup)."""
        if method == "OPTIONS":
            headers = [*_PREFLIGHT_HEADERS, (b"x-request-id", request_id.encode())]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        message = f"{method} is not allowed here; the widget answers GET, HEAD and OPTIONS"
        await _send_error(send, 405, "method_not_allowed", request_id, message, extra=((b"allow", ALLOWED_METHODS),))


async def _send_error(
    send: Send,
    status: int,
    code: str,
    request_id: str,
    message: str,
    *,
    head: bool = False,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """The error envelope (docs/architecture.md#error-envelope), built here because widget requests never reach
    Litestar's exception handlers."""
    body = _error_body(status, code, request_id, message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-cache"),
        (b"access-control-allow-origin", b"*"),
        (b"x-content-type-options", b"nosniff"),
        (b"x-request-id", request_id.encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class WidgetLitestar(Litestar):
    """Litestar with the widget fast path in front of everything it does: a widget request never reaches
    Litestar's routing, middleware or hooks; every other request (lifespan, `/v2`, `/schema`) is Litestar's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.widget = WidgetFrontend()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not await self.widget.try_serve(scope, send):
            await super().__call__(scope, receive, send)
