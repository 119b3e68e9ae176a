"""A status page with real subscribers for the notification tests: subscribers created as the API creates
them (their `Created` event in the log, their contact encrypted under a key of their own), notices published
through the domain, the outbox projection caught up, and a dispatcher on an injected clock that tests drive
one pass at a time."""

from __future__ import annotations

import base64
import random
import uuid
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from domain.base import save
from domain.component import Component, ComponentInfo
from domain.incident import Incident
from domain.status_page import StatusPage
from domain.structure import ComponentItem
from domain.subscriber import Channel, Subscriber
from infra.clock import FakeClock
from infra.contacts import Contact, encrypt, new_key, store_key
from infra.event_store import PostgresEventStore
from infra.ids import ulid_to_uuid, uuid_to_ulid
from infra.mail import MailTransport
from infra.webhooks import WebhookSender, target_resolver
from process_managers.notification_dispatcher import NotificationDispatcher, RetrySchedule
from projections.notification_outbox import NotificationOutbox
from projections.runner import catch_up, ensure_tables
from tests.support.builders import OPERATOR, T0
from tests.support.live_server import TEST_SECRET_KEY

SECRET_KEY = TEST_SECRET_KEY.encode()
"""The key the test app signs and checks subscriber links with, so links in the mails work against it."""
PAGE_URL = "https://status.acme.example/acme"
SCHEDULE = RetrySchedule((5, 300, 1800, 7200, 18000, 36000, 36000))


def webhook_secret(n: int) -> str:
    return "whsec_" + base64.b64encode(bytes([n]) * 24).decode()


@dataclass
class World:
    """One page (component API) and what the tests add to it."""

    pool: asyncpg.Pool
    store: PostgresEventStore
    clock: FakeClock
    page_id: UUID = field(default_factory=lambda: uuid.UUID(int=0x100))
    component: str = field(default_factory=lambda: uuid_to_ulid(uuid.UUID(int=0xA)))
    public_url: str | None = "https://status.acme.example"
    outbox: NotificationOutbox = field(default_factory=NotificationOutbox)
    serial: int = 0

    async def setup(self) -> None:
        async with self.pool.acquire() as conn:
            await ensure_tables(conn, [self.outbox])
        component = Component.create(
            id=ulid_to_uuid(self.component), name="API", description=None, at=T0, by=OPERATOR
        )
        await save(self.store, component, self._context())
        page = StatusPage.create(
            id=self.page_id, name="Acme", slug="acme", public_url=self.public_url, at=T0, by=OPERATOR
        )
        page.replace_structure(
            items=[ComponentItem(self.component)], components={self.component: ComponentInfo("API")}, at=T0, by=OPERATOR
        )
        await save(self.store, page, self._context())

    def _context(self) -> Any:
        from domain.base import CommandContext

        return CommandContext(now=self.clock.now(), actor=OPERATOR, request_id=None)

    async def subscriber(
        self, *, email: str | None = None, url: str | None = None, secret: str | None = None, confirmed: bool = True
    ) -> UUID:
        """An email subscriber (confirmed unless told) or, given `url`, an active webhook."""
        self.serial += 1
        subscriber_id = uuid.UUID(int=0x5000 + self.serial)
        key = new_key()
        contact = encrypt(key, Contact(email=email, url=url, secret=secret))
        async with self.pool.acquire() as conn:
            await store_key(conn, subscriber_id, key, contact)
        created = Subscriber.create(
            id=subscriber_id,
            status_page_id=uuid_to_ulid(self.page_id),
            channel=Channel.WEBHOOK if url else Channel.EMAIL,
            contact=contact,
            structure=[ComponentItem(self.component)],
            confirmed=confirmed and url is None,
            at=self.clock.now(),
            by=OPERATOR,
        )
        await save(self.store, created, self._context())
        return subscriber_id

    async def incident(self, *messages: str, statuses: tuple[str, ...] = ()) -> tuple[UUID, list[str]]:
        """An incident declared with `messages[0]` and updated with the rest, every update notifying."""
        self.serial += 1
        incident_id = uuid.UUID(int=0x1000 + self.serial)
        update_ids = [uuid_to_ulid(uuid.UUID(int=(0x9000 + self.serial) * 100 + n)) for n in range(len(messages))]
        steps = statuses or ("investigating", "identified", "monitoring", "resolved")
        incident = Incident.declare(
            id=incident_id,
            status_page_id=uuid_to_ulid(self.page_id),
            page_components={self.component},
            name=f"Incident {self.serial}",
            message=messages[0],
            status=steps[0],
            component_statuses={self.component: "partial_outage"},
            notify_subscribers=True,
            update_id=update_ids[0],
            at=self.clock.now(),
            by=OPERATOR,
        )
        for n, message in enumerate(messages[1:], start=1):
            incident.publish_update(
                update_id=update_ids[n],
                message=message,
                status=steps[min(n, len(steps) - 1)],
                component_statuses=None,
                notify_subscribers=True,
                page_components={self.component},
                at=self.clock.now(),
                by=OPERATOR,
            )
        await save(self.store, incident, self._context())
        return incident_id, update_ids

    async def project(self) -> None:
        """The outbox catches up with the log (subscribers folded, intents fanned out)."""
        async with self.pool.acquire() as conn:
            await catch_up(conn, self.store, self.outbox)

    def dispatcher(
        self, mail: MailTransport | None, *, schedule: RetrySchedule = SCHEDULE, **options: Any
    ) -> NotificationDispatcher:
        return NotificationDispatcher(
            self.pool,
            self.store,
            self.clock,
            mail=mail,
            webhooks=options.pop("webhooks", None) or WebhookSender(target_resolver(allow_private=True), timeout=2.0),
            secret_key=SECRET_KEY,
            schedule=schedule,
            rng=random.Random(1),
            **options,
        )

    async def intents(self, subscriber_id: UUID) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT i.*, m.content->'update'->>'message' AS message FROM beacon_notification_intents i"
            " JOIN beacon_notification_messages m ON m.id = i.message_id WHERE i.subscriber_id = $1"
            " ORDER BY i.position",
            subscriber_id,
        )
        return [dict(row) for row in rows]

    async def subscriber_events(self, subscriber_id: UUID) -> list[str]:
        return [type(event).__qualname__ for event in await self.store.load(subscriber_id)]
