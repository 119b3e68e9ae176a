"""What the incident and maintenance controllers share: the page's components a command may name,
idempotent-create answers, wire-id not-found mapping, and the filtered, paginated list."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from litestar import Response
from litestar.di import Provide
from litestar.params import FromQuery

from api.errors import ApiError
from api.pagination import PaginationMeta, page_params, paginate
from api.services import Services
from api.wire import Payload, not_found
from domain.base import NotFound
from domain.notice import PageComponents
from projections import notice_list
from projections import status_page_catalog as catalog

S = TypeVar("S", bound=msgspec.Struct)

REPLAYED_HEADER = "Idempotent-Replayed"


class ComponentStatusPayload(Payload):
    """incident.io's StatusPage{Incident,Maintenance}AffectedComponentV2 in a request; the status is a
    plain string so an unknown value is the domain's 422 naming the allowed ones. `description` and
    `public_url` are accepted and ignored: the contract lets clients send them, and a component's own
    text is managed on the component (docs/architecture.md)."""

    component_id: str
    component_status: str
    description: str | None = None
    public_url: str | None = None


def statuses_input(statuses: Sequence[ComponentStatusPayload] | None) -> list[tuple[str, str]] | None:
    """As the domain takes them: pairs, so a component named twice is reported, not silently merged."""
    if statuses is None:
        return None
    return [(item.component_id, item.component_status) for item in statuses]


async def page_components(services: Services, status_page_id: str) -> PageComponents:
    """The components on the page's current structure that are not deleted: what an update may name."""
    return await catalog.usable_components(services.pool, status_page_id) or frozenset()


async def existing_page_components(services: Services, status_page_id: str) -> PageComponents:
    """`page_components` for a create, which must name a page that exists (422 on the field otherwise)."""
    components = await catalog.usable_components(services.pool, status_page_id)
    if components is None:
        raise ApiError(422, f"No status page with id {status_page_id!r}", field="status_page_id")
    return components


def created(result: S, *, replayed: bool) -> Response[S]:
    """201 for a create; a used idempotency key answers the same, marked as a replay
    (docs/architecture.md#idempotency)."""
    headers = {REPLAYED_HEADER: "true"} if replayed else None
    return Response(content=result, status_code=201, headers=headers)


@contextlib.contextmanager
def wire_not_found(what: str, wire_id: str) -> Iterator[None]:
    """The domain names a missing stream by its UUID; the client knows the ULID it sent."""
    try:
        yield
    except NotFound as error:
        raise not_found(what, wire_id) from error


class ListQuery(msgspec.Struct, kw_only=True):
    """ListStatusPage{Incidents,Maintenances}'s query parameters."""

    status_page_id: str | None = None
    component_id: str | None = None
    group_id: str | None = None
    sub_page_id: str | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    page_size: int | None = None
    after: str | None = None


def _list_query(
    status_page_id: FromQuery[str | None] = None,
    component_id: FromQuery[str | None] = None,
    group_id: FromQuery[str | None] = None,
    sub_page_id: FromQuery[str | None] = None,
    start_at: FromQuery[datetime | None] = None,
    end_at: FromQuery[datetime | None] = None,
    page_size: FromQuery[int | None] = None,
    after: FromQuery[str | None] = None,
) -> ListQuery:
    return ListQuery(
        status_page_id=status_page_id,
        component_id=component_id,
        group_id=group_id,
        sub_page_id=sub_page_id,
        start_at=start_at,
        end_at=end_at,
        page_size=page_size,
        after=after,
    )


LIST_QUERY = {"filters": Provide(_list_query, sync_to_thread=False)}
"""The list endpoints' shared query parameters, injected as `filters: ListQuery` (and documented once)."""


async def list_notices(
    services: Services, table: str, query: ListQuery, item_type: type[S]
) -> tuple[list[S], PaginationMeta]:
    """One page of a notice list, filters applied, newest first (docs/architecture.md#pagination)."""
    params = page_params(query.page_size, query.after)
    if query.status_page_id is None:
        raise ApiError(422, "status_page_id is required", code="is_required", parameter="status_page_id")
    if await catalog.get_page(services.pool, query.status_page_id) is None:
        raise not_found("status page", query.status_page_id)
    for field, value in (("start_at", query.start_at), ("end_at", query.end_at)):
        if value is not None and value.tzinfo is None:
            raise ApiError(422, f"{field} must carry a time zone", parameter=field)
    try:
        members = await notice_list.structure_components(
            services.pool, query.status_page_id, group_id=query.group_id, sub_page_id=query.sub_page_id
        )
    except notice_list.UnknownStructureItem as error:
        raise ApiError(422, str(error), parameter=error.field) from error
    if query.component_id is not None:
        only = frozenset({query.component_id})
        members = only if members is None else members & only
    where = notice_list.NoticeFilter(
        status_page_id=query.status_page_id, component_ids=members, start_at=query.start_at, end_at=query.end_at
    )

    async def fetch(limit: int, after: str | None) -> list[notice_list.NoticeRow] | None:
        return await notice_list.list_notices(services.pool, table, where, limit=limit, after=after)

    rows, meta = await paginate(params, fetch, lambda row: row.id)
    return [msgspec.json.decode(row.document, type=item_type) for row in rows], meta


async def show_notice(services: Services, table: str, what: str, notice_id: str, item_type: type[S]) -> S:
    document = await notice_list.get_notice(services.pool, table, notice_id)
    if document is None:
        raise not_found(what, notice_id)
    return msgspec.json.decode(document, type=item_type)


ReadOnlyList = list[dict[str, Any]] | msgspec.UnsetType
"""An echoed list of a Show body (updates, impacts): compared as sent, so an unknown field in an item
differs from what was shown and is refused too."""


class UpdateNoticePayload(Payload, kw_only=True):
    """The read-only fields an incident's and a maintenance window's Show body share, accepted back in
    their `PUT` as shown (`check_echoed`); each subclass adds what it changes and its own read-only ones."""

    id: str | msgspec.UnsetType = msgspec.UNSET
    status_page_id: str | msgspec.UnsetType = msgspec.UNSET
    published_at: str | msgspec.UnsetType = msgspec.UNSET
    updates: ReadOnlyList = msgspec.UNSET


def read_only_fields(update_route: str, *changed_by_updates: str) -> dict[str, str]:
    """`check_echoed`'s map for a notice: the shared read-only fields, and those only an update (posted to
    `update_route`) changes, with that hint."""
    hint = f"; to change it, publish an update (POST {update_route})"
    return {"id": "", "status_page_id": "", "published_at": ""} | dict.fromkeys(("updates", *changed_by_updates), hint)


async def check_echoed(
    services: Services,
    data: Payload,
    *,
    table: str,
    what: str,
    notice_id: str,
    item_type: type[S],
    read_only: Mapping[str, str],
) -> None:
    """A Show body sent back to `PUT`: its read-only fields are accepted as shown and are a 422 naming
    the field (`read_only`) otherwise, with how to change it — a status changes by publishing an update,
    and dropping the field in silence would let the caller believe it had. `read_only` maps each field to
    that hint (or "")."""
    sent = {field: getattr(data, field) for field in read_only if getattr(data, field) is not msgspec.UNSET}
    if not sent:
        return
    shown = msgspec.to_builtins(await show_notice(services, table, what, notice_id, item_type))
    for field, value in sent.items():
        if msgspec.to_builtins(value) != shown[field]:
            message = f"{field} is read-only: send it as shown, or leave it out{read_only[field]}"
            raise ApiError(422, message, code="read_only", field=field)
