"""`?as_of=` on public routes (docs/architecture.md#time-travel): who may read the past, and the read-only
links that let a browser do it without an API key.

A public route reads the past only for a caller with a `Bearer` API key (any scope) or with `?key=`
holding a token minted by `POST /v2/as_of_links`: signed with `BEACON_SECRET_KEY` (infra/tokens.py), valid
15 minutes, and good for one path and one instant — its subject is a digest of both, so it cannot be
moved to another page or another time. An API key in a URL is refused (URLs end up in logs, histories and
`Referer` headers). Answers carry `Cache-Control: private, no-store` and are rendered on request, never
kept in the public documents' memory, and Beacon's request log never writes a query string.

`authorised_as_of(request)` is what a public route calls: None for a read of the present, the instant for
an authorised read of the past, or an `ApiError` (401, or 422 for an unreadable instant).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote
from uuid import UUID, uuid5

from api.auth import authenticate
from api.errors import ApiError
from api.public_documents import ORIGINAL_PATH
from api.services import services_of
from api.types import AnyRequest
from domain.base import DomainError
from infra.api_keys import TOKEN_PREFIX
from infra.clock import format_timestamp
from infra.tokens import sign, verify

LINK_VALIDITY = timedelta(minutes=15)
PRIVATE_HEADERS = {"Cache-Control": "private, no-store"}
"""The cache headers of every answer about the past."""


_LINK_NAMESPACE = UUID("9d3f1c0e-6a7b-4e55-8c21-4f0a2b7d9e13")


def _subject(path: str, as_of: datetime) -> UUID:
    """What a link's token is signed for: this path at this instant, nothing else."""
    return uuid5(_LINK_NAMESPACE, f"{path}\n{format_timestamp(as_of)}")


def mint_link(secret_key: bytes, path: str, as_of: datetime, now: datetime) -> tuple[str, datetime]:
    """A read-only link to `path` as of `as_of`, and when it stops working."""
    expires_at = now + LINK_VALIDITY
    token = sign(secret_key, "as_of", _subject(path, as_of), expires_at)
    return f"{path}?as_of={quote(format_timestamp(as_of), safe='')}&key={token}", expires_at


def parse_as_of(value: str) -> datetime:
    """An RFC 3339 instant with its zone, or a 422 naming `as_of`."""
    try:
        instant = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        raise ApiError(422, "as_of must be an RFC 3339 time such as 2026-03-03T14:05:00Z", parameter="as_of") from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ApiError(422, "as_of must carry a time zone (e.g. a trailing Z)", parameter="as_of")
    return instant


async def authorised_as_of(request: AnyRequest) -> datetime | None:
    """The instant a public request may read the page as of, None when it asks for the present."""
    raw = request.query_params.get("as_of")
    if raw is None:
        return None
    as_of = parse_as_of(raw)
    services = services_of(request)
    if request.headers.get("authorization") is not None:
        await authenticate(request, services)  # any valid key; a bad one is a 401, never a fallback to `key`
        return as_of
    key = request.query_params.get("key")
    if key is None:
        raise ApiError(
            401,
            "Reading the past needs `Authorization: Bearer <api key>` or a link from POST /v2/as_of_links",
            code="unauthenticated",
        )
    if key.startswith(TOKEN_PREFIX):
        raise ApiError(
            401,
            "An API key never goes in a URL: send it as `Authorization: Bearer`, or mint a link with "
            "POST /v2/as_of_links (and revoke a key that was sent this way)",
            code="unauthenticated",
            parameter="key",
        )
    path = str(request.scope.get(ORIGINAL_PATH, request.url.path))
    try:
        subject = verify(services.secret_key, "as_of", key, now=services.clock.now())
    except DomainError:
        subject = None
    if subject != _subject(path, as_of):
        raise ApiError(
            401,
            "This link is not valid for this page and instant, or it has expired (links last 15 minutes)",
            code="unauthenticated",
            parameter="key",
        )
    return as_of
