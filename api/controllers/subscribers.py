"""Status page subscribers, Beacon's admin API (README "Subscribers"): list, create, show, unsubscribe
(`DELETE`), erase, rotate a webhook's secret, re-enable a disabled webhook. Every route, reads included,
needs the `status_pages.manage_subscribers` scope (or `admin`): the answers carry email addresses and URLs.

Lists and shows come from the `subscriber_list` read model; the contact is decrypted from the key table at
read time, so an erased subscriber shows `email`/`url` as `null`. A webhook's `secret` is shown only in
the answers of create and rotate_secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.errors import ApiError, register_status
from api.notices import wire_not_found
from api.pagination import PaginationMeta, page_params, paginate
from api.services import Services, services_of
from api.subscribers import OnExisting, SubscriberCommands
from api.types import AnyRequest
from api.wire import Payload, not_found, path_id
from domain.rules import parse_enum
from domain.subscriber import (
    Channel,
    Subscriber,
    SubscriberEnded,
    SubscriberExists,
    SubscriberState,
    enable_subscriber,
    unsubscribe_subscriber,
)
from infra import contacts
from infra.api_keys import MANAGE_SUBSCRIBERS
from infra.contacts import Contact
from infra.ids import uuid_to_ulid
from projections import status_page_catalog as catalog
from projections import subscriber_list

register_status(SubscriberExists, 409)
register_status(SubscriberEnded, 409)

WHAT = "status page subscriber"


class StatusPageSubscriber(msgspec.Struct, kw_only=True):
    """A subscriber as the admin API shows it; `email` and `url` are `null` once erased."""

    id: str
    status_page_id: str
    channel: str
    email: str | None
    url: str | None
    scope: str
    """`page`, `sub_page` or `components`."""
    sub_page_id: str | None
    component_ids: list[str]
    state: str
    """Email: `pending`, `confirmed`, `unsubscribed`, `bounced`; webhook: `active`, `disabled`,
    `unsubscribed`; either: `erased`."""
    created_at: datetime


class StatusPageSubscriberResult(msgspec.Struct, omit_defaults=True):
    status_page_subscriber: StatusPageSubscriber
    secret: str | None = None
    """A webhook's signing secret (`whsec_…`), in the answer to its creation only."""


class StatusPageSubscriberList(msgspec.Struct):
    status_page_subscribers: list[StatusPageSubscriber]
    pagination_meta: PaginationMeta


class RotatedSecret(msgspec.Struct):
    secret: str
    """The new `whsec_…` secret, shown only here."""
    previous_valid_until: datetime
    """Until then deliveries carry signatures under both the previous and the new secret."""


class CreateStatusPageSubscriberPayload(Payload):
    status_page_id: str
    channel: str
    """`email` or `webhook`."""
    email: str | None = None
    """Required for `email`; optional for a webhook (where notices about the webhook itself go)."""
    url: str | None = None
    """Required for `webhook`: an https URL that resolves to public addresses."""
    sub_page_id: str | None = None
    component_ids: list[str] | None = None
    confirmed: bool = False
    """Email only: the address already opted in (an import), so no confirmation mail is sent."""


def _view(
    subscriber_id: str,
    row: subscriber_list.SubscriberRow | Subscriber,
    contact: Contact | None,
    *,
    created_at: datetime,
) -> StatusPageSubscriber:
    """One mapping for read-model rows and aggregates, so reads and writes answer alike."""
    state = row.state.value if isinstance(row, Subscriber) else row.state
    channel = row.channel.value if isinstance(row, Subscriber) else row.channel
    return StatusPageSubscriber(
        id=subscriber_id,
        status_page_id=row.status_page_id,
        channel=channel,
        email=contact.email if contact else None,
        url=contact.url if contact else None,
        scope=row.scope,
        sub_page_id=row.sub_page_id,
        component_ids=list(row.component_ids),
        state=state,
        created_at=created_at,
    )


async def _aggregate_view(services: Services, subscriber: Subscriber) -> StatusPageSubscriber:
    contact = (await contacts.load_contacts(services.pool, [subscriber.id]))[subscriber.id]
    return _view(uuid_to_ulid(subscriber.id), subscriber, contact, created_at=subscriber.created_at)


async def _row(services: Services, subscriber_id: str) -> subscriber_list.SubscriberRow:
    row = await subscriber_list.get_subscriber(services.pool, subscriber_id)
    if row is None:
        raise not_found(WHAT, subscriber_id)
    return row


def _stream(subscriber_id: str) -> UUID:
    return path_id(subscriber_id, WHAT)


class StatusPageSubscriberController(Controller):
    path = "/status_page_subscribers"

    @get("/", opt={"scope": MANAGE_SUBSCRIBERS})
    async def list_subscribers(
        self,
        request: AnyRequest,
        status_page_id: FromQuery[str | None] = None,
        channel: FromQuery[str | None] = None,
        state_filter: Annotated[str | None, QueryParameter(name="state")] = None,
        page_size: FromQuery[int | None] = None,
        after: FromQuery[str | None] = None,
    ) -> StatusPageSubscriberList:
        """A page's subscribers, newest first; `channel` and `state` filter."""
        services = services_of(request)
        params = page_params(page_size, after)
        if status_page_id is None:
            raise ApiError(422, "status_page_id is required", code="is_required", parameter="status_page_id")
        if await catalog.get_page(services.pool, status_page_id) is None:
            raise not_found("status page", status_page_id)
        if channel is not None:
            parse_enum(Channel, channel, field="channel")
        if state_filter is not None:
            parse_enum(SubscriberState, state_filter, field="state")

        async def fetch(limit: int, cursor: str | None) -> list[subscriber_list.SubscriberRow] | None:
            return await subscriber_list.list_subscribers(
                services.pool, status_page_id, limit=limit, after=cursor, channel=channel, state=state_filter
            )

        rows, meta = await paginate(params, fetch, lambda row: row.id)
        found = await contacts.load_contacts(services.pool, [row.stream_id for row in rows])
        items = [_view(row.id, row, found[row.stream_id], created_at=row.created_at) for row in rows]
        return StatusPageSubscriberList(status_page_subscribers=items, pagination_meta=meta)

    @post("/", status_code=201, opt={"scope": MANAGE_SUBSCRIBERS})
    async def create_subscriber(
        self, request: AnyRequest, data: JSONBody[CreateStatusPageSubscriberPayload]
    ) -> StatusPageSubscriberResult:
        """An email subscriber (`pending` with a confirmation mail, or `confirmed` for an address that already
        opted in) or a webhook (`active`). A live subscriber with the same channel and contact on the page is a
        409 naming it."""
        services = services_of(request)
        context = services.context(request)
        run = SubscriberCommands.of(services)
        channel = parse_enum(Channel, data.channel, field="channel")
        structure = await run.structure(data.status_page_id)
        contact = await run.contact(channel, email=data.email, url=data.url)
        made = await run.create(
            status_page_id=data.status_page_id,
            channel=channel,
            contact=contact,
            structure=structure,
            sub_page_id=data.sub_page_id,
            component_ids=data.component_ids or [],
            confirmed=data.confirmed,
            on_existing=OnExisting.CONFLICT,
            context=context,
        )
        await services.settle_command(context)
        subscriber = made.subscriber
        view = _view(uuid_to_ulid(subscriber.id), subscriber, contact, created_at=subscriber.created_at)
        return StatusPageSubscriberResult(status_page_subscriber=view, secret=contact.secret)

    @get("/{status_page_subscriber_id:str}", opt={"scope": MANAGE_SUBSCRIBERS})
    async def show_subscriber(
        self, request: AnyRequest, status_page_subscriber_id: FromPath[str]
    ) -> StatusPageSubscriberResult:
        services = services_of(request)
        row = await _row(services, status_page_subscriber_id)
        contact = (await contacts.load_contacts(services.pool, [row.stream_id]))[row.stream_id]
        return StatusPageSubscriberResult(status_page_subscriber=_view(row.id, row, contact, created_at=row.created_at))

    @delete("/{status_page_subscriber_id:str}", status_code=204, opt={"scope": MANAGE_SUBSCRIBERS})
    async def unsubscribe(self, request: AnyRequest, status_page_subscriber_id: FromPath[str]) -> None:
        """Unsubscribe: nothing more is sent, pending deliveries are cancelled. Idempotent."""
        services = services_of(request)
        context = services.context(request)
        with wire_not_found(WHAT, status_page_subscriber_id):
            await unsubscribe_subscriber(
                services.store, subscriber_id=_stream(status_page_subscriber_id), context=context
            )
        await services.settle_command(context)

    @post("/{status_page_subscriber_id:str}/erase", status_code=200, opt={"scope": MANAGE_SUBSCRIBERS})
    async def erase(self, request: AnyRequest, status_page_subscriber_id: FromPath[str]) -> StatusPageSubscriberResult:
        """Erase the contact for good (crypto-shredding): the answer shows `state: erased` and no contact."""
        services = services_of(request)
        context = services.context(request)
        with wire_not_found(WHAT, status_page_subscriber_id):
            subscriber = await SubscriberCommands.of(services).erase(_stream(status_page_subscriber_id), context)
        await services.settle_command(context)
        return StatusPageSubscriberResult(status_page_subscriber=await _aggregate_view(services, subscriber))

    @post("/{status_page_subscriber_id:str}/rotate_secret", status_code=200, opt={"scope": MANAGE_SUBSCRIBERS})
    async def rotate_secret(self, request: AnyRequest, status_page_subscriber_id: FromPath[str]) -> RotatedSecret:
        """A webhook's new signing secret; deliveries are signed with both for 24 hours."""
        services = services_of(request)
        context = services.context(request)
        with wire_not_found(WHAT, status_page_subscriber_id):
            stream = _stream(status_page_subscriber_id)
            secret, until = await SubscriberCommands.of(services).rotate_secret(stream, context)
        await services.settle_command(context)
        return RotatedSecret(secret=secret, previous_valid_until=until)

    @post("/{status_page_subscriber_id:str}/enable", status_code=200, opt={"scope": MANAGE_SUBSCRIBERS})
    async def enable(self, request: AnyRequest, status_page_subscriber_id: FromPath[str]) -> StatusPageSubscriberResult:
        """Re-activate a disabled webhook (an active one is answered as it is)."""
        services = services_of(request)
        context = services.context(request)
        with wire_not_found(WHAT, status_page_subscriber_id):
            subscriber = await enable_subscriber(
                services.store, subscriber_id=_stream(status_page_subscriber_id), context=context
            )
        await services.settle_command(context)
        return StatusPageSubscriberResult(status_page_subscriber=await _aggregate_view(services, subscriber))
