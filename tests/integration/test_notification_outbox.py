"""The notification outbox on the real Postgres (docs/architecture.md#notification-outbox): given a page, its
subscribers and its notices' events, exactly which (update, subscriber) intents are recorded, with what
content; exactly once through crashes; and one statement for a 100,000-subscriber fan-out."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

import asyncpg
import msgspec
import pytest

from domain.base import CommandContext, load, save
from domain.component import Component, ComponentInfo
from domain.incident import Incident, PastUpdate
from domain.maintenance import Maintenance
from domain.public_base_url import PublicBaseUrl
from domain.status_page import PageSettings, StatusPage
from domain.structure import ComponentItem, SubPageItem
from domain.subscriber import Channel, Subscriber
from infra.event_store import PostgresEventStore, RecordedEvent
from infra.ids import ulid_to_uuid, uuid_to_ulid
from projections.notification_outbox import (
    INTENTS,
    MESSAGES,
    REPLAY_CHECKED_UPDATES,
    SUBSCRIBERS,
    NotificationOutbox,
    intent_id,
)
from projections.rebuild import rebuild_live_many, replay_check
from projections.runner import ProjectionRunner, catch_up, ensure_tables
from tests.support.builders import OPERATOR, at, context_at
from tests.support.polling import wait_until

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
                items=STRUCTURE,
                components={ulid(c): ComponentInfo(n) for c, n in ((A, "API"), (B, "EU storage"), (C, "EU internal"))},
                at=at(0),
                by=OPERATOR,
            )
        await log.save(page)


STRUCTURE = (
    ComponentItem(ulid(A)),
    SubPageItem(EU, "Europe", "eu", (ComponentItem(ulid(B)), ComponentItem(ulid(C), hidden=True))),
)


async def subscribe(
    log: Log,
    name: int,
    *,
    page: UUID = PAGE,
    channel: Channel = Channel.EMAIL,
    sub_page_id: str | None = None,
    components: Sequence[UUID] = (),
    state: str = "confirmed",
) -> UUID:
    """Subscriber `name`, brought to `state` through its own events."""
    subscriber = Subscriber.create(
        id=uuid.UUID(int=0x5000 + name),
        status_page_id=ulid(page),
        channel=channel,
        contact="v1:ciphertext",
        structure=STRUCTURE if page == PAGE else (),
        sub_page_id=sub_page_id,
        component_ids=[ulid(c) for c in components],
        confirmed=state != "pending" and channel is Channel.EMAIL,
        at=at(log.minute),
        by=OPERATOR,
    )
    if state == "unsubscribed":
        subscriber.unsubscribe(at=at(log.minute), by=OPERATOR)
    elif state == "disabled":
        subscriber.disable(reason="410 Gone", at=at(log.minute), by=OPERATOR)
    await log.save(subscriber)
    return subscriber.id


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


ALL = frozenset(ulid(c) for c in (A, B, C))


def declare(
    n: int,
    message: str,
    statuses: dict[UUID, str] | None = None,
    *,
    notify: bool = True,
    page: UUID = PAGE,
    name: str = "API errors",
) -> Incident:
    """Incident n, declared n minutes after T0 with update n."""
    return Incident.declare(
        id=uuid.UUID(int=0x1000 + n),
        status_page_id=ulid(page),
        page_components=ALL,
        name=name,
        message=message,
        status="investigating",
        component_statuses={ulid(c): s for c, s in (statuses or {}).items()},
        notify_subscribers=notify,
        update_id=update(n),
        at=at(n),
        by=OPERATOR,
    )


def publish(
    incident: Incident,
    n: int,
    message: str,
    status: str | None = None,
    statuses: dict[UUID, str] | None = None,
    *,
    notify: bool = True,
) -> None:
    incident.publish_update(
        update_id=update(n),
        message=message,
        status=status,
        component_statuses={ulid(c): s for c, s in (statuses or {}).items()},
        notify_subscribers=notify,
        page_components=ALL,
        at=at(n),
        by=OPERATOR,
    )


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
    everyone = await subscribe(log, 1)
    eu = await subscribe(log, 2, sub_page_id=EU)
    api = await subscribe(log, 3, components=[A])
    storage = await subscribe(log, 4, components=[B])
    hook = await subscribe(log, 5, channel=Channel.WEBHOOK, state="active")
    await subscribe(log, 6, state="pending")
    await subscribe(log, 7, state="unsubscribed")
    await subscribe(log, 8, channel=Channel.WEBHOOK, state="disabled")
    elsewhere = await subscribe(log, 9, page=OTHER_PAGE)

    incident = declare(1, "api down", {A: "full_outage"})
    await log.save(incident)
    late = await subscribe(log, 10)  # scope and state as of each update's log position
    leaving = await load(store, Subscriber, api)
    leaving.unsubscribe(at=at(2), by=OPERATOR)
    await log.save(leaving)
    publish(incident, 2, "storage too", "identified", {B: "partial_outage"})
    publish(incident, 3, "quiet note", notify=False)
    incident.rename(name="API and storage errors", at=at(4), by=OPERATOR)
    await log.save(incident)
    api = await subscribe(log, 11, components=[A])
    await log.save(declare(5, "no component named"))
    await log.save(declare(6, "hidden only", {C: "degraded_performance"}))
    await log.save(declare(7, "not told", {A: "full_outage"}, notify=False))
    await log.save(
        Incident.record_retrospective(
            id=uuid.UUID(int=0x1008),
            status_page_id=ulid(PAGE),
            page_components=ALL,
            name="Yesterday",
            updates=[PastUpdate(update(8), at(-100), "was down", "resolved")],
            at=at(8),
            by=OPERATOR,
        )
    )
    window = schedule(9, "moving storage", [B], start=60, end=120, automate=True)
    window.edit(name="Storage move (EU)", start_at=at(60), end_at=at(130), at=at(10), by=OPERATOR)
    window.start_automatically(update_id=update(11), at=at(60))
    await log.save(window)
    complete = schedule(12, "finished", [A], start=10, end=200, status="maintenance_complete")
    complete.delete(at=at(13), by=OPERATOR)
    await log.save(complete)
    await log.save(declare(14, "other page", page=OTHER_PAGE))

    async with pool.acquire() as conn:
        await catch_up(conn, store, outbox, batch_size=7)
        result = await told(conn)
    assert result == {
        "api down": {everyone, leaving.id, hook},
        "storage too": {everyone, late, eu, storage, hook},
        "no component named": {everyone, late, api, storage, hook},
        "hidden only": {everyone, late, hook},
        "moving storage": {everyone, late, eu, storage, hook},
        "This scheduled maintenance is now in progress.": {everyone, late, eu, storage, hook},
        "other page": {elsewhere},
    }


def schedule(
    n: int,
    message: str,
    components: Sequence[UUID],
    *,
    start: float,
    end: float,
    automate: bool = False,
    status: str = "maintenance_scheduled",
    notify: bool = True,
) -> Maintenance:
    return Maintenance.schedule(
        id=uuid.UUID(int=0x1000 + n),
        status_page_id=ulid(PAGE),
        page_components=ALL,
        name="Storage move",
        message=message,
        status=status,
        affected_component_ids=[ulid(c) for c in components],
        start_at=at(start),
        end_at=at(end),
        automate_maintenance_status=automate,
        notify_subscribers=notify,
        update_id=update(n),
        at=at(n),
        by=OPERATOR,
    )


async def test_intent_ids_in_sql_are_python_uuid3(pool: asyncpg.Pool, outbox: NotificationOutbox) -> None:
    store = PostgresEventStore(pool)
    log = Log(store)
    await page_with_components(log)
    subscribers = [await subscribe(log, n) for n in range(5)]
    await log.save(declare(1, "down"))
    async with pool.acquire() as conn:
        await catch_up(conn, store, outbox)
        rows = await conn.fetch(f"SELECT id, message_id, subscriber_id FROM {INTENTS}")
    assert {row["subscriber_id"] for row in rows} == set(subscribers)
    assert all(row["id"] == intent_id(row["message_id"], row["subscriber_id"]) for row in rows)


async def test_content_is_fixed_as_of_its_update(pool: asyncpg.Pool, outbox: NotificationOutbox) -> None:
    store = PostgresEventStore(pool)
    log = Log(store)
    await page_with_components(log)
    await subscribe(log, 1)
    incident = declare(1, "We are **looking**. <script>alert(1)</script>", {A: "full_outage"})
    await log.save(incident)
    async with pool.acquire() as conn:
        await catch_up(conn, store, outbox)
        first = await conn.fetchval(f"SELECT content::text FROM {MESSAGES}")
    publish(incident, 5, "fixed", "resolved")
    incident.rename(name="Renamed later", at=at(6), by=OPERATOR)
    await log.save(incident)
    async with pool.acquire() as conn:
        await catch_up(conn, store, outbox)
        rows = await conn.fetch(f"SELECT content::text AS content FROM {MESSAGES} ORDER BY position")
    assert rows[0]["content"] == first
    initial = msgspec.json.decode(first)
    assert initial["subject"] == "[Acme] API errors — Investigating"
    assert initial["notice"]["url"] == f"https://status.acme.example/incidents/{ulid(uuid.UUID(int=0x1001))}"
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


class CrashingOutbox(NotificationOutbox):
    """The outbox whose connection dies right after it folded the event at `position`, inside the batch's
    transaction: what a SIGKILL of the worker or a cut connection does to an open batch."""

    def __init__(self, position: int) -> None:
        self.position = position

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            await super().apply(conn, [event])
            if event.position == self.position:
                await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")


async def pairs(conn: asyncpg.Connection) -> list[tuple[UUID, UUID]]:
    rows = await conn.fetch(
        f"SELECT m.update_id, i.subscriber_id FROM {INTENTS} i JOIN {MESSAGES} m ON m.id = i.message_id ORDER BY 1, 2"
    )
    return [(row["update_id"], row["subscriber_id"]) for row in rows]


async def test_a_crash_between_batches_neither_loses_nor_doubles_an_intent(
    pool: asyncpg.Pool, outbox: NotificationOutbox
) -> None:
    store = PostgresEventStore(pool)
    log = Log(store)
    await page_with_components(log)
    subscribers = [await subscribe(log, n) for n in range(3)]
    positions = []
    for n in range(1, 7):
        result = await save(store, declare(n, f"update {n}"), context_at(n))
        positions.append(result.last_position)
    crash_at = positions[3]

    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
        async with pool.acquire() as conn:
            await catch_up(conn, store, CrashingOutbox(crash_at), batch_size=2)
    async with pool.acquire() as conn:
        survived = await pairs(conn)
        checkpoint = await conn.fetchval(
            "SELECT position FROM beacon_projection_checkpoints WHERE name = $1", outbox.name
        )
    committed = [p for p in positions if p <= checkpoint]
    assert positions[0] in committed and crash_at not in committed  # batches before it stayed, its own went
    assert survived == sorted((ulid_to_uuid(update(n)), s) for n in range(1, len(committed) + 1) for s in subscribers)

    async with pool.acquire() as conn:
        await catch_up(conn, store, outbox, batch_size=2)
        after = await pairs(conn)
    assert after == sorted((ulid_to_uuid(update(n)), s) for n in range(1, 7) for s in subscribers)


class CountingConnection:
    """The runner's connection, counting the statements a projection sends through it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.statements: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.conn, name)
        if name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):

            def counted(query: str, *args: Any, **kwargs: Any) -> Any:
                self.statements.append(query)
                return attribute(query, *args, **kwargs)

            return counted
        return attribute


async def test_a_100000_subscriber_fan_out_is_one_statement(pool: asyncpg.Pool, outbox: NotificationOutbox) -> None:
    store = PostgresEventStore(pool)
    log = Log(store)
    await page_with_components(log)
    async with pool.acquire() as conn:
        await catch_up(conn, store, outbox)
        await conn.execute(
            f"INSERT INTO {SUBSCRIBERS} (subscriber_id, status_page_id, channel, component_ids, state, contact)"
            " SELECT gen_random_uuid(), $1, 'email', '{}', 'confirmed', 'v1:x' FROM generate_series(1, 100000)",
            PAGE,
        )
    counts = []
    for n in (1, 2):
        await log.save(declare(n, f"update {n}", {A: "full_outage"}))
        async with pool.acquire() as conn, conn.transaction():
            counting = CountingConnection(conn)
            events = await store.read_all(after=await store.max_position() - 1, limit=10, conn=conn)
            await outbox.apply(cast(asyncpg.Connection, counting), events)
            counts.append(counting.statements)
    async with pool.acquire() as conn:
        intents = await conn.fetchval(f"SELECT count(*) FROM {INTENTS}")
    assert intents == 200_000
    [fan_outs] = {sum(INTENTS in statement for statement in statements) for statements in counts}
    assert fan_outs == 1
    assert len(counts[0]) == len(counts[1]) < 12  # the same handful of statements, whatever the subscribers


async def test_confirmations_and_disabled_webhooks_go_through_the_outbox(
    pool: asyncpg.Pool, outbox: NotificationOutbox
) -> None:
    store = PostgresEventStore(pool)
    log = Log(store)
    await page_with_components(log)
    pending = await subscribe(log, 1, state="pending", sub_page_id=EU)
    await subscribe(log, 2)  # imported as confirmed: no confirmation mail
    again = await load(store, Subscriber, pending)
    assert again.request_confirmation(at=at(90), by=OPERATOR)
    await log.save(again)
    hook = await subscribe(log, 3, channel=Channel.WEBHOOK, state="disabled")
    await log.save(declare(1, "down"))  # a pending address is not told
    async with pool.acquire() as conn:
        await catch_up(conn, store, outbox)
        rows = await conn.fetch(
            f"SELECT m.kind, m.content, i.subscriber_id, i.channel, i.id, m.id AS message_id FROM {MESSAGES} m"
            f" JOIN {INTENTS} i ON i.message_id = m.id ORDER BY m.position, i.subscriber_id"
        )
    assert [(r["kind"], r["subscriber_id"], r["channel"]) for r in rows] == [
        ("confirmation", pending, "email"),
        ("confirmation", pending, "email"),
        ("webhook_disabled", hook, "email"),
        ("update", uuid.UUID(int=0x5002), "email"),
    ]
    confirmation = msgspec.json.decode(rows[0]["content"])
    assert confirmation["subject"] == "[Acme] Confirm your subscription"
    assert "Acme — Europe" in confirmation["text"]
    assert rows[0]["message_id"] != rows[1]["message_id"]  # one mail per request, each with its own id
    disabled = msgspec.json.decode(rows[2]["content"])
    assert disabled["subject"] == "[Acme] Your webhook was disabled" and disabled["reason"] == "410 Gone"
    assert all(r["id"] == intent_id(r["message_id"], r["subscriber_id"]) for r in rows)


async def test_a_rebuild_never_sends_an_old_update_again(pool: asyncpg.Pool, outbox: NotificationOutbox) -> None:
    store = PostgresEventStore(pool)
    log = Log(store)
    await page_with_components(log)
    subscribers = [await subscribe(log, n) for n in range(3)]
    incident = declare(1, "down")
    await log.save(incident)
    async with pool.acquire() as conn:
        await catch_up(conn, store, outbox)
        await conn.execute(f"UPDATE {INTENTS} SET state = 'delivered', attempts = 1")
        before = await conn.fetch(f"SELECT * FROM {INTENTS} ORDER BY id")

    await rebuild_live_many(pool, [outbox.name], [outbox])
    async with pool.acquire() as conn:
        assert await conn.fetch(f"SELECT * FROM {INTENTS} ORDER BY id") == before  # untouched, still delivered
        assert await conn.fetchval(f"SELECT count(*) FROM {SUBSCRIBERS}") == 3  # the state was refolded
    publish(incident, 2, "still down")
    await log.save(incident)
    async with pool.acquire() as conn:
        await catch_up(conn, store, outbox)
        assert await pairs(conn) == sorted((ulid_to_uuid(update(n)), s) for n in (1, 2) for s in subscribers)

    _, differences = await replay_check(pool, [outbox], "outbox_replay_check")
    assert differences == []
    async with pool.acquire() as conn:
        await conn.execute(
            f"DELETE FROM {INTENTS} WHERE subscriber_id = $1 AND position = (SELECT max(position) FROM {INTENTS})",
            subscribers[0],
        )
    _, differences = await replay_check(pool, [outbox], "outbox_replay_check")
    assert [(d.table, d.only_live, d.only_scratch) for d in differences] == [(INTENTS, 0, 1)]
    assert differences[0].scratch_rows == ((str(ulid_to_uuid(update(2))), str(subscribers[0])),)


class BatchRecordingOutbox(NotificationOutbox):
    """The outbox, noting how many events each runner transaction handed it."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        self.batches.append(len(events))
        await super().apply(conn, events)


async def test_the_runner_hands_the_outbox_small_transactions(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    log = Log(store)
    await page_with_components(log)
    for n in range(1, 60):
        await log.save(declare(n, f"incident {n}"))
    outbox = BatchRecordingOutbox()
    runner = ProjectionRunner(pool, store, [outbox], batch_size=500)
    await runner.start()
    try:
        head = await store.max_position()
        await wait_until(lambda: runner.statuses[outbox.name].position == head)
    finally:
        await runner.stop()
    assert sum(outbox.batches) == head and max(outbox.batches) == outbox.batch_size


async def test_page_settings_shape_who_is_told_and_what_they_read(
    pool: asyncpg.Pool, outbox: NotificationOutbox
) -> None:
    store = PostgresEventStore(pool)
    log = Log(store)
    await page_with_components(log)
    await log.save(PublicBaseUrl.first(url="https://status.example.com", at=at(0)))
    page = await load(store, StatusPage, PAGE)
    quiet = PageSettings(time_zone="Europe/Paris", automatic_maintenance_notifications="never")
    page.update(public_url=None, settings=quiet, at=at(0), by=OPERATOR)
    await log.save(page)
    await subscribe(log, 1)
    window = schedule(1, "moving storage", [B], start=60, end=120, automate=True)
    window.start_automatically(update_id=update(2), at=at(60))  # silenced by the page
    await log.save(window)
    page.update(settings=PageSettings(time_zone="Europe/Paris"), at=at(70), by=OPERATOR)
    await log.save(page)
    window.complete_automatically(update_id=update(3), at=at(120))  # inherits the window's flag again
    await log.save(window)
    async with pool.acquire() as conn:
        await catch_up(conn, store, outbox)
        rows = await conn.fetch(f"SELECT content FROM {MESSAGES} ORDER BY position")
    contents = [msgspec.json.decode(row["content"]) for row in rows]
    assert [c["update"]["message"] for c in contents] == [
        "moving storage",
        "This scheduled maintenance has been completed.",
    ]
    scheduled = contents[0]
    link = f"https://status.example.com/acme/maintenances/{ulid(window.id)}"  # the base URL and the slug
    assert scheduled["notice"]["url"] == link and scheduled["page"]["time_zone"] == "Europe/Paris"
    assert "Scheduled 2026-01-28 11:00 UTC (12:00 CET) to 2026-01-28 12:00 UTC (13:00 CET)" in scheduled["text"]
    assert f"Details: {link}" in scheduled["text"]


async def test_replay_check_refolds_only_the_updates_it_compares(
    pool: asyncpg.Pool, outbox: NotificationOutbox
) -> None:
    store = PostgresEventStore(pool)
    log = Log(store)
    await page_with_components(log)
    subscribers = [await subscribe(log, n) for n in range(2)]
    for n in range(1, REPLAY_CHECKED_UPDATES + 6):
        await log.save(declare(n, f"incident {n}"))
    async with pool.acquire() as conn:
        await catch_up(conn, store, outbox)
    _, differences = await replay_check(pool, [outbox], "outbox_replay_check")
    assert differences == []
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT m.update_id, i.subscriber_id FROM outbox_replay_check.{INTENTS} i"
            f" JOIN outbox_replay_check.{MESSAGES} m ON m.id = i.message_id"
        )
    newest = range(6, REPLAY_CHECKED_UPDATES + 6)
    assert sorted((r["update_id"], r["subscriber_id"]) for r in rows) == sorted(
        (ulid_to_uuid(update(n)), s) for n in newest for s in subscribers
    )
