"""The subscriber list: which subscribers a page has, in what state and scope, newest first.

It answers the admin API's list and show of subscribers and `beacon subscribers list`. It holds no contact:
addresses and URLs are read, when shown, from the key table outside the log (`infra/contacts.py`), so an
erased subscriber's row here stays (state `erased`) and shows nothing personal. Every column comes from an
event, so a rebuild is byte-identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from domain.subscriber import Subscriber
from infra.db import Fetcher
from infra.event_store import RecordedEvent
from infra.ids import is_ulid, ulid_to_uuid, uuid_to_ulid

SUBSCRIBERS = "subscriber_list"

SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS {SUBSCRIBERS} (
    id             text        PRIMARY KEY,
    status_page_id text        NOT NULL,
    channel        text        NOT NULL,
    sub_page_id    text,
    component_ids  text[]      NOT NULL,
    state          text        NOT NULL,
    reason         text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS {SUBSCRIBERS}_page_idx ON {SUBSCRIBERS} (status_page_id, id DESC);
"""

_STATE_AFTER = {
    Subscriber.Confirmed.TOPIC: "confirmed",
    Subscriber.Unsubscribed.TOPIC: "unsubscribed",
    Subscriber.Bounced.TOPIC: "bounced",
    Subscriber.Disabled.TOPIC: "disabled",
    Subscriber.Enabled.TOPIC: "active",
    Subscriber.Erased.TOPIC: "erased",
}


@dataclass(frozen=True)
class SubscriberRow:
    """A subscriber as the list holds it (`id` and `status_page_id` are wire ULIDs)."""

    id: str
    status_page_id: str
    channel: str
    sub_page_id: str | None
    component_ids: list[str]
    state: str
    reason: str | None
    created_at: datetime

    @property
    def stream_id(self) -> UUID:
        return ulid_to_uuid(self.id)

    @property
    def scope(self) -> str:
        if self.component_ids:
            return "components"
        return "sub_page" if self.sub_page_id else "page"


class SubscriberList:
    """The `subscriber_list` projection."""

    name: str = "subscriber_list"
    writes_wait = True  # the admin API shows a subscriber right after the write that made or changed it
    tables: tuple[str, ...] = (SUBSCRIBERS,)
    schema_sql: str = SCHEMA_SQL

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for record in events:
            if record.topic == Subscriber.Created.TOPIC:
                event: Any = record.decode()
                await conn.execute(
                    f"INSERT INTO {SUBSCRIBERS} (id, status_page_id, channel, sub_page_id, component_ids, state,"
                    " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                    uuid_to_ulid(record.stream_id),
                    event.status_page_id,
                    event.channel,
                    event.sub_page_id,
                    list(event.component_ids),
                    event.state,
                    event.timestamp,
                )
            elif record.topic in _STATE_AFTER:
                event = record.decode()
                await conn.execute(
                    f"UPDATE {SUBSCRIBERS} SET state = $2, reason = $3, updated_at = $4 WHERE id = $1",
                    uuid_to_ulid(record.stream_id),
                    _STATE_AFTER[record.topic],
                    getattr(event, "reason", None),
                    event.timestamp,
                )


_COLUMNS = "id, status_page_id, channel, sub_page_id, component_ids, state, reason, created_at"


def _row(row: Any) -> SubscriberRow:
    return SubscriberRow(
        id=row["id"],
        status_page_id=row["status_page_id"],
        channel=row["channel"],
        sub_page_id=row["sub_page_id"],
        component_ids=list(row["component_ids"]),
        state=row["state"],
        reason=row["reason"],
        created_at=row["created_at"],
    )


async def list_subscribers(
    db: Fetcher,
    status_page_id: str,
    *,
    limit: int,
    after: str | None = None,
    channel: str | None = None,
    state: str | None = None,
) -> list[SubscriberRow] | None:
    """Up to `limit` of a page's subscribers, newest first (ids are ULIDs, so id order is creation order),
    after the subscriber `after`; None when `after` names no subscriber of the page."""
    if after is not None:
        known = await db.fetchval(
            f"SELECT 1 FROM {SUBSCRIBERS} WHERE id = $1 AND status_page_id = $2", after, status_page_id
        )
        if known is None:
            return None
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM {SUBSCRIBERS} WHERE status_page_id = $1 AND ($2::text IS NULL OR id < $2)"
        " AND ($3::text IS NULL OR channel = $3) AND ($4::text IS NULL OR state = $4)"
        " ORDER BY id DESC LIMIT $5",
        status_page_id,
        after,
        channel,
        state,
        limit,
    )
    return [_row(row) for row in rows]


async def get_subscriber(db: Fetcher, subscriber_id: str) -> SubscriberRow | None:
    if not is_ulid(subscriber_id):
        return None
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM {SUBSCRIBERS} WHERE id = $1", subscriber_id)
    return _row(row) if row else None
