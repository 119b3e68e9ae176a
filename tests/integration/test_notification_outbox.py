"""The notification outbox on the real Postgres (docs/architecture.md#notification-outbox): given a page, its
subscribers and its notices' events, exactly which (update, subscriber) intents are recorded, with what
content; exactly once through crashes; and one statement for a 100,000-subscriber fan-out."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import pytest

from domain.base import CommandContext, save
from domain.component import Component, ComponentInfo
from domain.incident import Incident, PastUpdate
from domain.maintenance import Maintenance
from domain.status_page import StatusPage
from domain.structure import ComponentItem, SubPageItem
from infra.event_store import PostgresEventStore
from infra.ids import ulid_to_uuid, uuid_to_ulid
from projections.notification_outbox import INTENTS, MESSAGES, SUBSCRIBERS, NotificationOutbox, intent_id
from projections.runner import catch_up, ensure_tables
from tests.support.builders import OPERATOR, at, context_at

A, B, C = (uuid.UUID(int=n) for n in (0xA, 0xB, 0xC))
"""Component A is on the page; B on the sub-page "eu"; C on "eu" too, hidden."""
PAGE, OTHER_PAGE = uuid.UUID(int=0x100), uuid.UUID(int=0x200)
EU = "01SUBPAGEEU000000000000000"


def ulid(value: UUID) -> str:
    return uuid_to_ulid(value)


def update(n: int) -> str:
    return uuid_to_ulid(uuid.UUID(int=0x9000 + n))


@dataclass
class Log:
    """Appends domain objects' events to the real store, each write a minute after the last."""

    store: PostgresEventStore
    minute: float = 0.0

    def context(self) -> CommandContext:
        self.minute += 1
        return context_at(self.minute)

    async def save(self, aggregate: Any) -> None:
        await save(self.store, aggregate, self.context())


async def page_with_components(log: Log) -> None:
    for component, name in ((A, "API"), (B, "EU storage"), (C, "EU internal")):
        await log.save(Component.create(id=component, name=name, description=None, at=at(0), by=OPERATOR))
    for page_id, slug in ((PAGE, "acme"), (OTHER_PAGE, "other")):
        page = StatusPage.create(
            id=page_id, name=slug.title(), slug=slug, public_url=f"https://status.{slug}.example", at=at(0), by=OPERATOR
        )
        if page_id == PAGE:
            page.replace_structure(
                items=[
                    ComponentItem(ulid(A)),
                    SubPageItem(EU, "Europe", "eu", (ComponentItem(ulid(B)), ComponentItem(ulid(C), hidden=True))),
                ],
                components={ulid(c): ComponentInfo(n) for c, n in ((A, "API"), (B, "EU storage"), (C, "EU internal"))},
                at=at(0),
                by=OPERATOR,
            )
        await log.save(page)


async def subscribe(
    conn: asyncpg.Connection,
    name: int,
    *,
    page: UUID = PAGE,
    channel: str = "email",
    sub_page_id: str | None = None,
    components: Sequence[UUID] = (),
    state: str = "confirmed",
) -> UUID:
    subscriber = uuid.UUID(int=0x5000 + name)
    await conn.execute(
        f"INSERT INTO {SUBSCRIBERS} (subscriber_id, status_page_id, channel, sub_page_id, component_ids, state,"
        " contact) VALUES ($1, $2, $3, $4, $5, $6, 'v1:x')",
        subscriber,
        page,
        channel,
        sub_page_id,
        list(components),
        state,
    )
    return subscriber


async def told(conn: asyncpg.Connection) -> dict[str, set[UUID]]:
    """Who each notifying update was sent to, by the update's message text."""
    rows = await conn.fetch(
        f"SELECT m.content->'update'->>'message' AS message, i.subscriber_id FROM {MESSAGES} m"
        f" LEFT JOIN {INTENTS} i ON i.message_id = m.id WHERE m.kind = 'update'"
    )
    result: dict[str, set[UUID]] = {}
    for row in rows:
        result.setdefault(row["message"], set())
        if row["subscriber_id"] is not None:
            result[row["message"]].add(row["subscriber_id"])
    return result


@pytest.fixture
async def outbox(pool: asyncpg.Pool) -> NotificationOutbox:
    projection = NotificationOutbox()
    async with pool.acquire() as conn:
        await ensure_tables(conn, [projection])
    return projection


async def test_who_is_told(pool: asyncpg.Pool, outbox: NotificationOutbox) -> None:
    store = PostgresEventStore(pool)
    log = Log(store)
    await page_with_components(log)
    async with pool.acquire() as conn:
        everyone = await subscribe(conn, 1)
        eu = await subscribe(conn, 2, sub_page_id=EU)
        api = await subscribe(conn, 3, components=[A])
        storage = await subscribe(conn, 4, components=[B])
        hook = await subscribe(conn, 5, channel="webhook", state="active")
        await subscribe(conn, 6, state="pending")
        await subscribe(conn, 7, state="unsubscribed")
        await subscribe(conn, 8, channel="webhook", state="disabled")
        await subscribe(conn, 9, page=OTHER_PAGE)

    incident = Incident.declare(
        id=uuid.UUID(int=0x1001),
        status_page_id=ulid(PAGE),
        page_components={ulid(A), ulid(B), ulid(C)},
        name="API errors",
        message="api down",
        status="investigating",
        component_statuses={ulid(A): "full_outage"},
        notify_subscribers=True,
        update_id=update(1),
        at=at(1),
        by=OPERATOR,
    )
    incident.publish_update(
        update_id=update(2),
        message="storage too",
        status="identified",
        component_statuses={ulid(B): "partial_outage"},
        notify_subscribers=True,
        page_components={ulid(A), ulid(B), ulid(C)},
        at=at(2),
        by=OPERATOR,
    )
    incident.publish_update(
        update_id=update(3),
        message="quiet note",
        status=None,
        component_statuses=None,
        notify_subscribers=False,
        page_components=frozenset(),
        at=at(3),
        by=OPERATOR,
    )
    incident.rename(name="API and storage errors", at=at(4), by=OPERATOR)
    await log.save(incident)
    bare = Incident.declare(
        id=uuid.UUID(int=0x1002),
        status_page_id=ulid(PAGE),
        page_components=frozenset(),
        name="Slow logins",
        message="no component named",
        status="investigating",
        component_statuses=None,
        notify_subscribers=True,
        update_id=update(4),
        at=at(5),
        by=OPERATOR,
    )
    await log.save(bare)
    hidden = Incident.declare(
        id=uuid.UUID(int=0x1003),
        status_page_id=ulid(PAGE),
        page_components={ulid(C)},
        name="Internal",
        message="hidden only",
        status="investigating",
        component_statuses={ulid(C): "degraded_performance"},
        notify_subscribers=True,
        update_id=update(5),
        at=at(6),
        by=OPERATOR,
    )
    await log.save(hidden)
    past = Incident.record_retrospective(
        id=uuid.UUID(int=0x1004),
        status_page_id=ulid(PAGE),
        page_components={ulid(A)},
        name="Yesterday",
        updates=[PastUpdate(update(6), at(-100), "was down", "resolved")],
        at=at(7),
        by=OPERATOR,
    )
    await log.save(past)
    window = Maintenance.schedule(
        id=uuid.UUID(int=0x1005),
        status_page_id=ulid(PAGE),
        page_components={ulid(B)},
        name="Storage move",
        message="moving storage",
        status="maintenance_scheduled",
        affected_component_ids=[ulid(B)],
        start_at=at(60),
        end_at=at(120),
        automate_maintenance_status=True,
        notify_subscribers=True,
        update_id=update(7),
        at=at(8),
        by=OPERATOR,
    )
    window.edit(name="Storage move (EU)", start_at=at(60), end_at=at(130), at=at(9), by=OPERATOR)
    window.start_automatically(update_id=update(8), at=at(60))
    await log.save(window)
    complete = Maintenance.schedule(
        id=uuid.UUID(int=0x1006),
        status_page_id=ulid(PAGE),
        page_components={ulid(A)},
        name="Done already",
        message="finished",
        status="maintenance_complete",
        affected_component_ids=[ulid(A)],
        start_at=at(10),
        end_at=at(200),
        notify_subscribers=True,
        update_id=update(9),
        at=at(11),
        by=OPERATOR,
    )
    complete.delete(at=at(12), by=OPERATOR)
    await log.save(complete)
    other = Incident.declare(
        id=uuid.UUID(int=0x1007),
        status_page_id=ulid(OTHER_PAGE),
        page_components=frozenset(),
        name="Other",
        message="other page",
        status="investigating",
        component_statuses=None,
        notify_subscribers=True,
        update_id=update(10),
        at=at(13),
        by=OPERATOR,
    )
    await log.save(other)

    async with pool.acquire() as conn:
        await catch_up(conn, store, outbox, batch_size=7)
        result = await told(conn)
    other_subscriber = uuid.UUID(int=0x5000 + 9)
    assert result == {
        "api down": {everyone, api, hook},
        "storage too": {everyone, eu, api, storage, hook},
        "no component named": {everyone, api, storage, hook},
        "hidden only": {everyone, hook},
        "moving storage": {everyone, eu, storage, hook},
        "This scheduled maintenance is now in progress.": {everyone, eu, storage, hook},
        "other page": {other_subscriber},
    }


async def test_intent_ids_in_sql_are_python_uuid3(pool: asyncpg.Pool, outbox: NotificationOutbox) -> None:
    store = PostgresEventStore(pool)
    log = Log(store)
    await page_with_components(log)
    async with pool.acquire() as conn:
        subscribers = [await subscribe(conn, n) for n in range(5)]
        incident = Incident.declare(
            id=uuid.UUID(int=0x2001),
            status_page_id=ulid(PAGE),
            page_components=frozenset(),
            name="Down",
            message="down",
            status="investigating",
            component_statuses=None,
            notify_subscribers=True,
            update_id=update(1),
            at=at(1),
            by=OPERATOR,
        )
        await log.save(incident)
        await catch_up(conn, store, outbox)
        rows = await conn.fetch(f"SELECT id, message_id, subscriber_id FROM {INTENTS}")
    assert {row["subscriber_id"] for row in rows} == set(subscribers)
    assert all(row["id"] == intent_id(row["message_id"], row["subscriber_id"]) for row in rows)


async def test_content_is_fixed_as_of_its_update(pool: asyncpg.Pool, outbox: NotificationOutbox) -> None:
    store = PostgresEventStore(pool)
    log = Log(store)
    await page_with_components(log)
    async with pool.acquire() as conn:
        await subscribe(conn, 1)
    incident = Incident.declare(
        id=uuid.UUID(int=0x3001),
        status_page_id=ulid(PAGE),
        page_components={ulid(A)},
        name="API errors",
        message="We are **looking**. <script>alert(1)</script>",
        status="investigating",
        component_statuses={ulid(A): "full_outage"},
        notify_subscribers=True,
        update_id=update(1),
        at=at(1),
        by=OPERATOR,
    )
    await log.save(incident)
    async with pool.acquire() as conn:
        await catch_up(conn, store, outbox)
        first = await conn.fetchval(f"SELECT content::text FROM {MESSAGES}")
    incident.publish_update(
        update_id=update(2),
        message="fixed",
        status="resolved",
        component_statuses=None,
        notify_subscribers=True,
        page_components=frozenset(),
        at=at(5),
        by=OPERATOR,
    )
    incident.rename(name="Renamed later", at=at(6), by=OPERATOR)
    await log.save(incident)
    async with pool.acquire() as conn:
        await catch_up(conn, store, outbox)
        rows = await conn.fetch(f"SELECT content::text AS content FROM {MESSAGES} ORDER BY position")
    assert rows[0]["content"] == first
    initial = msgspec.json.decode(first)
    assert initial["subject"] == "[Acme] API errors — Investigating"
    assert initial["notice"]["url"] == f"https://status.acme.example/incidents/{ulid(uuid.UUID(int=0x3001))}"
    assert "<strong>looking</strong>" in initial["html"] and "<script>" not in initial["html"]
    assert "- API: Full outage" in initial["text"]
    assert initial["webhook"]["page"] == {
        "id": ulid(PAGE),
        "status_indicator": "critical",
        "status_description": "Major System Outage",
    }
    assert [u["body"] for u in initial["webhook"]["incident"]["incident_updates"]] == [
        "We are **looking**. <script>alert(1)</script>"
    ]
    assert initial["webhook"]["meta"]["generated_at"] == "2026-01-28T10:01:00.000000Z"
    resolved = msgspec.json.decode(rows[1]["content"])
    assert resolved["subject"] == "[Acme] API errors — Resolved"
    assert [u["status"] for u in resolved["webhook"]["incident"]["incident_updates"]] == ["resolved", "investigating"]
    assert resolved["webhook"]["page"]["status_indicator"] == "none"
    assert ulid_to_uuid(resolved["page"]["id"]) == PAGE
