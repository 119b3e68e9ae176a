"""Public documents served from memory (docs/architecture.md#5-the-widget-is-bytes): every process holds
every public document as bytes, keyed by `(host, path)`, each with its content type, ETag and the
response headers prepared when it arrived, and answers `GET`/`HEAD` for them from a raw ASGI fast path in
front of Litestar's router — no I/O, no routing, no serialisation on the request path
(docs/adr/0001-widget-route.md has the measurements behind that choice).

Documents come from sources: a projection that renders them and stores them with its checkpoint (today
only the widget, api/widget.py). Each source says how to read its documents (all, or those written past
a position) and which public URLs it answers even when no document is there (the 404 envelope of an
unknown page, a CORS preflight, the 405 of another method). A new kind of document (the HTML page,
feeds, Statuspage JSON) is a new source feeding this same cache and fast path, not a new cache.

The host part of the key is `DEFAULT_HOST` for documents served on Beacon's own address. A page on a
custom domain is served through a host alias (docs/architecture.md#canonical-urls-and-custom-domains): a
source may hand the cache `HostAlias`es besides documents, and a request whose host (`Host`, or
`X-Forwarded-Host` from a trusted proxy) is an alias has its path rewritten to `/{slug}{path}` before the
fast path and Litestar see it, so every public route of the page answers at the domain's root and every
other path there is a path under the page that does not exist (a 404). `/healthz` and `/readyz` are left
as they are.

`DocumentCache` loads everything at start and then follows the sources: `NOTIFY beacon_public_documents`
names the source and the batch position that changed or removed documents
(projections/public_documents.py), and a poll of each source's checkpoint covers lost notifications.
When Postgres is unreachable it keeps what it has, so the last documents keep being served.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import msgspec
from litestar import Litestar

from api.client_address import Network, is_trusted, normalise_host, peer_address
from api.errors import ERROR_TYPES, ErrorDetail, ErrorEnvelope
from api.metrics import DocumentCounts
from api.request_id import ensure_request_id
from infra.follow import CONNECTION_ERRORS, Connect, Follower, Session, wait_set
from projections.public_documents import CHANNEL, DocumentsChanged, gzipped

log = logging.getLogger("beacon.public_documents")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_HOST = ""
"""The host of documents served on Beacon's own address, whatever the request's `Host` header says."""

DocumentKey = tuple[str, str]
"""`(host, path)`: where a public document is served."""

ACQUIRE_TIMEOUT = 5.0  # seconds; a busy or dead database delays freshness, it never blocks serving
ALLOWED_METHODS = b"GET, HEAD, OPTIONS"


@dataclass(frozen=True)
class Serving:
    """How one kind of document is served, beyond its content type: its cache headers, whether any origin
    may read it (`Access-Control-Allow-Origin: *` and the headers a poller needs), and the counters of
    this process's answers that /metrics reports (api/metrics.py)."""

    cache_control: bytes
    cors: bool
    counts: DocumentCounts
    compress: bool = False
    """Hold the document gzipped only (`Content-Encoding: gzip` for clients that accept it, inflated per
    request for the others): large HTML pages then cost a tenth of the memory in every process."""


@dataclass(frozen=True)
class PublicDocument:
    """A document as a source hands it to the cache."""

    host: str
    path: str
    content_type: str
    body: bytes
    etag: str
    position: int
    """The last event of the log the document reflects (its source's position when it was written)."""
    status_page_id: str
    serving: Serving
    page_name: str | None = None
    """Set on a page's own document of a kind (`widget`) that `/v2` routes find by the page's id."""
    gzip: bytes | None = None
    """The document gzipped by its source (then `body` may be empty and `size` is the plain length)."""
    size: int | None = None


Loader = Callable[["DocumentCache", str, str], Awaitable["CachedDocument | None"]]
"""Reads a document not held in memory, by `(cache, host, path)`: None when there is none; a database
error when it cannot tell (the fast path answers 503)."""


@dataclass(frozen=True)
class PublicRoute:
    """Public URLs the fast path answers whether or not a document is there: `owns(path)` says which."""

    name: str
    """What the URLs serve, in messages (`widget`)."""
    owns: Callable[[str], bool]
    not_found: str
    """The message of the 404 for an owned URL with no document."""
    preflight_headers: bytes | None
    """The request headers a CORS preflight may ask for; None: `OPTIONS` is a 405 like any other method."""
    load: Loader | None = None
    """Where an owned URL's document comes from when it is not in memory (documents read on demand)."""
    html_error: Callable[[int], bytes | None] | None = None
    """The HTML page of an error status (404, 503) for a browser (`Accept` prefers `text/html`); None or a
    None page: the error envelope."""


@dataclass(frozen=True)
class HostAlias:
    """A custom domain: requests on `host` are requests for the page `slug`'s public routes at its root."""

    host: str
    slug: str
    status_page_id: str
    position: int


UNALIASED_PATHS = frozenset({"/healthz", "/readyz"})
"""Paths a custom domain answers as Beacon's own host does: a load balancer probes them on any host name."""

ALIASED_HOST = "beacon.alias"
"""The scope key where a rewritten request keeps the custom domain it came on (for logs and renderers)."""
ORIGINAL_PATH = "beacon.original_path"
"""The scope key where a rewritten request keeps the path its client sent (an `as_of` link is signed for it)."""


class DocumentSource(Protocol):
    """Where documents come from: a projection that renders and stores them."""

    @property
    def name(self) -> str:
        """The projection's name, as `NOTIFY beacon_public_documents` payloads name it."""
        ...

    @property
    def writes_wait(self) -> bool:
        """Whether a write waits for this process to serve what it changed (read-your-writes)."""
        ...

    @property
    def routes(self) -> Sequence[PublicRoute]: ...

    async def position(self, conn: asyncpg.Connection) -> int:
        """How far the projection has read the log."""
        ...

    async def read(self, conn: asyncpg.Connection, *, after: int | None) -> Sequence[PublicDocument | HostAlias]:
        """Every document (and host alias), or only those written past `after`."""
        ...


@dataclass(frozen=True, slots=True)
class CachedDocument:
    """A document with its response headers prepared once, when it arrives, not per request."""

    body: bytes
    etag: str
    headers: list[tuple[bytes, bytes]]
    not_modified_headers: list[tuple[bytes, bytes]]
    position: int
    status_page_id: str
    page_name: str | None
    counts: DocumentCounts
    status: int = 200
    gzip: CachedDocument | None = None
    """The gzip representation (its own ETag); when set, `body` is empty and inflated from it on request."""

    def identity_body(self) -> bytes:
        return zlib.decompress(self.gzip.body, 31) if self.gzip is not None else self.body

    @classmethod
    def redirect(cls, location: str, *, cache_control: bytes, counts: DocumentCounts) -> CachedDocument:
        """A permanent redirect (`301`) held like a document."""
        headers = [
            (b"location", location.encode()),
            (b"content-length", b"0"),
            (b"cache-control", cache_control),
        ]
        return cls(b"", "", headers, headers, 0, "", None, counts, status=301)

    @classmethod
    def of(cls, document: PublicDocument) -> CachedDocument:
        etag = document.etag.encode()
        common = [(b"cache-control", document.serving.cache_control)]
        if document.serving.cors:
            common += [
                (b"access-control-allow-origin", b"*"),
                # Cross-origin scripts see only CORS-safelisted response headers unless told otherwise: the ETag
                # is what a poller sends back in If-None-Match, the request id what it quotes reporting a problem.
                (b"access-control-expose-headers", b"ETag, X-Request-Id"),
            ]
        common.append((b"x-content-type-options", b"nosniff"))
        compressed = document.gzip
        if compressed is None and document.serving.compress:
            compressed = gzipped(document.body)
        representation = None
        if compressed is not None:
            common.append((b"vary", b"Accept-Encoding"))
            representation = _gzipped(document, compressed, common)
        size = document.size if document.size is not None else len(document.body)
        return cls(
            body=b"" if representation is not None else document.body,
            etag=document.etag,
            headers=[
                (b"content-type", document.content_type.encode()),
                (b"content-length", str(size).encode()),
                (b"etag", etag),
                *common,
            ],
            not_modified_headers=[(b"etag", etag), *common],
            position=document.position,
            status_page_id=document.status_page_id,
            page_name=document.page_name,
            counts=document.serving.counts,
            gzip=representation,
        )


def _gzipped(document: PublicDocument, body: bytes, common: list[tuple[bytes, bytes]]) -> CachedDocument:
    """The gzip representation, with an ETag of its own, as a strong ETag names one representation (RFC
    9110 §8.8.3)."""
    etag = document.etag[:-1] + '-gzip"'
    return CachedDocument(
        body=body,
        etag=etag,
        headers=[
            (b"content-type", document.content_type.encode()),
            (b"content-encoding", b"gzip"),
            (b"content-length", str(len(body)).encode()),
            (b"etag", etag.encode()),
            *common,
        ],
        not_modified_headers=[(b"etag", etag.encode()), *common],
        position=document.position,
        status_page_id=document.status_page_id,
        page_name=document.page_name,
        counts=document.serving.counts,
    )


def accepts_gzip(accept_encoding: bytes | None) -> bool:
    """Whether `Accept-Encoding` allows gzip (not refused with `q=0`)."""
    if accept_encoding is None:
        return False
    for part in accept_encoding.decode("latin-1").lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "x-gzip", "*"):
            quality = params.strip().removeprefix("q=")
            return not (params.strip().startswith("q=") and quality.strip() in ("0", "0.0", "0.00", "0.000"))
    return False


class DocumentCache:
    """Every public document of this process, keyed by `(host, path)`, from every source."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        sources: Sequence[DocumentSource],
        *,
        connect: Connect | None = None,
        poll_interval: float = 0.5,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self.pool = pool
        self.trusted_proxies = tuple(trusted_proxies)
        """Whose `X-Forwarded-Host` names the host a request asked for (`BEACON_TRUSTED_PROXIES`)."""
        self._trusted_peers: dict[str, bool] = {}
        self._host_memo: dict[bytes, HostAlias | None] = {}
        """A raw host header value's alias (or None), as of the current aliases (cleared when they change)."""
        self.connect = connect
        """Opens the LISTEN connection, one of its own outside the pool (`infra.follow.dedicated`): the
        projection runner keeps pooled connections for its passes, and a long-held listener must not starve
        request handlers. None borrows a pool connection (tests)."""
        self.poll_interval = poll_interval
        self.sources = {source.name: source for source in sources}
        self.routes = [route for source in sources for route in source.routes]
        self.positions = dict.fromkeys(self.sources, 0)
        """How far each source's documents held here reach."""
        self.documents: dict[DocumentKey, CachedDocument] = {}
        self.pages: dict[tuple[str, str], CachedDocument] = {}
        """A page's own document of a kind by `(page ULID, kind)`, for `/v2` routes that name the page by id."""
        self._held: dict[str, dict[DocumentKey, CachedDocument]] = {name: {} for name in self.sources}
        """Each source's documents."""
        self._default: dict[str, CachedDocument] = {}
        """The documents of `DEFAULT_HOST` by path: what the fast path looks up."""
        self._hosts: dict[str, dict[str, CachedDocument]] = {}
        """Documents of other hosts, by host then path."""
        self._held_aliases: dict[str, dict[str, HostAlias]] = {name: {} for name in self.sources}
        self.aliases: dict[str, HostAlias] = {}
        """Custom domains by host, from every source."""
        self._pending: list[str] = []
        # Replaced on every move: a waiter holds the event current when it checked, so no move is missed.
        self._changed = asyncio.Event()
        self._follower: Follower | None = None

    @property
    def position(self) -> int:
        """The position this process serves documents at: the least of the sources writes wait for."""
        waited = [self.positions[name] for name, source in self.sources.items() if source.writes_wait]
        return min(waited, default=0)

    def get(self, path: str, host: str = DEFAULT_HOST) -> CachedDocument | None:
        return self.documents.get((host, path))

    def page_document(self, status_page_id: str, kind: str) -> CachedDocument | None:
        return self.pages.get((status_page_id, kind))

    def alias(self, scope: Scope) -> None:
        """Rewrite a request on a custom domain to its page's path (module docstring); others are left alone."""
        if not self.aliases or ALIASED_HOST in scope:
            return
        # `api.client_address.request_host`'s rule, with the peer's trust and each host value's alias memoised:
        # it runs before every public document is served once any page has a custom domain (~0.6 µs a
        # request without the memo, ~0.1 µs with it).
        value = _header(scope, b"x-forwarded-host") if self._peer_trusted(scope) else None
        value = value or _header(scope, b"host") or b""
        try:
            alias = self._host_memo[value]
        except KeyError:
            host = normalise_host(value.split(b",")[0].decode("latin-1"))
            alias = self.aliases.get(host) if host is not None else None
            if len(self._host_memo) >= 4096:  # host values are the client's to choose: keep the memo bounded
                self._host_memo.clear()
            self._host_memo[value] = alias
        if alias is None or scope["path"] in UNALIASED_PATHS:
            return
        prefix = f"/{alias.slug}"
        path: str = scope["path"]
        scope["path"] = prefix if path == "/" else prefix + path
        raw: bytes | None = scope.get("raw_path")
        if raw is not None:
            scope["raw_path"] = prefix.encode() if raw == b"/" else prefix.encode() + raw
        scope[ALIASED_HOST] = alias.host
        scope[ORIGINAL_PATH] = path

    def _peer_trusted(self, scope: Scope) -> bool:
        """Whether the request comes from a trusted proxy, memoised by the peer's address (a handful of
        proxies, or clients when there are none): an address parsed per request cost the fast path ~3 µs."""
        if not self.trusted_proxies:
            return False
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        trusted = self._trusted_peers.get(peer)
        if trusted is None:
            if len(self._trusted_peers) >= 4096:
                self._trusted_peers.clear()
            trusted = self._trusted_peers[peer] = is_trusted(peer_address(scope), self.trusted_proxies)
        return trusted

    def find(self, scope: Scope) -> CachedDocument | None:
        """The document a request asks for: by `Host` only when some document is on a host of its own (a
        request rewritten from a custom domain is already a path on Beacon's own host)."""
        paths = self._default
        if self._hosts and ALIASED_HOST not in scope:
            host = _header(scope, b"host")
            if host is not None:
                paths = self._hosts.get(host.decode("latin-1").rsplit(":", 1)[0].lower(), paths)
        return paths.get(scope["path"])

    def route(self, path: str) -> PublicRoute | None:
        for route in self.routes:
            if route.owns(path):
                return route
        return None

    async def start(self) -> None:
        """Load everything once (the process is not ready without it), then follow the sources."""
        await self.refresh(full=True)
        self._follower = Follower(
            "public-documents",
            self.connect or self.pool.acquire,
            channels=[CHANNEL],
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
                log.warning("public documents did not reach position %s within %.1fs", position, timeout)
                return False
            await wait_set(self._changed, remaining)
        return True

    async def refresh(self, *, full: bool, sources: Iterable[str] | None = None) -> None:
        """Re-read `sources` (all by default): everything, or what was written past what is held. Each
        source's checkpoint is read before its documents: what is read is then at least that current."""
        names = list(self.sources if sources is None else sources)
        read: list[tuple[str, int, Sequence[PublicDocument | HostAlias]]] = []
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
            for name in names:
                source = self.sources[name]
                checkpoint = await source.position(conn)
                read.append((name, checkpoint, await source.read(conn, after=None if full else self.positions[name])))
        for name, _, documents in read:
            self.load(name, documents, full=full)
        for name, checkpoint, _ in read:
            self._advance(name, checkpoint)

    def load(self, source: str, documents: Iterable[PublicDocument | HostAlias], *, full: bool) -> None:
        """Hold `documents` of `source`, in place of all it held (`full`) or besides (replacing equal keys)."""
        held = {} if full else dict(self._held[source])
        aliases = {} if full else dict(self._held_aliases[source])
        for document in documents:
            if isinstance(document, HostAlias):
                aliases[document.host] = document
            else:
                held[(document.host, document.path)] = CachedDocument.of(document)
        self._held[source] = held
        self._held_aliases[source] = aliases
        self._publish()

    def _publish(self) -> None:
        """Rebuild the lookups from what every source holds; each is replaced in one assignment, so a
        request sees the old set or the new one."""
        documents: dict[DocumentKey, CachedDocument] = {}
        for held in self._held.values():
            documents.update(held)
        default: dict[str, CachedDocument] = {}
        hosts: dict[str, dict[str, CachedDocument]] = {}
        for (host, path), document in documents.items():
            (default if host == DEFAULT_HOST else hosts.setdefault(host, {}))[path] = document
        pages = {(d.status_page_id, d.page_name): d for d in documents.values() if d.page_name is not None}
        aliases: dict[str, HostAlias] = {}
        held_aliases = (alias for held in self._held_aliases.values() for alias in held.values())
        for alias in sorted(held_aliases, key=lambda alias: alias.position):
            aliases[alias.host] = alias  # a domain that moved between pages: the latest wins
        self.documents, self.pages, self._default, self._hosts = documents, pages, default, hosts
        if aliases != self.aliases:
            self.aliases, self._host_memo = aliases, {}

    def _advance(self, source: str, position: int) -> None:
        if position > self.positions[source]:
            self.positions[source] = position
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
            behind = [
                name
                for name, source in self.sources.items()
                if await source.position(session.conn) > self.positions[name]
            ]
            if behind:
                await self.refresh(full=True, sources=behind)
            return
        changes: dict[str, DocumentsChanged] = {}
        for payload in payloads:
            change = DocumentsChanged.parse(payload)
            if change.source not in self.sources:
                continue  # a source this process does not serve (another version during a rolling deploy)
            seen = changes.get(change.source)
            if seen is not None:
                change = DocumentsChanged(
                    change.source,
                    max(seen.position, change.position),
                    seen.changed + change.changed,
                    seen.deleted + change.deleted,
                )
            changes[change.source] = change
        deleted = [name for name, change in changes.items() if change.deleted]
        changed = [name for name, change in changes.items() if change.changed and not change.deleted]
        if deleted:
            await self.refresh(full=True, sources=deleted)
        if changed:
            await self.refresh(full=False, sources=changed)
        for name, change in changes.items():
            self._advance(name, change.position)


def _error_body(status: int, code: str, request_id: str, message: str) -> bytes:
    return msgspec.json.encode(
        ErrorEnvelope(
            type=ERROR_TYPES.get(status, "api_error"),
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


class PublicFrontend:
    """The raw ASGI fast path: public document requests are answered here, everything else goes to `inner`."""

    def __init__(self, inner: ASGIApp | None = None) -> None:
        self.inner = inner
        self.cache: DocumentCache | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await self.try_serve(scope, send):
            assert self.inner is not None
            await self.inner(scope, receive, send)

    async def try_serve(self, scope: Scope, send: Send) -> bool:
        """Answer a request for a public document's URL and return True, or return False for everything else."""
        cache = self.cache
        if cache is None or scope["type"] != "http":
            return False
        cache.alias(scope)  # before anything reads the path: Litestar gets the rewritten request too
        if b"as_of=" in scope.get("query_string", b""):
            return False  # a read of the past is rendered on request, never served from memory
        document = cache.find(scope)
        method: str = scope["method"]
        if document is None or (method != "GET" and method != "HEAD"):
            route = cache.route(scope["path"])
            if route is None:
                return False
            request_id = ensure_request_id(scope)
            head = method == "HEAD"
            if method != "GET" and not head:
                await _other_method(route, method, request_id, send)
                return True
            if route.load is not None:
                try:
                    document = await route.load(cache, scope.get(ALIASED_HOST, DEFAULT_HOST), scope["path"])
                except (*CONNECTION_ERRORS, asyncpg.PostgresError) as error:
                    log.warning("public document %s unavailable: %r", scope["path"], error)
                    message = "This document cannot be read right now; try again shortly"
                    await _send_error(
                        send, 503, "unavailable", request_id, message, head=head, route=route, scope=scope
                    )
                    return True
            if document is None:
                await _send_error(
                    send, 404, "not_found", request_id, route.not_found, head=head, route=route, scope=scope
                )
                return True
        else:
            request_id = ensure_request_id(scope)
        if document.status != 200:
            await send(
                {
                    "type": "http.response.start",
                    "status": document.status,
                    "headers": [*document.headers, (b"x-request-id", request_id.encode())],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return True
        identity = document
        if document.gzip is not None and accepts_gzip(_header(scope, b"accept-encoding")):
            document = document.gzip
        if_none_match = _header(scope, b"if-none-match")
        if if_none_match is not None and etag_matches(if_none_match, document.etag):
            headers = [*document.not_modified_headers, (b"x-request-id", request_id.encode())]
            document.counts.not_modified += 1  # a plain integer: /metrics collects it (api/metrics.py)
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        headers = [*document.headers, (b"x-request-id", request_id.encode())]
        document.counts.ok += 1
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        body = b"" if method == "HEAD" else document.body if document is not identity else identity.identity_body()
        await send({"type": "http.response.body", "body": body})
        return True


async def _other_method(route: PublicRoute, method: str, request_id: str, send: Send) -> None:
    """`OPTIONS` is a CORS preflight where the route allows one: 204 whether or not the document exists, since
    a preflight carries no credentials and its answer is the same for every URL of the route (it reveals
    nothing, needs no lookup)."""
    if method == "OPTIONS" and route.preflight_headers is not None:
        headers = [
            (b"allow", ALLOWED_METHODS),
            (b"access-control-allow-origin", b"*"),
            (b"access-control-allow-methods", ALLOWED_METHODS),
            (b"access-control-allow-headers", route.preflight_headers),
            (b"access-control-max-age", b"86400"),  # the answer never varies; browsers cap it lower (Chromium: 2 h)
            (b"x-request-id", request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    message = f"{method} is not allowed here; the {route.name} answers GET, HEAD and OPTIONS"
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
    route: PublicRoute | None = None,
    scope: Scope | None = None,
) -> None:
    """The error envelope (docs/architecture.md#error-envelope), built here because these requests never
    reach Litestar's exception handlers; a browser asking for a route with HTML error pages gets the page."""
    page = route.html_error(status) if route is not None and route.html_error is not None else None
    if page is not None and scope is not None and prefers_html(_header(scope, b"accept")):
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(page)).encode()),
            (b"cache-control", b"no-cache"),
            (b"x-content-type-options", b"nosniff"),
            (b"x-request-id", request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else page})
        return
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


def prefers_html(accept: bytes | None) -> bool:
    """Whether an `Accept` header ranks `text/html` above JSON (a browser's navigation does)."""
    if accept is None:
        return False
    best: dict[str, float] = {}
    for part in accept.decode("latin-1").lower().split(","):
        media, *params = (item.strip() for item in part.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        best[media] = max(best.get(media, 0.0), quality)
    html = best.get("text/html", 0.0)
    return html > 0 and html >= max(best.get("application/json", 0.0), best.get("*/*", 0.0) if html == 0 else 0.0)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class PublicLitestar(Litestar):
    """Litestar with the public documents' fast path in front of everything it does: such a request never
    reaches Litestar's routing, middleware or hooks; every other request (lifespan, `/v2`, `/schema`) is
    Litestar's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.public = PublicFrontend()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not await self.public.try_serve(scope, send):
            await super().__call__(scope, receive, send)
