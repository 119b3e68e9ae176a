"""The notification outbox (docs/architecture.md#notification-outbox): who must be told about what, recorded
as intents in the transaction that advances this projection's checkpoint, so a crash or a restart can
neither lose nor double one.

Writes never wait for it (`writes_wait = False`: it runs in a runner pass of its own), so a fan-out to
100,000 subscribers never delays a command's answer. For each published update that notifies, it writes
one message row (`beacon_notification_messages`: the content, fixed as of that update) and, in one
`INSERT … SELECT`, one intent per subscriber in scope (`beacon_notification_intents`); nothing at all
while the page has no subscriber to tell, so folding a long log without subscribers costs little. The dispatcher
(process_managers/notification_dispatcher.py) claims and delivers the intents.

Scope and state are read at the update's log position, from this projection's own fold of the log (pages,
components, notices, subscribers), never from another read model that may be at another position.

The messages and intents are history, not a fold: they are never rebuilt from zero. A rebuild of this
projection refolds only its state tables and records intents only after the newest position the
dispatcher has already been handed (`reset_for_rebuild`), so no old update is ever sent again.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from domain.canonical_url import canonical_url
from domain.component import Component
from domain.incident import Incident
from domain.maintenance import Maintenance, MaintenanceStatus
from domain.public_base_url import PublicBaseUrlConfigured
from domain.status_page import MAINTENANCE_NOTIFICATIONS, StatusPage
from domain.structure import component_placements, parse_structure, sub_pages
from domain.subscriber import DELIVERABLE, Channel, Subscriber, SubscriberState
from infra.event_store import RecordedEvent
from infra.ids import is_ulid, ulid_to_uuid, uuid_to_ulid
from projections import notification_content as content
from projections import statuspage
from projections.rebuild import Difference, compare_tables

NAMESPACE = UUID("6f2b9a2e-4d0c-5b7e-9a51-1c0de0b7ac0e")
"""Namespace of the outbox's deterministic ids (messages and intents)."""

SUBSCRIBERS = "beacon_notify_subscribers"
PAGES = "beacon_notify_pages"
COMPONENTS = "beacon_notify_components"
NOTICES = "beacon_notify_notices"
SETTINGS = "beacon_notify_settings"
HORIZON = "beacon_notify_horizon"
MESSAGES = "beacon_notification_messages"
INTENTS = "beacon_notification_intents"

STATE_TABLES = (SUBSCRIBERS, PAGES, COMPONENTS, NOTICES, SETTINGS)
"""Folded from the log, refolded by a rebuild."""
HISTORY_TABLES = (MESSAGES, INTENTS, HORIZON)
"""What the outbox has handed the dispatcher: kept through every rebuild."""

NEVER = "never"
"""The page's `automatic_maintenance_notifications` that silences automatic maintenance transitions."""
assert NEVER in MAINTENANCE_NOTIFICATIONS
TOLD_STATES = sorted(state.value for state in DELIVERABLE)
"""The subscriber states that are told about updates (email confirmed, webhook active)."""

REPLAY_CHECKED_UPDATES = 20
"""How many of the newest notifying updates `replay-check` compares (update, subscriber) pairs of."""

SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS {SUBSCRIBERS} (
    subscriber_id  uuid    PRIMARY KEY,
    status_page_id uuid    NOT NULL,
    channel        text    NOT NULL,
    sub_page_id    text,
    component_ids  uuid[]  NOT NULL,
    state          text    NOT NULL,
    contact        text
);
CREATE INDEX IF NOT EXISTS {SUBSCRIBERS}_page ON {SUBSCRIBERS} (status_page_id, state);
CREATE TABLE IF NOT EXISTS {PAGES} (
    id   uuid PRIMARY KEY,
    page text NOT NULL
);
CREATE TABLE IF NOT EXISTS {COMPONENTS} (
    id   text PRIMARY KEY,
    name text NOT NULL
);
CREATE TABLE IF NOT EXISTS {NOTICES} (
    id             uuid    PRIMARY KEY,
    status_page_id uuid    NOT NULL,
    open           boolean NOT NULL,
    notice         text    NOT NULL
);
CREATE INDEX IF NOT EXISTS {NOTICES}_open ON {NOTICES} (status_page_id) WHERE open;
CREATE TABLE IF NOT EXISTS {SETTINGS} (
    name  text PRIMARY KEY,
    value text
);
CREATE TABLE IF NOT EXISTS {HORIZON} (
    name     text   PRIMARY KEY,
    position bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {MESSAGES} (
    id             uuid        PRIMARY KEY,
    kind           text        NOT NULL,
    status_page_id uuid        NOT NULL,
    notice_id      uuid,
    update_id      uuid,
    position       bigint      NOT NULL,
    content        jsonb       NOT NULL,
    created_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS {MESSAGES}_position ON {MESSAGES} (position);
CREATE TABLE IF NOT EXISTS {INTENTS} (
    id              uuid        PRIMARY KEY,
    message_id      uuid        NOT NULL,
    subscriber_id   uuid        NOT NULL,
    channel         text        NOT NULL,
    notice_id       uuid,
    position        bigint      NOT NULL,
    state           text        NOT NULL DEFAULT 'pending',
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    updated_at      timestamptz
);
-- The dispatcher's claim reads one channel's due intents in this order and stops at its batch: an index scan
-- of the pending ones, not a sort of every intent ever recorded. It replaced `_due` (state, next_attempt_at).
CREATE INDEX IF NOT EXISTS {INTENTS}_claim ON {INTENTS} (channel, next_attempt_at, position) WHERE state = 'pending';
DROP INDEX IF EXISTS {INTENTS}_due;
CREATE INDEX IF NOT EXISTS {INTENTS}_order ON {INTENTS} (subscriber_id, notice_id, position);
"""


# Deterministic ids: the same update and subscriber always make the same intent id (the webhook-id and
# Message-ID), on any replay. Intent ids are UUIDv3 (MD5), which Postgres computes without an extension,
# so the fan-out makes them in SQL; `INTENT_ID_SQL` and `intent_id` must stay the same function.


def message_id(kind: str, *parts: object) -> UUID:
    return uuid.uuid5(NAMESPACE, ":".join([kind, *map(str, parts)]))


def intent_id(message: UUID, subscriber: UUID) -> UUID:
    return uuid.uuid3(NAMESPACE, f"{message}:{subscriber}")


def _intent_id_sql(message: str, subscriber: str) -> str:
    digest = (
        f"md5(decode('{NAMESPACE.hex}', 'hex') || convert_to({message}::text || ':' || {subscriber}::text, 'UTF8'))"
    )
    # Version 3 in the 13th hex digit, the RFC 4122 variant in the 17th, as uuid.uuid3 sets them.
    return (
        f"(SELECT overlay(overlay(h placing '3' from 13) placing"
        f" to_hex((('x' || substr(h, 17, 1))::bit(4)::int & 3) | 8) from 17)::uuid FROM (SELECT {digest} AS h) AS d)"
    )


FAN_OUT_SQL = f"""
WITH message AS (
    INSERT INTO {MESSAGES} (id, kind, status_page_id, notice_id, update_id, position, content, created_at)
    VALUES ($1, 'update', $2, $3, $4, $5, $6::jsonb, $7)
    ON CONFLICT (id) DO NOTHING
)
INSERT INTO {INTENTS} (id, message_id, subscriber_id, channel, notice_id, position, next_attempt_at, updated_at)
SELECT {_intent_id_sql("$1", "s.subscriber_id")}, $1, s.subscriber_id, s.channel, $3, $5, $7, $7
FROM {SUBSCRIBERS} AS s
WHERE s.status_page_id = $2 AND s.state = ANY($10::text[])
  AND CASE
      WHEN cardinality(s.component_ids) > 0 THEN cardinality($8::uuid[]) = 0 OR s.component_ids && $8::uuid[]
      WHEN s.sub_page_id IS NOT NULL THEN s.sub_page_id = ANY($9::text[])
      ELSE true
  END
ON CONFLICT (id) DO NOTHING
"""
"""One notifying update: its message and every intent, in one statement (a 100,000-subscriber page is
one round trip). Scope (docs/architecture.md#notification-outbox): chosen components are told about notices
that named one of them so far and notices naming none; a sub-page about notices touching one of its
visible components; the page about everything on it."""


# The folded state, stored as msgspec JSON (text: exact, and decoded straight into these structs).


class PageState(msgspec.Struct, kw_only=True):
    name: str
    slug: str
    public_url: str | None = None
    custom_domain: str | None = None
    time_zone: str = "UTC"
    automatic_maintenance_notifications: str = "inherit"
    items: list[dict[str, Any]] = msgspec.field(default_factory=list)


class UpdateState(msgspec.Struct):
    id: str
    published_at: datetime
    message: str
    status: str
    component_statuses: dict[str, str]
    notify_subscribers: bool = False


class NoticeState(msgspec.Struct, kw_only=True):
    kind: str
    status_page_id: str
    name: str
    created_at: datetime
    notify: bool = False
    """A window's own flag, which its automatic transitions follow."""
    start_at: datetime | None = None
    end_at: datetime | None = None
    deleted: bool = False
    edited_at: datetime | None = None
    worst_reached: str | None = None
    """An incident's worst component status while it was open (its Statuspage impact)."""
    updates: list[UpdateState] = msgspec.field(default_factory=list)
    component_statuses: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        closed = "resolved" if self.kind == "incident" else MaintenanceStatus.COMPLETE.value
        return not self.deleted and bool(self.updates) and self.updates[-1].status != closed


_ENCODER = msgspec.json.Encoder()
_PAGE_DECODER = msgspec.json.Decoder(PageState)
_NOTICE_DECODER = msgspec.json.Decoder(NoticeState)


def _uuid(value: str | UUID) -> UUID:
    """An id as events carry it (a wire ULID, or a UUID) as a UUID."""
    if isinstance(value, UUID):
        return value
    return ulid_to_uuid(value) if is_ulid(value) else UUID(value)


def _statuses(data: Sequence[dict[str, str]]) -> dict[str, str]:
    return {item["component_id"]: item["component_status"] for item in data}


class NotificationOutbox:
    """The `notification_outbox` projection."""

    name = "notification_outbox"
    writes_wait = False  # a fan-out must never hold up a command's answer
    rebuildable = False
    """Never rebuilt from zero (`reset_for_rebuild`); blue/green upgrades must carry its tables over."""
    min_pass_interval = 0.05
    """A pass per 50 ms under a stream of commands, not one per commit (projections/runner.py, `Projection`):
    what it adds to the time until a subscriber is told is small beside a mail relay's."""
    batch_size = 20
    """Events per runner transaction at most (the runner's default is 500): each notifying update on a large
    page writes a row per subscriber, and the dispatcher sees a batch's intents only when it commits."""
    tables: tuple[str, ...] = STATE_TABLES + HISTORY_TABLES
    schema_sql = SCHEMA_SQL

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        batch = _Batch(conn, await _horizon(conn))
        await batch.prefetch(events)
        for record in events:
            await batch.fold(record)
        await batch.flush()

    async def reset_for_rebuild(self, conn: asyncpg.Connection) -> None:
        """What a rebuild does instead of emptying the tables (inside its transaction, checkpoint at 0):
        empty the state tables only, and record intents again only after the newest position already
        handed to the dispatcher."""
        await conn.execute(f"TRUNCATE {', '.join(STATE_TABLES)}")
        await conn.execute(
            f"INSERT INTO {HORIZON} (name, position)"
            f" SELECT 'emit_after', greatest(coalesce(max(position), 0), (SELECT coalesce(max(position), 0)"
            f" FROM {HORIZON} WHERE name = 'emit_after')) FROM {MESSAGES}"
            " ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position"
        )

    async def replay_differences(
        self, conn: asyncpg.Connection, *, live: str, scratch: str, shown: int
    ) -> list[Difference]:
        """`replay-check`: the state tables row for row; of the history, the set of (update, subscriber)
        pairs of the newest notifying updates (older ones may predate a rebuild's horizon)."""
        differences = []
        for table in STATE_TABLES:
            difference = await compare_tables(conn, self.name, table, live, scratch, shown)
            if difference is not None:
                differences.append(difference)
        pairs = {schema: await _recent_pairs(conn, schema) for schema in (live, scratch)}
        only_live = sorted(pairs[live] - pairs[scratch])
        only_scratch = sorted(pairs[scratch] - pairs[live])
        if only_live or only_scratch:
            differences.append(
                Difference(
                    self.name,
                    INTENTS,
                    len(only_live),
                    len(only_scratch),
                    tuple(only_live[:shown]),
                    tuple(only_scratch[:shown]),
                    ("update_id", "subscriber_id"),
                    note=f"(update, subscriber) pairs of the {REPLAY_CHECKED_UPDATES} newest notifying updates",
                )
            )
        return differences


async def _recent_pairs(conn: asyncpg.Connection, schema: str) -> set[tuple[str | None, ...]]:
    quoted = '"' + schema.replace('"', '""') + '"'
    rows = await conn.fetch(
        f"""SELECT m.update_id::text AS update_id, i.subscriber_id::text AS subscriber_id
            FROM (SELECT id, update_id FROM {quoted}.{MESSAGES} WHERE kind = 'update'
                  ORDER BY position DESC LIMIT $1) AS m
            JOIN {quoted}.{INTENTS} AS i ON i.message_id = m.id""",
        REPLAY_CHECKED_UPDATES,
    )
    return {(row["update_id"], row["subscriber_id"]) for row in rows}


async def _horizon(conn: asyncpg.Connection) -> int:
    """The position up to which events are folded without writing messages: the dispatcher's high-water
    position after a rebuild (`reset_for_rebuild`), 0 otherwise.

    A fold into a scratch schema (`replay-check`, bench/replay.py) writes only the newest notifying updates
    the live tables hold, the ones `replay_differences` compares: replaying every update of a page with
    100,000 subscribers would write 100,000 rows per update for nothing."""
    row = await conn.fetchrow(
        f"SELECT (SELECT position FROM {HORIZON} WHERE name = 'emit_after') AS position,"
        f" (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        f"  WHERE c.oid = to_regclass('{HORIZON}')) AS schema"
    )
    position: int = row["position"] or 0
    if row["schema"] == "public" or not await conn.fetchval(f"SELECT to_regclass('public.{MESSAGES}') IS NOT NULL"):
        return position
    oldest: int | None = await conn.fetchval(
        f"SELECT min(position) FROM (SELECT position FROM public.{MESSAGES} WHERE kind = 'update'"
        " ORDER BY position DESC LIMIT $1) AS newest",
        REPLAY_CHECKED_UPDATES,
    )
    return max(position, (oldest or 1) - 1)


class _Batch:
    """Folds one batch of events on the runner's connection. Holds nothing across batches.

    Pages and notices are read once per batch (the batch's own streams in one query up front) and written
    back once, at its end (`flush`); subscribers, component names and the base URL are written as their
    events come, since the fan-out statement reads them in SQL."""

    def __init__(self, conn: asyncpg.Connection, emit_after: int) -> None:
        self.conn = conn
        self.emit_after = emit_after
        self.pages: dict[UUID, PageState | None] = {}
        self.notices: dict[UUID, NoticeState | None] = {}
        self.changed_pages: set[UUID] = set()
        self.changed_notices: set[UUID] = set()
        self.open_in_table: dict[UUID, dict[UUID, NoticeState]] = {}
        """Per page, its open notices as the table held them at the start of the batch (read on demand)."""
        self.told: dict[UUID, bool] = {}
        """Per page, whether any subscriber of it is told about updates (cleared by subscriber events)."""

    async def prefetch(self, events: Sequence[RecordedEvent]) -> None:
        notices = {r.stream_id for r in events if r.stream_type in _NOTICE_STREAMS}
        pages = {r.stream_id for r in events if r.stream_type == StatusPage.STREAM_TYPE}
        if notices:
            rows = await self.conn.fetch(f"SELECT id, notice FROM {NOTICES} WHERE id = ANY($1::uuid[])", notices)
            self.notices.update(dict.fromkeys(notices))
            self.notices.update({row["id"]: _NOTICE_DECODER.decode(row["notice"]) for row in rows})
        if pages:
            rows = await self.conn.fetch(f"SELECT id, page FROM {PAGES} WHERE id = ANY($1::uuid[])", pages)
            self.pages.update(dict.fromkeys(pages))
            self.pages.update({row["id"]: _PAGE_DECODER.decode(row["page"]) for row in rows})

    async def flush(self) -> None:
        """Write back the pages and notices the batch changed, a statement per table."""
        pages = [(i, page) for i in sorted(self.changed_pages) if (page := self.pages[i]) is not None]
        if pages:
            await self.conn.execute(
                f"INSERT INTO {PAGES} (id, page) SELECT * FROM unnest($1::uuid[], $2::text[])"
                " ON CONFLICT (id) DO UPDATE SET page = EXCLUDED.page",
                [i for i, _ in pages],
                [_ENCODER.encode(page).decode() for _, page in pages],
            )
        notices = [(i, notice) for i in sorted(self.changed_notices) if (notice := self.notices[i]) is not None]
        if notices:
            await self.conn.execute(
                f"INSERT INTO {NOTICES} (id, status_page_id, open, notice)"
                " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::boolean[], $4::text[])"
                " ON CONFLICT (id) DO UPDATE SET open = EXCLUDED.open, notice = EXCLUDED.notice",
                [i for i, _ in notices],
                [_uuid(notice.status_page_id) for _, notice in notices],
                [notice.is_open for _, notice in notices],
                [_ENCODER.encode(notice).decode() for _, notice in notices],
            )

    async def fold(self, record: RecordedEvent) -> None:
        handler = _HANDLERS.get(record.topic)
        if handler is not None:
            await handler(self, record, record.decode())

    def emits(self, record: RecordedEvent) -> bool:
        return record.position > self.emit_after

    # Pages, components and the base URL

    async def page(self, page_id: UUID) -> PageState | None:
        if page_id not in self.pages:
            text = await self.conn.fetchval(f"SELECT page FROM {PAGES} WHERE id = $1", page_id)
            self.pages[page_id] = None if text is None else _PAGE_DECODER.decode(text)
        return self.pages[page_id]

    async def save_page(self, page_id: UUID, page: PageState) -> None:
        self.pages[page_id] = page
        self.changed_pages.add(page_id)

    async def page_created(self, record: RecordedEvent, event: StatusPage.Created) -> None:
        await self.save_page(record.stream_id, PageState(name=event.name, slug=event.slug, **_settings(event)))

    async def page_updated(self, record: RecordedEvent, event: StatusPage.Updated) -> None:
        page = await self.page(record.stream_id)
        if page is not None:
            page.name = event.name
            for name, value in _settings(event).items():
                setattr(page, name, value)
            await self.save_page(record.stream_id, page)

    async def structure_replaced(self, record: RecordedEvent, event: Any) -> None:
        page = await self.page(record.stream_id)
        if page is not None:
            page.items = event.items
            await self.save_page(record.stream_id, page)

    async def component_named(self, record: RecordedEvent, event: Any) -> None:
        await self.conn.execute(
            f"INSERT INTO {COMPONENTS} (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
            uuid_to_ulid(record.stream_id),
            event.name,
        )

    async def base_url_configured(self, record: RecordedEvent, event: PublicBaseUrlConfigured) -> None:
        await self.conn.execute(
            f"INSERT INTO {SETTINGS} (name, value) VALUES ('base_url', $1)"
            " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            event.url,
        )

    async def page_facts(self, page_id: UUID, page: PageState) -> content.PageFacts:
        """The page as a message shows it, its status as of this log position included."""
        base_url = await self.conn.fetchval(f"SELECT value FROM {SETTINGS} WHERE name = 'base_url'")
        indicator, description = page_status(page.items, await self.open_notices(page_id))
        return content.PageFacts(
            id=uuid_to_ulid(page_id),
            name=page.name,
            slug=page.slug,
            url=canonical_url(
                public_url=page.public_url, custom_domain=page.custom_domain, base_url=base_url, slug=page.slug
            ),
            time_zone=page.time_zone,
            status_indicator=indicator,
            status_description=description,
        )

    # Notices

    async def notice(self, notice_id: UUID) -> NoticeState | None:
        if notice_id not in self.notices:
            text = await self.conn.fetchval(f"SELECT notice FROM {NOTICES} WHERE id = $1", notice_id)
            self.notices[notice_id] = None if text is None else _NOTICE_DECODER.decode(text)
        return self.notices[notice_id]

    async def save_notice(self, notice_id: UUID, notice: NoticeState) -> None:
        self.notices[notice_id] = notice
        self.changed_notices.add(notice_id)

    async def open_notices(self, page_id: UUID) -> list[NoticeState]:
        """The page's open notices as of this event: the table's, as this batch has changed them."""
        if page_id not in self.open_in_table:
            rows = await self.conn.fetch(
                f"SELECT id, notice FROM {NOTICES} WHERE status_page_id = $1 AND open", page_id
            )
            self.open_in_table[page_id] = {row["id"]: _NOTICE_DECODER.decode(row["notice"]) for row in rows}
        current = dict(self.open_in_table[page_id])
        for notice_id in self.changed_notices:
            notice = self.notices[notice_id]
            if notice is not None and _uuid(notice.status_page_id) == page_id:
                if notice.is_open:
                    current[notice_id] = notice
                else:
                    current.pop(notice_id, None)
        return [current[notice_id] for notice_id in sorted(current)]

    async def anyone_told(self, page_id: UUID) -> bool:
        """Whether the page has a subscriber that updates go to: without one, an update writes nothing."""
        if page_id not in self.told:
            self.told[page_id] = await self.conn.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {SUBSCRIBERS} WHERE status_page_id = $1 AND state = ANY($2::text[]))",
                page_id,
                list(TOLD_STATES),
            )
        return self.told[page_id]

    async def incident_declared(self, record: RecordedEvent, event: Incident.Declared) -> None:
        notice = NoticeState(
            kind="incident", status_page_id=event.status_page_id, name=event.name, created_at=event.timestamp
        )
        update = UpdateState(
            event.update_id, event.timestamp, event.message, event.incident_status, _statuses(event.component_statuses)
        )
        await self._published(record, notice, update, notify=event.notify_subscribers)

    async def retrospective_recorded(self, record: RecordedEvent, event: Incident.RetrospectiveRecorded) -> None:
        notice = NoticeState(
            kind="incident", status_page_id=event.status_page_id, name=event.name, created_at=event.timestamp
        )
        for data in event.updates:
            _add_update(
                notice,
                UpdateState(
                    data["id"],
                    data["published_at"],
                    data["message"],
                    data["status"],
                    _statuses(data["component_statuses"]),
                ),
            )
        await self.save_notice(record.stream_id, notice)  # never told: it happened in the past

    async def maintenance_scheduled(self, record: RecordedEvent, event: Maintenance.Scheduled) -> None:
        notice = NoticeState(
            kind="maintenance",
            status_page_id=event.status_page_id,
            name=event.name,
            created_at=event.timestamp,
            notify=event.notify_subscribers,
            start_at=event.start_at,
            end_at=event.end_at,
        )
        statuses = _statuses(event.component_statuses)
        if event.start_update_id is not None:  # a window recorded after it ended, at its own times
            under = dict.fromkeys(statuses, "under_maintenance")
            _add_update(
                notice, UpdateState(event.start_update_id, event.start_at, "", "maintenance_in_progress", under)
            )
        update = UpdateState(event.update_id, event.timestamp, event.message, event.maintenance_status, statuses)
        # A window created as complete (and so every past window) tells no one.
        notify = event.notify_subscribers and event.maintenance_status != MaintenanceStatus.COMPLETE
        await self._published(record, notice, update, notify=notify)

    async def update_published(self, record: RecordedEvent, event: Any) -> None:
        notice = await self.notice(record.stream_id)
        if notice is None:
            return
        status = event.incident_status if isinstance(event, Incident.UpdatePublished) else event.maintenance_status
        update = UpdateState(
            event.update_id, event.timestamp, event.message, status, _statuses(event.component_statuses)
        )
        notify = event.notify_subscribers
        if isinstance(event, Maintenance.Started | Maintenance.Completed):
            page = await self.page(_uuid(notice.status_page_id))
            if page is not None and page.automatic_maintenance_notifications == NEVER:
                notify = False
        await self._published(record, notice, update, notify=notify)

    async def renamed(self, record: RecordedEvent, event: Incident.Renamed | Maintenance.Edited) -> None:
        notice = await self.notice(record.stream_id)
        if notice is None:
            return
        notice.name = event.name
        notice.edited_at = event.timestamp
        if isinstance(event, Maintenance.Edited):
            notice.start_at = event.start_at
            notice.end_at = event.end_at
        await self.save_notice(record.stream_id, notice)

    async def deleted(self, record: RecordedEvent, event: Maintenance.Deleted) -> None:
        notice = await self.notice(record.stream_id)
        if notice is not None:
            notice.deleted = True
            await self.save_notice(record.stream_id, notice)

    async def _published(
        self, record: RecordedEvent, notice: NoticeState, update: UpdateState, *, notify: bool
    ) -> None:
        update.notify_subscribers = notify
        _add_update(notice, update)
        await self.save_notice(record.stream_id, notice)
        if notify and self.emits(record):
            await self._fan_out(record, notice)

    async def _fan_out(self, record: RecordedEvent, notice: NoticeState) -> None:
        page_id = _uuid(notice.status_page_id)
        page = await self.page(page_id)
        if page is None or not await self.anyone_told(page_id):
            return
        named = list(notice.component_statuses)
        names: dict[str, str] = {
            row["id"]: row["name"]
            for row in await self.conn.fetch(f"SELECT id, name FROM {COMPONENTS} WHERE id = ANY($1::text[])", named)
        }
        facts = content.NoticeFacts(
            id=uuid_to_ulid(record.stream_id),
            kind=notice.kind,
            name=notice.name,
            created_at=notice.created_at,
            updates=[
                content.UpdateFacts(
                    u.id, u.published_at, u.message, u.status, u.component_statuses, u.notify_subscribers
                )
                for u in notice.updates
            ],
            component_statuses=notice.component_statuses,
            start_at=notice.start_at,
            end_at=notice.end_at,
            edited_at=notice.edited_at,
            component_names=names,
        )
        body = content.update_content(await self.page_facts(page_id, page), facts)
        update_id = notice.updates[-1].id
        message = message_id("update", update_id)
        await self.conn.execute(
            FAN_OUT_SQL,
            message,
            page_id,
            record.stream_id,
            _uuid(update_id),
            record.position,
            _ENCODER.encode(body).decode(),
            record.recorded_at,
            [_uuid(cid) for cid in named],
            touched_sub_pages(page.items, named),
            list(TOLD_STATES),
        )

    # Subscribers

    async def subscriber_created(self, record: RecordedEvent, event: Subscriber.Created) -> None:
        self.told.clear()
        await self.conn.execute(
            f"INSERT INTO {SUBSCRIBERS} (subscriber_id, status_page_id, channel, sub_page_id, component_ids,"
            " state, contact) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (subscriber_id) DO NOTHING",
            record.stream_id,
            _uuid(event.status_page_id),
            event.channel,
            event.sub_page_id,
            [_uuid(cid) for cid in event.component_ids],
            event.state,
            event.contact,
        )
        if event.state == SubscriberState.PENDING:
            await self._confirmation(record)

    async def confirmation_requested(self, record: RecordedEvent, event: Subscriber.ConfirmationRequested) -> None:
        await self._confirmation(record)

    async def subscriber_moved(self, record: RecordedEvent, event: Any) -> None:
        """A change of state; an erasure also forgets the contact's ciphertext, a rotation replaces it."""
        self.told.clear()
        await self.conn.execute(
            f"UPDATE {SUBSCRIBERS} SET state = coalesce($2, state),"
            " contact = CASE WHEN $3 THEN $4 ELSE contact END WHERE subscriber_id = $1",
            record.stream_id,
            _STATE_AFTER.get(type(event)),
            isinstance(event, Subscriber.Erased | Subscriber.SecretRotated),
            event.contact if isinstance(event, Subscriber.SecretRotated) else None,
        )
        if isinstance(event, Subscriber.Disabled):
            await self._webhook_disabled(record, event.reason)

    async def _subscriber_page(self, subscriber: UUID) -> tuple[asyncpg.Record, PageState] | None:
        row = await self.conn.fetchrow(
            f"SELECT status_page_id, channel, sub_page_id FROM {SUBSCRIBERS} WHERE subscriber_id = $1", subscriber
        )
        if row is None:
            return None
        page = await self.page(row["status_page_id"])
        return None if page is None else (row, page)

    async def _confirmation(self, record: RecordedEvent) -> None:
        found = await self._subscriber_page(record.stream_id)
        if found is None or not self.emits(record):
            return
        row, page = found
        sub_page = next(
            (item for item in sub_pages(parse_structure(page.items)) if item.id == row["sub_page_id"]), None
        )
        facts = await self.page_facts(row["status_page_id"], page)
        body = content.confirmation_content(facts, sub_page_name=sub_page.name if sub_page else None)
        await self._single(record, "confirmation", row["status_page_id"], "email", body)

    async def _webhook_disabled(self, record: RecordedEvent, reason: str) -> None:
        found = await self._subscriber_page(record.stream_id)
        if found is None or found[0]["channel"] != Channel.WEBHOOK or not self.emits(record):
            return
        row, page = found
        body = content.webhook_disabled_content(await self.page_facts(row["status_page_id"], page), reason=reason)
        # To the webhook's contact address: the dispatcher closes it as cancelled when the contact has none.
        await self._single(record, "webhook_disabled", row["status_page_id"], "email", body)

    async def _single(
        self, record: RecordedEvent, kind: str, page_id: UUID, channel: str, body: dict[str, Any]
    ) -> None:
        """One message and its one intent, to the event's own subscriber, whatever its state."""
        message = message_id(kind, record.stream_id, record.position)
        await self.conn.execute(
            f"INSERT INTO {MESSAGES} (id, kind, status_page_id, position, content, created_at)"
            " VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT (id) DO NOTHING",
            message,
            kind,
            page_id,
            record.position,
            _ENCODER.encode(body).decode(),
            record.recorded_at,
        )
        await self.conn.execute(
            f"INSERT INTO {INTENTS} (id, message_id, subscriber_id, channel, position, next_attempt_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING",
            intent_id(message, record.stream_id),
            message,
            record.stream_id,
            channel,
            record.position,
            record.recorded_at,
        )


_STATE_AFTER: dict[type[Any], str] = {
    Subscriber.Confirmed: SubscriberState.CONFIRMED.value,
    Subscriber.Unsubscribed: SubscriberState.UNSUBSCRIBED.value,
    Subscriber.Bounced: SubscriberState.BOUNCED.value,
    Subscriber.Disabled: SubscriberState.DISABLED.value,
    Subscriber.Enabled: SubscriberState.ACTIVE.value,
    Subscriber.Erased: SubscriberState.ERASED.value,
}


def _settings(event: StatusPage.Created | StatusPage.Updated) -> dict[str, Any]:
    """The page settings a message depends on (events older than a setting carry its default, upcast)."""
    return {
        "public_url": event.public_url,
        "custom_domain": event.custom_domain,
        "time_zone": event.time_zone,
        "automatic_maintenance_notifications": event.automatic_maintenance_notifications,
    }


def _add_update(notice: NoticeState, update: UpdateState) -> None:
    notice.updates.append(update)
    notice.component_statuses.update(update.component_statuses)
    if notice.kind == "incident" and update.status != "resolved":
        reached = statuspage.worst_status([notice.worst_reached or "operational", *update.component_statuses.values()])
        notice.worst_reached = None if reached == "operational" else reached


def page_status(items: list[dict[str, Any]], open_notices: Sequence[NoticeState]) -> tuple[str, str]:
    """The page's Statuspage indicator and description: its visible components' worst status in any open
    notice, and every open incident's impact (projections/statuspage.py's rule)."""
    worst: dict[str, str] = {}
    impacts = []
    for notice in open_notices:
        for component_id, status in notice.component_statuses.items():
            worst[component_id] = statuspage.worst_status([worst.get(component_id, "operational"), status])
        if notice.kind == "incident":
            impacts.append(statuspage.incident_impact(notice.worst_reached))
    visible = [cid for cid, placement in component_placements(parse_structure(items)).items() if not placement.hidden]
    return statuspage.status_indicator([worst.get(cid, "operational") for cid in visible], impacts)


def touched_sub_pages(items: list[dict[str, Any]], named: Sequence[str]) -> list[str]:
    """The sub-pages on which one of the named components is visible."""
    placements = component_placements(parse_structure(items))
    touched: dict[str, None] = {}
    for component_id in named:
        placement = placements.get(component_id)
        if placement is not None and not placement.hidden:
            touched.update(dict.fromkeys(placement.sub_page_ids))
    return list(touched)


Handler = Callable[[_Batch, RecordedEvent, Any], Awaitable[None]]

_NOTICE_STREAMS = frozenset({Incident.STREAM_TYPE, Maintenance.STREAM_TYPE})

_HANDLERS: dict[str, Handler] = {
    StatusPage.Created.TOPIC: _Batch.page_created,
    StatusPage.Updated.TOPIC: _Batch.page_updated,
    StatusPage.StructureReplaced.TOPIC: _Batch.structure_replaced,
    Component.Created.TOPIC: _Batch.component_named,
    Component.Updated.TOPIC: _Batch.component_named,
    PublicBaseUrlConfigured.TOPIC: _Batch.base_url_configured,
    Incident.Declared.TOPIC: _Batch.incident_declared,
    Incident.RetrospectiveRecorded.TOPIC: _Batch.retrospective_recorded,
    Incident.UpdatePublished.TOPIC: _Batch.update_published,
    Incident.Renamed.TOPIC: _Batch.renamed,
    Maintenance.Scheduled.TOPIC: _Batch.maintenance_scheduled,
    Maintenance.UpdatePublished.TOPIC: _Batch.update_published,
    Maintenance.Started.TOPIC: _Batch.update_published,
    Maintenance.Completed.TOPIC: _Batch.update_published,
    Maintenance.Edited.TOPIC: _Batch.renamed,
    Maintenance.Deleted.TOPIC: _Batch.deleted,
    Subscriber.Created.TOPIC: _Batch.subscriber_created,
    Subscriber.ConfirmationRequested.TOPIC: _Batch.confirmation_requested,
    **{
        cls.TOPIC: _Batch.subscriber_moved
        for cls in (
            Subscriber.Confirmed,
            Subscriber.Unsubscribed,
            Subscriber.Bounced,
            Subscriber.Disabled,
            Subscriber.Enabled,
            Subscriber.Erased,
            Subscriber.SecretRotated,
        )
    },
}
