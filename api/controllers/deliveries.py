"""A subscriber's delivery attempts (admin, or the `status_pages.manage_subscribers` scope): what was sent,
when, with what outcome, and when it is tried again — so an operator can answer "why did this customer not
get the mail?" (README "Notifications"). Newest first, paginated like every list."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.params import FromPath, FromQuery

from api.pagination import PaginationMeta, page_params, paginate
from api.services import services_of
from api.types import AnyRequest
from api.wire import not_found, path_id
from domain.base import NotFound, load
from domain.subscriber import Subscriber
from infra.api_keys import MANAGE_SUBSCRIBERS
from infra.clock import format_timestamp
from infra.ids import ulid_to_uuid, uuid_to_ulid
from process_managers.notification_status import DeliveryRow, deliveries

WHAT = "status page subscriber"


class DeliveryView(msgspec.Struct, omit_defaults=True):
    id: str
    update_id: str | None
    notice_id: str | None
    attempt: int
    attempted_at: str
    outcome: str
    """`delivered`, `failed` (retried at `next_attempt_at` when present), `cancelled` (the subscriber was no
    longer told) or `forbidden_address` (the webhook's name resolved to an address deliveries never reach)."""
    http_status: int | None = None
    smtp_reply: str | None = None
    next_attempt_at: str | None = None


class DeliveryList(msgspec.Struct):
    deliveries: list[DeliveryView]
    pagination_meta: PaginationMeta


def _view(row: DeliveryRow) -> DeliveryView:
    return DeliveryView(
        id=uuid_to_ulid(row.id),
        update_id=uuid_to_ulid(row.update_id) if row.update_id else None,
        notice_id=uuid_to_ulid(row.notice_id) if row.notice_id else None,
        attempt=row.attempt,
        attempted_at=format_timestamp(row.attempted_at),
        outcome=row.outcome,
        http_status=row.http_status,
        smtp_reply=row.smtp_reply,
        next_attempt_at=format_timestamp(row.next_attempt_at) if row.next_attempt_at else None,
    )


class SubscriberDeliveryController(Controller):
    path = "/status_page_subscribers/{status_page_subscriber_id:str}/deliveries"

    @get("/", opt={"scope": MANAGE_SUBSCRIBERS})
    async def list_deliveries(
        self,
        request: AnyRequest,
        status_page_subscriber_id: FromPath[str],
        page_size: FromQuery[int | None] = None,
        after: FromQuery[str | None] = None,
    ) -> DeliveryList:
        """Every attempt to deliver a notification to this subscriber, newest first."""
        services = services_of(request)
        params = page_params(page_size, after)
        stream = path_id(status_page_subscriber_id, WHAT)
        try:
            await load(services.store, Subscriber, stream)
        except NotFound:
            raise not_found(WHAT, status_page_subscriber_id) from None

        async def fetch(limit: int, cursor: str | None) -> list[DeliveryRow] | None:
            return await deliveries(
                services.pool, stream, limit=limit, after=ulid_to_uuid(cursor) if cursor else None
            )

        rows, meta = await paginate(params, fetch, lambda row: uuid_to_ulid(row.id))
        return DeliveryList(deliveries=[_view(row) for row in rows], pagination_meta=meta)
