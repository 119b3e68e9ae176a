"""Public subscription requests (README "Subscribers"), no API key:

- `POST /{page_slug}/subscriptions` and `/{page_slug}/{sub_page_slug}/subscriptions` — sign an email address
  up. Always `202` for a well-formed request, whether or not the address is known (no enumeration); a new
  address gets a confirmation mail, a pending one another (at most one an hour). 10 requests per minute per
  client, then `429`.
- `…/subscriptions/confirm`, `…/manage` and `…/unsubscribe` with `?token=…` — the links in mails. A `GET`
  only shows a page with a button (link scanners prefetch `GET`s); the `POST` changes state. The
  unsubscribe `POST` is also RFC 8058's one-click target: no cookie, never a redirect, `200` when already
  done (or erased).

Input is lenient, as browsers and mail clients send it: JSON, `application/x-www-form-urlencoded` or
`multipart/form-data`. A form body, or an `Accept` preferring `text/html`, gets an HTML page with the same
status code; anything else gets JSON, errors in the usual envelope. Bad input (an invalid address, a
component not on the page, an expired or used link) is an error that records nothing. Every event these
requests record has the actor `{"type": "public"}` and no address or client.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import msgspec
from litestar import MediaType, Response, get, post
from litestar.datastructures import UploadFile
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType as MediaTypeSpec
from litestar.openapi.spec import Operation, Reference, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.params import FromPath, FromQuery

from api.client_address import client_key
from api.errors import ApiError, ErrorEnvelope, domain_status, register_status, request_id_of
from api.services import Services, services_of
from api.subscribers import OnExisting, SubscriberCommands
from api.types import AnyRequest
from domain.base import PUBLIC, CommandContext, DomainError, NotFound, load
from domain.structure import sub_pages
from domain.subscriber import (
    Channel,
    ConfirmationUsed,
    Subscriber,
    check_email,
    confirm_subscriber,
    unsubscribe_subscriber,
)
from infra.contacts import Contact
from infra.ids import uuid_to_ulid
from infra.tokens import InvalidToken, Purpose, verify
from projections import status_page_catalog as catalog
from projections.public_site_html import MessageForm, not_found_page, render_message_page

register_status(ConfirmationUsed, 409)

_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
SUB_PAGE = "/{page_slug:str}/{sub_page_slug:str}"
PAGE = "/{page_slug:str}"


class SubscriptionAccepted(msgspec.Struct):
    """The answer to every well-formed subscribe request, known address or not."""

    message: str


class SubscriptionState(msgspec.Struct):
    id: str
    state: str
    """`confirmed` after a confirmation; `unsubscribed` (or `erased`, `bounced`) after an unsubscribe."""


class SubscriptionResult(msgspec.Struct):
    subscription: SubscriptionState


# What the request asked for, and how to answer it.


@dataclass(frozen=True)
class Fields:
    """A request body's fields, whichever encoding it came in; `form` says whether it was a form."""

    values: Mapping[str, list[Any]]
    form: bool

    def one(self, name: str) -> Any:
        found = self.values.get(name) or [None]
        return found[0]

    def strings(self, name: str) -> list[str]:
        """A list field, as JSON sends it (`["a", "b"]`) or a form does (repeated, or comma-separated)."""
        out: list[str] = []
        for value in self.values.get(name, []):
            items = value if isinstance(value, list) else str(value).split(",")
            for item in items:
                if not isinstance(item, str):
                    raise ApiError(422, f"{name} must be a list of ids", field=name)
                if item.strip():
                    out.append(item.strip())
        return out


async def read_fields(request: AnyRequest) -> Fields:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        text = (await request.body()).decode("utf-8", errors="replace")
        return Fields(values=parse_qs(text, keep_blank_values=True), form=True)
    if media == "multipart/form-data":
        form = await request.form()
        values = {
            key: [value for value in form.getall(key) if not isinstance(value, UploadFile)] for key in form.keys()
        }
        return Fields(values=values, form=True)
    body = await request.body()
    if not body.strip():
        return Fields(values={}, form=False)
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(415, "Send JSON, a form (urlencoded or multipart), or no body", code="unsupported_media_type")
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, "The body is not valid JSON", code="invalid_json") from None
    if not isinstance(decoded, dict):
        raise ApiError(422, "The body must be a JSON object", code="invalid_value")
    return Fields(values={key: [value] for key, value in decoded.items()}, form=False)


def _quality(accept: str, media: str) -> float:
    """How much `accept` wants `media` (its q for the most specific matching range; 0 if none)."""
    best, specificity = 0.0, -1
    kind = media.split("/")[0]
    for part in accept.split(","):
        pieces = [piece.strip() for piece in part.split(";")]
        name, params = pieces[0].lower(), pieces[1:]
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        rank = 2 if name == media else 1 if name == f"{kind}/*" else 0 if name == "*/*" else -1
        if rank > specificity:
            best, specificity = q, rank
    return best


def wants_html(request: AnyRequest, *, form: bool) -> bool:
    """A form post (a browser without script, a mail client's one-click), or an `Accept` that prefers HTML."""
    if form:
        return True
    accept = request.headers.get("accept", "")
    return bool(accept) and _quality(accept, "text/html") > _quality(accept, "application/json")


def html(
    status: int,
    title: str,
    *paragraphs: str,
    page: Place | None = None,
    form: MessageForm | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    body = render_message_page(
        status_code=status,
        title=title,
        paragraphs=paragraphs,
        page_name=page.name if page else None,
        home=page.home if page else None,
        form=form,
    )
    return Response(content=body, status_code=status, media_type=MediaType.HTML, headers=headers)


def error_page(error: Exception, page: Place | None) -> Response[bytes]:
    """The HTML answer to a failed request: the same status and message the JSON envelope would carry."""
    if isinstance(error, ApiError):
        status, message, headers = error.status, error.detail.message, error.headers
    else:
        assert isinstance(error, DomainError)
        status, message, headers = domain_status(error), error.message, None
    if status == 404:
        return Response(content=not_found_page(), status_code=404, media_type=MediaType.HTML)
    titles = {409: "Already done", 422: "That did not work", 429: "Too many requests"}
    return html(status, titles.get(status, "That did not work"), message, page=page, headers=headers)


async def answering(
    request: AnyRequest, form: bool, page: Place | None, run: Callable[[], Awaitable[Response[Any]]]
) -> Response[Any]:
    """Run a request; errors go to the envelope's handlers, or become an HTML page for a browser."""
    try:
        return await run()
    except (ApiError, DomainError) as error:
        if wants_html(request, form=form):
            return error_page(error, page)
        raise


# Where the request is: a page or one of its sub-pages.


@dataclass(frozen=True)
class Place:
    page_id: str
    name: str
    sub_page_id: str | None
    home: str
    """The page's (or sub-page's) public path, for "back to" links and form targets."""


async def find_place(services: Services, page_slug: str, sub_page_slug: str | None) -> Place:
    row = await catalog.get_page_by_slug(services.pool, page_slug)
    if row is None or not row.public_site_enabled:  # a page without a public site takes no subscriptions
        raise ApiError(404, f"No status page {page_slug!r}", code="not_found")
    if sub_page_slug is None:
        return Place(page_id=row.id, name=row.name, sub_page_id=None, home=f"/{row.slug}")
    structure = await catalog.get_structure(services.pool, row.id)
    sub_page = next(
        (item for item in sub_pages(structure.items if structure else ()) if item.slug == sub_page_slug), None
    )
    if sub_page is None:
        raise ApiError(404, f"No sub-page {sub_page_slug!r} on {page_slug!r}", code="not_found")
    return Place(
        page_id=row.id,
        name=f"{row.name} — {sub_page.name}",
        sub_page_id=sub_page.id,
        home=f"/{row.slug}/{sub_page_slug}",
    )


def public_context(services: Services, request: AnyRequest) -> CommandContext:
    return CommandContext(now=services.clock.now(), actor=PUBLIC, request_id=request_id_of(request))


async def token_subscriber(services: Services, place: Place, purpose: Purpose, token: str | None) -> UUID:
    """The subscriber a link's token names, if the token is genuine, unexpired and for this page."""
    if not token:
        raise InvalidToken("this link has no token; copy the whole link from the mail")
    subscriber_id = verify(services.secret_key, purpose, token, now=services.clock.now())
    try:
        subscriber = await load(services.store, Subscriber, subscriber_id)
    except NotFound:
        return subscriber_id  # erased from a restored backup, or never made: the caller decides
    if subscriber.status_page_id != place.page_id:
        raise InvalidToken("this link belongs to another status page")
    return subscriber_id


def state_json(subscriber: Subscriber) -> Response[SubscriptionResult]:
    state = SubscriptionState(id=uuid_to_ulid(subscriber.id), state=subscriber.state.value)
    return Response(content=SubscriptionResult(subscription=state), status_code=200)


# OpenAPI: the bodies these routes accept, in each encoding (they are read by hand, leniently).

_STRING = Schema(type=OpenAPIType.STRING)


def _body(properties: dict[str, Schema | Reference], required: list[str], description: str) -> RequestBody:
    schema = Schema(type=OpenAPIType.OBJECT, properties=properties, required=required or None)
    return RequestBody(
        content={
            "application/json": MediaTypeSpec(schema=schema),
            "application/x-www-form-urlencoded": MediaTypeSpec(schema=schema),
            "multipart/form-data": MediaTypeSpec(schema=schema),
        },
        description=description,
        required=bool(required),
    )


_SUBSCRIBE_BODY = _body(
    {
        "email": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.EMAIL, description="The address to subscribe."),
        "component_ids": Schema(
            type=OpenAPIType.ARRAY,
            items=_STRING,
            description="Only these components (a form repeats the field); none: the whole page or sub-page.",
        ),
    },
    ["email"],
    "JSON, a urlencoded form (the public page's form) or multipart; other fields are ignored.",
)
_TOKEN_BODY = _body(
    {"token": Schema(type=OpenAPIType.STRING, description="The link's token, when not in the query string.")},
    [],
    "Optional: the token (when not in the query), or RFC 8058's `List-Unsubscribe=One-Click`; other fields are"
    " ignored.",
)


@dataclass
class SubscribeOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _SUBSCRIBE_BODY


@dataclass
class TokenOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _TOKEN_BODY


_HTML_PAGE = ResponseSpec(
    data_container=str, media_type=MediaType.HTML, description="A page with one button that posts to this URL."
)
_LIMITED = ResponseSpec(
    data_container=ErrorEnvelope,
    description="More than 10 subscribe requests in a minute from this client (an IPv4 address or IPv6 /64).",
)
_STATE = "`200` with the subscription's state (JSON), or the same as an HTML page for a form or an HTML `Accept`."


TAGS = ["public subscriptions"]  # api/openapi.py documents their HTML answers by this tag


@post(
    [f"{PAGE}/subscriptions", f"{SUB_PAGE}/subscriptions"],
    status_code=202,
    operation_class=SubscribeOperation,
    responses={429: _LIMITED},
    summary="Subscribe an email address",
    tags=TAGS,
)
async def subscribe(
    request: AnyRequest, page_slug: FromPath[str], sub_page_slug: FromPath[str | None] = None
) -> Response[Any]:
    """`202` for any well-formed request, known address or not; the address gets a confirmation mail (at
    most one an hour). A form or an HTML `Accept` gets an HTML page with the same status."""
    services = services_of(request)
    place: Place | None = None
    form = request.headers.get("content-type", "").split(";")[0].strip().lower() in _FORMS

    async def run() -> Response[Any]:
        nonlocal place, form
        services.public_limits.check(
            client_key(request.scope, services.settings.trusted_proxies),
            services.clock.now(),
            name="client_address",
        )
        place = await find_place(services, page_slug, sub_page_slug)
        fields = await read_fields(request)
        form = fields.form
        email = check_email(str(fields.one("email") or ""))
        run_commands = SubscriberCommands.of(services)
        context = public_context(services, request)
        await run_commands.create(
            status_page_id=place.page_id,
            channel=Channel.EMAIL,
            contact=Contact(email=email),
            structure=await run_commands.structure(place.page_id),
            sub_page_id=place.sub_page_id,
            component_ids=fields.strings("component_ids"),
            on_existing=OnExisting.REMIND,
            context=context,
        )
        await services.settle_command(context)
        text = "Check your inbox: if this address can be subscribed, a link to confirm it is on its way."
        if wants_html(request, form=form):
            return html(202, "Check your inbox", text, page=place)
        return Response(content=SubscriptionAccepted(message=text), status_code=202)

    return await answering(request, form, place, run)


async def act(
    request: AnyRequest,
    page_slug: str,
    sub_page_slug: str | None,
    token: str | None,
    purpose: Purpose,
) -> Response[Any]:
    services = services_of(request)
    place: Place | None = None
    form = request.headers.get("content-type", "").split(";")[0].strip().lower() in _FORMS

    async def run() -> Response[Any]:
        nonlocal place, form
        place = await find_place(services, page_slug, sub_page_slug)
        fields = await read_fields(request)
        form = fields.form
        given = token or (str(fields.one("token")) if fields.one("token") else None)
        subscriber_id = await token_subscriber(services, place, purpose, given)
        context = public_context(services, request)
        if purpose == "confirm":
            subscriber = await confirm_subscriber(services.store, subscriber_id=subscriber_id, context=context)
            title, text = (
                "Subscription confirmed",
                f"You will get email about incidents and maintenance on {place.name}. Every mail has a link to"
                " manage or end the subscription.",
            )
        else:
            try:
                subscriber = await unsubscribe_subscriber(services.store, subscriber_id=subscriber_id, context=context)
            except NotFound:  # a link to a subscriber this database never had (or lost): nothing to stop
                title, text = "Unsubscribed", "This address gets no email from this status page."
                if wants_html(request, form=form):
                    return html(200, title, text, page=place)
                return Response(content={"subscription": {"state": "unsubscribed"}}, status_code=200)
            title, text = "Unsubscribed", f"You will get no more email about {place.name}."
        await services.settle_command(context)
        if wants_html(request, form=form):
            return html(200, title, text, page=place)
        return state_json(subscriber)

    return await answering(request, form, place, run)


# The links in mails: GET shows a page with a button, POST acts (link scanners prefetch every GET).


async def show(
    request: AnyRequest, link: Link, page_slug: str, sub_page_slug: str | None, token: str | None
) -> Response[Any]:
    services = services_of(request)
    try:
        place = await find_place(services, page_slug, sub_page_slug)
    except ApiError:
        return Response(content=not_found_page(), status_code=404, media_type=MediaType.HTML)
    try:
        await token_subscriber(services, place, link.purpose, token)
    except DomainError as error:
        return error_page(error, place)
    form = MessageForm(action=request.url.path, button=link.button, fields=(("token", token or ""),))
    return html(200, link.title, link.text.format(page=place.name), page=place, form=form)


@dataclass(frozen=True)
class Link:
    """One kind of link in a mail: what its page says, and what its `POST` is documented to do."""

    purpose: Purpose
    title: str
    text: str
    button: str
    summary: str
    description: str


LINKS = (
    Link(
        "confirm",
        "Confirm your subscription",
        "Confirm that you want email about incidents and maintenance on {page}.",
        "Confirm subscription",
        "Confirm a subscription",
        "Confirms a pending subscription. A link works once and for seven days: a used one is a `409`, an expired"
        " or altered one a `422`. ",
    ),
    Link(
        "manage",
        "Your subscription",
        "You get email about incidents and maintenance on {page}. You can stop at any time.",
        "Unsubscribe",
        "End a subscription from its manage page",
        "Unsubscribes (the manage page's button). Idempotent. ",
    ),
    Link(
        "unsubscribe",
        "Unsubscribe",
        "Stop email about incidents and maintenance on {page}?",
        "Unsubscribe",
        "Unsubscribe (also RFC 8058 one-click)",
        "Unsubscribes: the `List-Unsubscribe` target. No cookie, never a redirect, `200` when already unsubscribed"
        " or erased; the link never expires. ",
    ),
)


def link_handlers(link: Link) -> list[HTTPRouteHandler]:
    """`GET` and `POST` of `…/subscriptions/{purpose}` on a page and on its sub-pages."""
    paths = [f"{PAGE}/subscriptions/{link.purpose}", f"{SUB_PAGE}/subscriptions/{link.purpose}"]

    async def show_link(
        request: AnyRequest,
        page_slug: FromPath[str],
        sub_page_slug: FromPath[str | None] = None,
        token: FromQuery[str | None] = None,
    ) -> Response[Any]:
        return await show(request, link, page_slug, sub_page_slug, token)

    async def act_link(
        request: AnyRequest,
        page_slug: FromPath[str],
        sub_page_slug: FromPath[str | None] = None,
        token: FromQuery[str | None] = None,
    ) -> Response[Any]:
        return await act(request, page_slug, sub_page_slug, token, link.purpose)

    shown = get(
        paths,
        media_type=MediaType.HTML,
        responses={200: _HTML_PAGE},
        summary=f"The page a {link.purpose} link opens",
        description="Shows a page with a button that posts to the same URL; changes nothing itself.",
        tags=TAGS,
    )(show_link)
    acted = post(
        paths,
        status_code=200,
        operation_class=TokenOperation,
        summary=link.summary,
        description=link.description + _STATE,
        tags=TAGS,
    )(act_link)
    return [shown, acted]


PUBLIC_SUBSCRIPTION_HANDLERS: list[HTTPRouteHandler] = [subscribe, *(h for link in LINKS for h in link_handlers(link))]
"""Every public subscription route, on a page and on its sub-pages."""
