"""The public site as a source of public documents (docs/architecture.md#public-site): the `public_site`
projection's documents, served by the fast path of api/public_documents.py.

Every process holds the hot set in memory — each page's and sub-page's index, the eight Statuspage JSON
documents, the feeds, and the pages of ongoing and upcoming notices — so those are answered with no
database on the request path, also while Postgres is down. Other documents (history, past notices) are
read by path from Postgres when asked and kept in a bounded LRU (`BEACON_PUBLIC_CACHE_MB`); a changed one
leaves every process's LRU when the projection's notification arrives. While Postgres is down, one that is
not cached answers 503 (an HTML page for a browser).

`/{slug}/incidents/{id}` with a maintenance window's id answers 301 to its `/maintenances/` page, and a
document's URL with a trailing slash (`/{slug}/`) 301 to the URL without it. A page on
a custom domain is served there through the cache's host alias (its requests arrive rewritten to the
page's paths), so its documents are stored once.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence

import asyncpg

from api.metrics import DocumentCounts
from api.public_documents import DEFAULT_HOST, CachedDocument, DocumentCache, PublicDocument, PublicRoute, Serving
from projections import public_site
from projections.public_site import StoredDocument
from projections.public_site_html import not_found_page, unavailable_page

CACHE_CONTROL = b"public, max-age=30, stale-while-revalidate=60, stale-if-error=86400"
SITE = DocumentCounts()
"""This process's answers of public site documents."""

HTML_SERVING = Serving(cache_control=CACHE_CONTROL, cors=False, counts=SITE, compress=True)
OPEN_SERVING = Serving(cache_control=CACHE_CONTROL, cors=True, counts=SITE, compress=True)
"""JSON and feeds: any origin may read them."""

_NOT_A_PAGE = r"(?:v2|api|schema|healthz|readyz|metrics|static)"
_NOT_A_SUB_PAGE = r"(?:api|subscriptions|history|incidents|maintenances)"
_JSON = (
    r"summary|status|components|incidents|scheduled-maintenances|incidents/unresolved"
    r"|scheduled-maintenances/upcoming|scheduled-maintenances/active"
)
_SUFFIX = (
    rf"(?:/history|/history\.atom|/history\.rss|/feed\.atom|/feed\.rss|/history/\d{{4}}-\d{{2}}"
    rf"|/(?:incidents|maintenances)/[0-9A-Za-z]+|/api/v2/(?:{_JSON})\.json)?"
)
_SITE_PATH = re.compile(rf"^/(?!{_NOT_A_PAGE}(?:/|$))[a-z0-9-]+(?:/(?!{_NOT_A_SUB_PAGE}(?:/|$))[a-z0-9-]+)?{_SUFFIX}$")
_INCIDENT_PATH = re.compile(r"^(.*)/incidents/([0-9A-Za-z]+)$")


def is_site_path(path: str) -> bool:
    """A URL of a page's public site on Beacon's own host, whether or not there is a document."""
    return _SITE_PATH.match(path) is not None


def _without_slash(path: str) -> str | None:
    """The document URL `path` names with a trailing slash (`/{slug}/`, `/{slug}/history/`), which answers
    a 301 to it; None for any other path."""
    if len(path) > 1 and path.endswith("/") and is_site_path(path[:-1]):
        return path[:-1]
    return None


def _size(document: CachedDocument) -> int:
    return len(document.body) + (len(document.gzip.body) if document.gzip is not None else 0)


def _html_error(status: int) -> bytes | None:
    return unavailable_page() if status == 503 else not_found_page() if status == 404 else None


def _serving(content_type: str) -> Serving:
    return HTML_SERVING if content_type.startswith("text/html") else OPEN_SERVING


def _public(stored: StoredDocument, host: str, path: str) -> PublicDocument:
    return PublicDocument(
        host=host,
        path=path,
        content_type=stored.content_type,
        body=stored.body,
        etag=stored.etag,
        position=stored.position,
        status_page_id=stored.status_page_id,
        serving=_serving(stored.content_type),
        page_name=None,
        gzip=stored.gzip,
        size=stored.size,
    )


class SiteSource:
    """The `public_site` projection's documents: the hot set for the cache, the rest through an LRU."""

    name = public_site.KEY
    writes_wait = False  # the site is rendered in a pass of its own; a write never waits for it

    def __init__(self, cache_bytes: int = 256 * 1024 * 1024) -> None:
        self.cache_bytes = cache_bytes
        self.cold: OrderedDict[str, CachedDocument] = OrderedDict()
        """Documents read on demand, by their path on Beacon's own host, least recently used first."""
        self.cold_size = 0
        self.routes: Sequence[PublicRoute] = (
            PublicRoute(
                name="public site",
                owns=self.owns,
                not_found="No public status page document here",
                preflight_headers=b"If-None-Match, Cache-Control, Pragma",
                load=self.load,
                html_error=_html_error,
            ),
        )

    def owns(self, path: str) -> bool:
        return is_site_path(path) or _without_slash(path) is not None

    async def position(self, conn: asyncpg.Connection) -> int:
        return await public_site.site_position(conn)

    async def read(self, conn: asyncpg.Connection, *, after: int | None) -> list[PublicDocument]:
        if after is None:
            self._forget_all()
        else:
            for path in await public_site.changed_cold(conn, after):
                self._forget(path)
        documents: list[PublicDocument] = []
        for stored in await public_site.read_hot(conn, after=after):
            documents.append(_public(stored, DEFAULT_HOST, stored.path))
        return documents

    async def load(self, cache: DocumentCache, host: str, path: str) -> CachedDocument | None:
        """A document not held in memory: from the LRU, else from Postgres (and then kept in the LRU)."""
        stored_path = path  # a custom domain's request arrives rewritten to the page's path
        cached = self.cold.get(stored_path)
        if cached is not None:
            self.cold.move_to_end(stored_path)
            return cached
        canonical = _without_slash(path)
        if canonical is not None:
            return self._redirect_to(cache, host, canonical)
        redirect = self._window_redirect(cache, host, path)
        if redirect is not None:
            return redirect
        if not is_site_path(stored_path):
            return None
        async with cache.pool.acquire(timeout=5.0) as conn:
            stored = await public_site.read_one(conn, stored_path)
            if stored is None:
                match = _INCIDENT_PATH.match(stored_path)
                if match is None or await public_site.read_one(conn, f"{match[1]}/maintenances/{match[2]}") is None:
                    return None
                return self._redirect_to(cache, host, path.replace("/incidents/", "/maintenances/"))
        document = CachedDocument.of(_public(stored, host, path))
        self._keep(stored_path, document)
        return document

    def _window_redirect(self, cache: DocumentCache, host: str, path: str) -> CachedDocument | None:
        """`/incidents/{id}` of a window whose page is held in memory (so it redirects with Postgres down)."""
        match = _INCIDENT_PATH.match(path)
        if match is None:
            return None
        target = f"{match[1]}/maintenances/{match[2]}"
        if cache.get(target) is None:
            return None
        return self._redirect_to(cache, host, target)

    @staticmethod
    def _redirect_to(cache: DocumentCache, host: str, target: str) -> CachedDocument:
        """A 301 to `target`; on a custom domain, to the path its client sees (without the page's slug)."""
        alias = cache.aliases.get(host)
        if alias is not None and target.startswith(f"/{alias.slug}/"):
            target = target.removeprefix(f"/{alias.slug}")
        return CachedDocument.redirect(target, cache_control=CACHE_CONTROL, counts=SITE)

    def _keep(self, path: str, document: CachedDocument) -> None:
        self.cold[path] = document
        self.cold_size += _size(document)
        while self.cold_size > self.cache_bytes and self.cold:
            _, evicted = self.cold.popitem(last=False)
            self.cold_size -= _size(evicted)

    def _forget(self, path: str) -> None:
        evicted = self.cold.pop(path, None)
        if evicted is not None:
            self.cold_size -= _size(evicted)

    def _forget_all(self) -> None:
        self.cold.clear()
        self.cold_size = 0
