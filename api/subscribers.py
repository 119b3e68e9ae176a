"""The subscriber commands that reach outside the log, shared by the admin API, the public endpoints and
`beacon subscribers` (docs/architecture.md#subscribers).

Creating a subscriber validates the clear contact, seals it under a new per-subscriber key, keeps the key,
appends `Subscriber.Created` and records the blind index of the contact; erasing one appends
`Subscriber.Erased` and deletes everything outside the log that could give the contact back. The steps are
ordered so a crash between them never leaves a contact unreadable while its subscriber is live: the key is
stored before the event that needs it, and an erasure a crash interrupts is finished by the next process
start (`infra.contacts.purge_erased`).
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit
from uuid import UUID

import asyncpg

from api.errors import ApiError
from domain.base import CommandContext, EventStore, execute, load, save
from domain.structure import StructureItem
from domain.subscriber import (
    SECRET_OVERLAP,
    Channel,
    InvalidSubscriberField,
    Subscriber,
    SubscriberEnded,
    SubscriberExists,
    check_email,
)
from infra import contacts
from infra.contacts import Contact
from infra.ids import new_ulid, ulid_to_uuid, uuid_to_ulid
from infra.mail import default_mail_url
from infra.settings import Settings
from infra.webhook_targets import check_target
from projections import status_page_catalog as catalog

if TYPE_CHECKING:
    from api.services import Services

WEBHOOK_SECRET_BYTES = 32


class OnExisting(Enum):
    """What creating a subscriber does when a live one already holds the contact on the page."""

    CONFLICT = "conflict"
    """The admin API: a 409 naming the existing subscriber."""
    REMIND = "remind"
    """A public sign-up: a pending address gets another confirmation mail (at most one an hour); anything
    else is left alone, and the caller answers 202 either way (no enumeration)."""
    SKIP = "skip"
    """An import: the existing subscriber is left alone, whatever its state (even unsubscribed)."""


@dataclass(frozen=True)
class Subscription:
    """The outcome of a create: the subscriber, its contact in clear (shown once, with a webhook's secret),
    and whether it was made now or already existed."""

    subscriber: Subscriber
    contact: Contact | None
    created: bool


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and the base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(WEBHOOK_SECRET_BYTES)).decode("ascii")


def mail_folder(settings: Settings) -> Path:
    """Where `.eml` files are written per subscriber: `BEACON_SMTP_URL`'s folder when it is `file://DIR`, else
    the embedded default's `$BEACON_DATA_DIR/mail` (infra/mail.py writes `{folder}/{subscriber_id}/`)."""
    url = settings.smtp_url if settings.smtp_url and settings.smtp_url.startswith("file://") else None
    return Path(unquote(urlsplit(url or default_mail_url(settings.data_dir)).path))


@dataclass(frozen=True)
class SubscriberCommands:
    pool: asyncpg.Pool
    store: EventStore
    secret_key: bytes
    allow_private: bool
    """`BEACON_WEBHOOK_ALLOW_PRIVATE`."""
    mail_dir: Path
    """Where `.eml` files are written per subscriber (`mail_folder`)."""

    @classmethod
    def configured(
        cls, settings: Settings, pool: asyncpg.Pool, store: EventStore, secret_key: bytes
    ) -> SubscriberCommands:
        return cls(
            pool=pool,
            store=store,
            secret_key=secret_key,
            allow_private=settings.webhook_allow_private,
            mail_dir=mail_folder(settings),
        )

    @classmethod
    def of(cls, services: Services) -> SubscriberCommands:
        """The commands as this process is configured: what the admin API and the public endpoints run."""
        return cls.configured(services.settings, services.pool, services.store, services.secret_key)

    async def structure(self, status_page_id: str) -> Sequence[StructureItem]:
        """The page's structure, or a 422 on `status_page_id` when there is no such page."""
        found = await catalog.get_structure(self.pool, status_page_id)
        if found is None:
            raise ApiError(422, f"No status page with id {status_page_id!r}", field="status_page_id")
        return found.items

    async def contact(self, channel: Channel, *, email: str | None, url: str | None) -> Contact:
        """The clear contact a request gives, checked: an email subscriber needs an address and no URL; a
        webhook needs an https URL that resolves to public addresses, and may carry an address."""
        if channel is Channel.EMAIL:
            if url is not None:
                raise InvalidSubscriberField("url applies to webhook subscribers only", field="url")
            return Contact(email=check_email(email or ""))
        if url is None:
            raise ApiError(422, "url is required for a webhook subscriber", code="is_required", field="url")
        await check_target(url, allow_private=self.allow_private)
        return Contact(
            email=None if email is None else check_email(email), url=url.strip(), secret=new_webhook_secret()
        )

    async def create(
        self,
        *,
        status_page_id: str,
        channel: Channel,
        contact: Contact,
        structure: Sequence[StructureItem],
        sub_page_id: str | None = None,
        component_ids: Sequence[str] = (),
        confirmed: bool = False,
        on_existing: OnExisting,
        context: CommandContext,
    ) -> Subscription:
        """A new subscriber, unless a live one holds this contact on the page (see `OnExisting`)."""
        page_uuid = ulid_to_uuid(status_page_id)
        value = contact.email if channel is Channel.EMAIL else contact.url
        assert value is not None
        index = contacts.blind_index(self.secret_key, channel.value, value)
        subscriber_id = ulid_to_uuid(new_ulid(context.now))
        key = contacts.new_key()
        # Checked before anything is stored: bad input records nothing.
        subscriber = Subscriber.create(
            id=subscriber_id,
            status_page_id=status_page_id,
            channel=channel,
            contact=contacts.encrypt(key, contact),
            structure=structure,
            sub_page_id=sub_page_id,
            component_ids=component_ids,
            confirmed=confirmed,
            at=context.now,
            by=context.actor,
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await contacts.lock_place(conn, page_uuid, channel.value, index)
            holder_id = await contacts.find(conn, page_uuid, channel.value, index)
            if holder_id is not None:
                holder = await load(self.store, Subscriber, holder_id)
                if holder.live or on_existing is OnExisting.SKIP:
                    return await self._existing(holder, on_existing, context)
            await contacts.store_key(self.pool, subscriber_id, key, subscriber.contact)
            await save(self.store, subscriber, context)
            if holder_id is None:
                await contacts.claim(conn, page_uuid, channel.value, index, subscriber_id)
            else:
                await contacts.replace_holder(conn, page_uuid, channel.value, index, subscriber_id)
        return Subscription(subscriber=subscriber, contact=contact, created=True)

    async def _existing(self, holder: Subscriber, on_existing: OnExisting, context: CommandContext) -> Subscription:
        if on_existing is OnExisting.CONFLICT:
            raise SubscriberExists(uuid_to_ulid(holder.id))
        if on_existing is OnExisting.REMIND and holder.request_confirmation(at=context.now, by=context.actor):
            await save(self.store, holder, context)
        return Subscription(subscriber=holder, contact=None, created=False)

    async def erase(self, subscriber_id: UUID, context: CommandContext) -> Subscriber:
        """Erase a subscriber's contact for good: the event first (so a crash after it is finished by
        `purge_erased` at the next start), then the key, the lookup row, SMTP replies and `.eml` files."""

        def decide(subscriber: Subscriber) -> None:
            subscriber.erase(at=context.now, by=context.actor)

        subscriber, _ = await execute(self.store, Subscriber, subscriber_id, decide, context)
        async with self.pool.acquire() as conn, conn.transaction():
            await contacts.erase(conn, subscriber_id)
        await asyncio.to_thread(contacts.erase_mail, self.mail_dir, subscriber_id)
        return subscriber

    async def rotate_secret(self, subscriber_id: UUID, context: CommandContext) -> tuple[str, datetime]:
        """A new signing secret for a webhook; the previous one keeps signing for 24 hours. Returns the
        new secret (shown once) and when the previous one stops."""
        subscriber = await load(self.store, Subscriber, subscriber_id)
        key = await contacts.load_key(self.pool, subscriber_id)
        current = (await contacts.load_contacts(self.pool, [subscriber_id]))[subscriber_id]
        if key is None or current is None:
            raise SubscriberEnded(f"subscriber {subscriber_id} is erased")
        secret = new_webhook_secret()
        rotated = Contact(
            email=current.email,
            url=current.url,
            secret=secret,
            previous_secret=current.secret,
            previous_valid_until=context.now + SECRET_OVERLAP,
        )
        sealed = contacts.encrypt(key, rotated)
        until: list[datetime] = []

        def decide(loaded: Subscriber) -> None:
            until.append(loaded.rotate_secret(contact=sealed, at=context.now, by=context.actor))

        await execute(self.store, Subscriber, subscriber_id, decide, context, loaded=subscriber)
        await contacts.replace_contact(self.pool, subscriber_id, sealed)
        return secret, until[-1]
