"""`POST /v2/as_of_links` (any key): a read-only link to a public page as of an instant, valid 15 minutes,
so a browser can open the past without an API key (api/as_of.py)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

import msgspec
from litestar import Controller, post
from litestar.params import JSONBody

from api.as_of import mint_link
from api.errors import ApiError
from api.services import services_of
from api.types import AnyRequest
from api.wire import Payload
from infra.clock import format_timestamp


class AsOfLinkPayload(Payload):
    path: str
    """The public path as it will be requested (`/acme/history`, or `/history` on the page's custom domain)."""
    as_of: datetime


class AsOfLink(msgspec.Struct):
    url: str
    expires_at: str


class AsOfLinkController(Controller):
    path = "/as_of_links"

    @post("/", status_code=201, summary="CreateAsOfLink", opt={"reads_only": True})  # records nothing: any key
    async def create(self, request: AnyRequest, data: JSONBody[AsOfLinkPayload]) -> AsOfLink:
        services = services_of(request)
        parts = urlsplit(data.path)
        if not data.path.startswith("/") or parts.scheme or parts.netloc or parts.query or parts.fragment:
            raise ApiError(422, "path must be a public path such as /acme/history, without query string", field="path")
        if data.as_of.tzinfo is None or data.as_of.utcoffset() is None:
            raise ApiError(422, "as_of must carry a time zone (e.g. a trailing Z)", field="as_of")
        url, expires_at = mint_link(services.secret_key, data.path, data.as_of, services.clock.now())
        return AsOfLink(url=url, expires_at=format_timestamp(expires_at))
