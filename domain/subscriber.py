"""Subscribers of a status page: who is told about its notices, by email or by webhook
(docs/architecture.md#subscribers).

An email subscriber starts `pending` (self-service, double opt-in) or `confirmed` (an admin's import of an
address that already opted in) and ends `unsubscribed`, `bounced` or `erased`. A webhook subscriber is
created `active` by an admin, may be `disabled` by delivery (a `410 Gone` or every attempt failed) and
`enabled` again, and ends `unsubscribed` or `erased`.

The contact (email address, webhook URL and secret) is personal data and never enters the log in clear:
events carry it as `contact`, a ciphertext under a key kept outside the log (`infra/contacts.py`), so
erasing the key erases the contact while the hash chain and every replay stay intact. The domain never
sees the key: handlers take the ciphertext and rules that need the clear value (`check_email`,
`check_webhook_url`) run before it is encrypted.

Events (explicit topics; `timestamp` is the event's `at`, `by` its actor — `{"type": "public"}` for
requests from the public page):

- `Subscriber.Created` — page, channel, scope (sub-page or components), contact ciphertext, first state.
- `Subscriber.ConfirmationRequested` — a pending address subscribed again: one more confirmation mail.
- `Subscriber.Confirmed`, `.Unsubscribed`, `.Bounced(reason)`, `.Disabled(reason)`, `.Enabled`, `.Erased`.
- `Subscriber.SecretRotated(contact, previous_valid_until)` — a webhook's new secret; the previous one
  still signs until `previous_valid_until`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.base import Actor, ActorData, BeaconAggregate, CommandContext, DomainError, EventStore, execute
from domain.structure import StructureItem, SubPageItem, component_placements, sub_pages

CONFIRMATION_INTERVAL = timedelta(hours=1)
"""At most one confirmation mail per address and page in this interval, however often it subscribes."""
SECRET_OVERLAP = timedelta(hours=24)
"""How long a rotated webhook secret still signs deliveries beside the new one."""
MAX_EMAIL_LENGTH = 254
MAX_URL_LENGTH = 2048
CONTACT_PREFIX = "v1:"


class Channel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class SubscriberState(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    ACTIVE = "active"
    DISABLED = "disabled"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    ERASED = "erased"


DELIVERABLE = frozenset({SubscriberState.CONFIRMED, SubscriberState.ACTIVE})
"""The states in which a subscriber is told about notices."""
ENDED = frozenset({SubscriberState.UNSUBSCRIBED, SubscriberState.ERASED})
"""States after which the same contact may subscribe again as a new subscriber."""


class Subscriber(BeaconAggregate):
    """One subscription: a contact (encrypted), its page and scope, and where it is in its life."""

    TOPIC = "beacon.Subscriber"
    STREAM_TYPE = "status_page_subscriber"

    class Created(Aggregate.Created):
        TOPIC = "beacon.Subscriber.Created"
        status_page_id: str
        channel: str
        sub_page_id: str | None
        component_ids: list[str]
        contact: str
        state: str
        by: ActorData

    @event(Created)
    def __init__(
        self,
        *,
        id: UUID,
        status_page_id: str,
        channel: str,
        sub_page_id: str | None,
        component_ids: list[str],
        contact: str,
        state: str,
        by: ActorData,
        timestamp: datetime,
    ) -> None:
        self.status_page_id = status_page_id
        self.channel = Channel(channel)
        self.sub_page_id = sub_page_id
        self.component_ids = list(component_ids)
        self.contact = contact
        self.state = SubscriberState(state)
        self.created_at = timestamp
        self.last_confirmation_at: datetime | None = timestamp if self.state is SubscriberState.PENDING else None
        self.previous_valid_until: datetime | None = None
        self.reason: str | None = None

    class ConfirmationRequested(Aggregate.Event):
        TOPIC = "beacon.Subscriber.ConfirmationRequested"
        by: ActorData

    @event(ConfirmationRequested)
    def _confirmation_requested(self, *, by: ActorData, timestamp: datetime) -> None:
        self.last_confirmation_at = timestamp

    class Confirmed(Aggregate.Event):
        TOPIC = "beacon.Subscriber.Confirmed"
        by: ActorData

    @event(Confirmed)
    def _confirmed(self, *, by: ActorData, timestamp: datetime) -> None:
        self.state = SubscriberState.CONFIRMED

    class Unsubscribed(Aggregate.Event):
        TOPIC = "beacon.Subscriber.Unsubscribed"
        by: ActorData

    @event(Unsubscribed)
    def _unsubscribed(self, *, by: ActorData, timestamp: datetime) -> None:
        self.state = SubscriberState.UNSUBSCRIBED

    class Bounced(Aggregate.Event):
        TOPIC = "beacon.Subscriber.Bounced"
        reason: str
        by: ActorData

    @event(Bounced)
    def _bounced(self, *, reason: str, by: ActorData, timestamp: datetime) -> None:
        self.state = SubscriberState.BOUNCED
        self.reason = reason

    class Disabled(Aggregate.Event):
        TOPIC = "beacon.Subscriber.Disabled"
        reason: str
        by: ActorData

    @event(Disabled)
    def _disabled(self, *, reason: str, by: ActorData, timestamp: datetime) -> None:
        self.state = SubscriberState.DISABLED
        self.reason = reason

    class Enabled(Aggregate.Event):
        TOPIC = "beacon.Subscriber.Enabled"
        by: ActorData

    @event(Enabled)
    def _enabled(self, *, by: ActorData, timestamp: datetime) -> None:
        self.state = SubscriberState.ACTIVE
        self.reason = None

    class Erased(Aggregate.Event):
        TOPIC = "beacon.Subscriber.Erased"
        by: ActorData

    @event(Erased)
    def _erased(self, *, by: ActorData, timestamp: datetime) -> None:
        self.state = SubscriberState.ERASED

    class SecretRotated(Aggregate.Event):
        TOPIC = "beacon.Subscriber.SecretRotated"
        contact: str
        previous_valid_until: datetime
        by: ActorData

    @event(SecretRotated)
    def _secret_rotated(
        self, *, contact: str, previous_valid_until: datetime, by: ActorData, timestamp: datetime
    ) -> None:
        self.contact = contact
        self.previous_valid_until = previous_valid_until

    # Commands: check the rules, then record one event (or nothing, for a repeat).

    @classmethod
    def create(
        cls,
        *,
        id: UUID,
        status_page_id: UUID | str,
        channel: Channel,
        contact: str,
        structure: Sequence[StructureItem],
        sub_page_id: str | None = None,
        component_ids: Sequence[str] = (),
        confirmed: bool = False,
        at: datetime,
        by: Actor,
    ) -> Subscriber:
        """A new subscriber of the page whose `structure` is given. An email address starts `pending`
        unless `confirmed` (it already opted in elsewhere); a webhook starts `active`."""
        check_contact(contact)
        check_scope(structure, sub_page_id=sub_page_id, component_ids=component_ids)
        if channel is Channel.WEBHOOK:
            if confirmed:
                raise InvalidSubscriberField("confirmed applies to email subscribers only", field="confirmed")
            state = SubscriberState.ACTIVE
        else:
            state = SubscriberState.CONFIRMED if confirmed else SubscriberState.PENDING
        return cls(
            id=id,
            status_page_id=str(status_page_id),
            channel=channel.value,
            sub_page_id=sub_page_id,
            component_ids=list(dict.fromkeys(component_ids)),
            contact=contact,
            state=state.value,
            by=by.as_data(),
            timestamp=at,
        )

    def request_confirmation(self, *, at: datetime, by: Actor) -> bool:
        """A pending address subscribed again: one more confirmation mail, unless one went out within the
        hour. Any other state records nothing (a confirmed address is not told it is known). Returns
        whether a mail is due."""
        if self.state is not SubscriberState.PENDING:
            return False
        if self.last_confirmation_at is not None and at - self.last_confirmation_at < CONFIRMATION_INTERVAL:
            return False
        self._confirmation_requested(by=by.as_data(), timestamp=at)
        return True

    def confirm(self, *, at: datetime, by: Actor) -> None:
        """The owner of a pending address followed its confirmation link (once: a link used before or a
        subscriber no longer pending is refused)."""
        if self.state is not SubscriberState.PENDING:
            raise ConfirmationUsed("this confirmation link has already been used or is no longer valid")
        self._confirmed(by=by.as_data(), timestamp=at)

    def unsubscribe(self, *, at: datetime, by: Actor) -> None:
        """Stop telling this subscriber anything. Idempotent: an unsubscribed, bounced or erased subscriber
        records nothing."""
        if self.state in (SubscriberState.UNSUBSCRIBED, SubscriberState.BOUNCED, SubscriberState.ERASED):
            return
        self._unsubscribed(by=by.as_data(), timestamp=at)

    def bounce(self, *, reason: str, at: datetime, by: Actor) -> None:
        """The relay refused this address for good. Only a pending or confirmed email address bounces."""
        if self.channel is not Channel.EMAIL:
            raise WrongChannel("only email subscribers bounce", field="channel")
        if self.state not in (SubscriberState.PENDING, SubscriberState.CONFIRMED):
            return
        self._bounced(reason=reason, by=by.as_data(), timestamp=at)

    def disable(self, *, reason: str, at: datetime, by: Actor) -> None:
        """Delivery gave up on this webhook (`410 Gone`, or every attempt failed). Only an active one."""
        if self.channel is not Channel.WEBHOOK:
            raise WrongChannel("only webhook subscribers are disabled", field="channel")
        if self.state is not SubscriberState.ACTIVE:
            return
        self._disabled(reason=reason, by=by.as_data(), timestamp=at)

    def enable(self, *, at: datetime, by: Actor) -> None:
        """An admin re-activates a disabled webhook; an active one records nothing."""
        if self.channel is not Channel.WEBHOOK:
            raise WrongChannel("only webhook subscribers can be enabled", field="channel")
        if self.state is SubscriberState.ACTIVE:
            return
        if self.state is not SubscriberState.DISABLED:
            raise SubscriberEnded(f"subscriber {self.id} is {self.state.value}; create a new one instead")
        self._enabled(by=by.as_data(), timestamp=at)

    def rotate_secret(self, *, contact: str, at: datetime, by: Actor) -> datetime:
        """A webhook's new secret (inside `contact`, encrypted by the caller); the old one keeps signing
        for `SECRET_OVERLAP`. Returns when it stops."""
        if self.channel is not Channel.WEBHOOK:
            raise WrongChannel("only webhook subscribers have a secret", field="channel")
        if self.state in ENDED:
            raise SubscriberEnded(f"subscriber {self.id} is {self.state.value}")
        check_contact(contact)
        until = at + SECRET_OVERLAP
        self._secret_rotated(contact=contact, previous_valid_until=until, by=by.as_data(), timestamp=at)
        return until

    def erase(self, *, at: datetime, by: Actor) -> None:
        """Record that the contact was erased (its key is deleted outside the log). Idempotent."""
        if self.state is SubscriberState.ERASED:
            return
        self._erased(by=by.as_data(), timestamp=at)

    @property
    def live(self) -> bool:
        """Whether the subscriber still holds its contact's place on the page (a second subscriber with the
        same contact is refused while it does)."""
        return self.state not in ENDED

    @property
    def scope(self) -> str:
        if self.component_ids:
            return "components"
        return "sub_page" if self.sub_page_id else "page"


# Rules

_EMAIL = re.compile(
    r"[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)


def normalise_email(email: str) -> str:
    """The form an address is compared and stored in: trimmed, its domain lower-cased (the local part is
    the receiving server's business, but every real provider treats it case-insensitively, so it is
    lower-cased too, or `Ann@x` and `ann@x` would be two subscriptions)."""
    return email.strip().lower()


def check_email(email: str, *, field: str = "email") -> str:
    """A plausible single mailbox `local@domain.tld` (no display name, no list), normalised; anything else
    is refused before it is stored or mailed."""
    value = normalise_email(email)
    if not value:
        raise InvalidEmail(f"{field} is required", field=field, code="is_required")
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(value) or ".." in value:
        raise InvalidEmail(f"{field} must be a single email address like name@example.com", field=field)
    return value


def check_webhook_url_form(url: str, *, allow_http: bool, field: str = "url") -> str:
    """A webhook target's form: absolute `https://` (or `http://` where private targets are allowed), with a
    host, no credentials, at most 2,048 characters. Where its name resolves is `infra/webhook_targets.py`'s
    check, made at creation and again at every delivery."""
    value = url.strip()
    if not value:
        raise InvalidWebhookUrl(f"{field} is required", field=field, code="is_required")
    parts = urlsplit(value)
    schemes = ("https", "http") if allow_http else ("https",)
    if len(value) > MAX_URL_LENGTH:
        raise InvalidWebhookUrl(f"{field} must be at most {MAX_URL_LENGTH} characters", field=field)
    if parts.scheme not in schemes:
        raise InvalidWebhookUrl(f"{field} must be an https:// URL", field=field)
    if not parts.hostname:
        raise InvalidWebhookUrl(f"{field} must name a host", field=field)
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl(f"{field} must not carry credentials", field=field)
    return value


def check_contact(contact: str) -> None:
    """The contact as events carry it: always the ciphertext, never the clear address."""
    if not contact.startswith(CONTACT_PREFIX):
        raise ValueError("a subscriber's contact is stored encrypted (infra/contacts.py)")


def check_scope(structure: Sequence[StructureItem], *, sub_page_id: str | None, component_ids: Sequence[str]) -> None:
    """A sub-page must be one of the page's; components must be placed on the page — on that sub-page when
    one is given."""
    sub_page: SubPageItem | None = None
    if sub_page_id is not None:
        sub_page = next((item for item in sub_pages(structure) if item.id == sub_page_id), None)
        if sub_page is None:
            raise UnknownSubPage(f"sub-page {sub_page_id} is not on this status page", field="sub_page_id")
    placed = {
        component_id
        for component_id, placement in component_placements(structure).items()
        if sub_page is None or sub_page.id in placement.sub_page_ids
    }
    for index, component_id in enumerate(component_ids):
        if component_id not in placed:
            where = "sub-page" if sub_page is not None else "status page"
            raise UnknownComponent(f"component {component_id} is not on this {where}", field=f"component_ids[{index}]")


# Errors


class InvalidEmail(DomainError):
    """Raised when an email address is missing or is not a single plausible mailbox."""

    field = "email"


class InvalidWebhookUrl(DomainError):
    """Raised when a webhook URL is not https, names no host, or resolves to an address Beacon refuses."""

    field = "url"


class InvalidSubscriberField(DomainError):
    """Raised when a subscriber field does not apply to its channel."""


class UnknownSubPage(DomainError):
    """Raised when a subscription names a sub-page that is not on its status page."""

    field = "sub_page_id"


class UnknownComponent(DomainError):
    """Raised when a subscription names a component that is not on its status page (or sub-page)."""

    field = "component_ids"


class ConfirmationUsed(DomainError):
    """Raised when a confirmation link is used a second time or its subscriber is no longer pending."""

    field = "token"
    code = "token_used"


class WrongChannel(DomainError):
    """Raised when a command applies to the other channel (enabling an email subscriber, for instance)."""


class SubscriberEnded(DomainError):
    """Raised when a command needs a subscriber that is still live, and this one is unsubscribed or erased."""

    code = "conflict"


class SubscriberExists(DomainError):
    """Raised when a live subscriber with the same channel and contact is already on the page."""

    code = "conflict"

    def __init__(self, existing_id: str) -> None:
        super().__init__(f"a subscriber with this contact already exists on this status page: {existing_id}")
        self.existing_id = existing_id


# Handlers. Creating a subscriber and erasing one also touch the key and lookup tables outside the log, so
# they live with those tables (`api/subscribers.py`); these are the commands that only append.


async def confirm_subscriber(store: EventStore, *, subscriber_id: UUID, context: CommandContext) -> Subscriber:
    def decide(subscriber: Subscriber) -> None:
        subscriber.confirm(at=context.now, by=context.actor)

    subscriber, _ = await execute(store, Subscriber, subscriber_id, decide, context)
    return subscriber


async def unsubscribe_subscriber(store: EventStore, *, subscriber_id: UUID, context: CommandContext) -> Subscriber:
    def decide(subscriber: Subscriber) -> None:
        subscriber.unsubscribe(at=context.now, by=context.actor)

    subscriber, _ = await execute(store, Subscriber, subscriber_id, decide, context)
    return subscriber


async def bounce_subscriber(
    store: EventStore, *, subscriber_id: UUID, reason: str, context: CommandContext
) -> Subscriber:
    """The dispatcher's verdict on an address the relay refused for good (a `5.1.x` at `RCPT TO`)."""

    def decide(subscriber: Subscriber) -> None:
        subscriber.bounce(reason=reason, at=context.now, by=context.actor)

    subscriber, _ = await execute(store, Subscriber, subscriber_id, decide, context)
    return subscriber


async def disable_subscriber(
    store: EventStore, *, subscriber_id: UUID, reason: str, context: CommandContext
) -> Subscriber:
    """The dispatcher's verdict on a webhook that answered `410 Gone` or failed every attempt."""

    def decide(subscriber: Subscriber) -> None:
        subscriber.disable(reason=reason, at=context.now, by=context.actor)

    subscriber, _ = await execute(store, Subscriber, subscriber_id, decide, context)
    return subscriber


async def enable_subscriber(store: EventStore, *, subscriber_id: UUID, context: CommandContext) -> Subscriber:
    def decide(subscriber: Subscriber) -> None:
        subscriber.enable(at=context.now, by=context.actor)

    subscriber, _ = await execute(store, Subscriber, subscriber_id, decide, context)
    return subscriber
