"""One log line per request that reaches Litestar (README "Operations"): time, method, route template, status,
duration, request id and API key id — never the path (ids in it are the route's business), the query string,
a header or the body — and the HTTP metrics for the same request.

Widget fast-path requests are not logged one by one: at tens of thousands a second a line each would cost
that path most of its throughput; `/metrics` counts them instead (`beacon_public_document_responses_total`)."""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import record_request
from api.request_id import ensure_request_id

REQUEST_LOGGER = "beacon.request"
UNMATCHED = "unmatched"
"""The route of a request no route matched (404, 405): its path may hold anything a client sent."""
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods logged and counted by name; any other is `OTHER`, so a client cannot invent label values."""

log = logging.getLogger(REQUEST_LOGGER)


class RequestObserver:
    """Wraps Litestar's ASGI handler, its router and exception handlers included: when the response is done
    the router has put the route template in the scope, and 404s, 405s and crashes are seen with the status
    they were answered with. One log line and the HTTP metrics per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        http = cast("dict[str, Any]", scope)  # Litestar types the scope as an HTTP or a websocket TypedDict
        if http["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if nothing was sent (the server answers a dropped app with 500)

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            seconds = time.perf_counter() - started
            method = http["method"] if http["method"] in METHODS else "OTHER"
            route = http.get("path_template") or UNMATCHED
            record_request(route, method, status, seconds)
            key = http.get("state", {}).get("api_key")
            fields = {
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "request_id": ensure_request_id(http),
                "key_id": key.id if key is not None else None,
            }
            log.info(
                "%s %s %s",
                method,
                route,
                status,
                extra={"fields": fields, "in_message": ("method", "route", "status")},
            )
