"""The log as evidence over HTTP (docs/architecture.md#audit): the audit feed (admin) as JSON pages or streamed
NDJSON, and each incident's and maintenance window's own history (any key)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Response, get
from litestar.params import FromPath, FromQuery
from litestar.response import Stream

from api.errors import ApiError
from api.services import services_of
from api.types import AnyRequest
from infra.api_keys import ADMIN
from infra.audit import AuditEvent, Selection, iter_ndjson, read_audit_page, read_stream
from infra.ids import ulid_to_uuid

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
NDJSON = "application/x-ndjson"
INCIDENT_STREAM = "status_page_incident"
MAINTENANCE_STREAM = "status_page_maintenance"


class AuditPaginationMeta(msgspec.Struct, omit_defaults=True):
    limit: int
    after: int | None = None


class AuditEventPage(msgspec.Struct):
    events: list[AuditEvent]
    pagination_meta: AuditPaginationMeta


class StreamHistory(msgspec.Struct):
    events: list[AuditEvent]


def _int(value: str | None, field: str, *, default: int, minimum: int, maximum: int | None = None) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(422, f"{field} must be an integer", parameter=field) from None
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ApiError(422, f"{field} must be {bound}", parameter=field)
    return number


def _instant(value: str | None, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(422, f"{field} must be an RFC 3339 timestamp", parameter=field) from None
    if instant.tzinfo is None:
        raise ApiError(422, f"{field} must carry a time zone (e.g. a trailing Z)", parameter=field)
    return instant


def _stream_filter(value: str | None) -> Any:
    if value is None or value == "":
        return None
    try:
        return ulid_to_uuid(value)
    except ValueError:
        raise ApiError(422, "stream_id must be an ID Beacon issued", parameter="stream_id") from None


def _wants_ndjson(request: AnyRequest) -> bool:
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip().lower() == NDJSON for part in accept.split(","))


class AuditController(Controller):
    path = "/"

    @get("/audit/events", opt={"scope": ADMIN})
    async def events(
        self,
        request: AnyRequest,
        after: FromQuery[str | None] = None,
        limit: FromQuery[str | None] = None,
        stream_id: FromQuery[str | None] = None,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """The log in commit order. With `Accept: application/x-ndjson` the whole selection is streamed a
        page at a time (constant memory, `limit` does not apply); otherwise one JSON page of `limit`."""
        selection = Selection(
            after=_int(after, "after", default=0, minimum=0),
            stream_id=_stream_filter(stream_id),
            since=_instant(since, "since"),
            until=_instant(until, "until"),
        )
        page_size = _int(limit, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        pool = services_of(request).pool
        if _wants_ndjson(request):

            async def chunks() -> AsyncIterator[bytes]:
                async for chunk in iter_ndjson(pool, selection):
                    yield chunk

            return Stream(chunks(), media_type=NDJSON)
        # One more than asked tells whether a next page exists without a second query.
        events = await read_audit_page(pool, selection, page_size + 1)
        more = len(events) > page_size
        events = events[:page_size]
        meta = AuditPaginationMeta(limit=page_size, after=events[-1].position if more else None)
        body = msgspec.json.encode(AuditEventPage(events=events, pagination_meta=meta))
        return Response(content=body, media_type="application/json")

    @get("/status_page_incidents/{incident_id:str}/history")
    async def incident_history(self, request: AnyRequest, incident_id: FromPath[str]) -> StreamHistory:
        """Every event of one incident, in version order."""
        return await _history(request, incident_id, INCIDENT_STREAM, "status page incident")

    @get("/status_page_maintenances/{maintenance_id:str}/history")
    async def maintenance_history(
        self, request: AnyRequest, maintenance_id: FromPath[str]
    ) -> StreamHistory:
        """Every event of one maintenance window, in version order (a deleted window's too)."""
        return await _history(request, maintenance_id, MAINTENANCE_STREAM, "status page maintenance")


async def _history(request: AnyRequest, ulid: str, stream_type: str, what: str) -> StreamHistory:
    try:
        stream_id = ulid_to_uuid(ulid)
    except ValueError:
        raise ApiError(404, f"No {what} {ulid}", code="not_found") from None
    events = await read_stream(services_of(request).pool, stream_id)
    if not events or events[0].stream_type != stream_type:
        raise ApiError(404, f"No {what} {ulid}", code="not_found")
    return StreamHistory(events=events)
