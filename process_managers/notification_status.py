"""Where notification delivery stands, per channel, as the database has it (any process can ask: the
dispatchers may run elsewhere): the backlog, how much of it is retrying, how late the oldest due intent is,
whether the channel is paused and why, and the failed attempts of the last day. One report behind
`beacon notifications status`, `/readyz?detail=1` and the notification metrics (README "Operations")."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import msgspec

from infra.clock import format_timestamp
from infra.db import Fetcher

CHANNELS = ("email", "webhook")
FAILURE_WINDOW = timedelta(hours=24)


class ChannelStatus(msgspec.Struct, omit_defaults=True):
    channel: str
    backlog: int
    """Pending intents: due now, waiting for a retry, or reserved by a worker sending them."""
    retrying: int
    """Pending intents that failed at least once."""
    oldest_due_seconds: float
    """How long the oldest due intent has been due (0 when nothing is due)."""
    failures_24h: int
    """Failed attempts (`failed`, `forbidden_address`) in the last 24 hours."""
    paused: bool = False
    paused_until: str | None = None
    """When the paused channel is tried again; absent while it waits for configuration."""
    paused_reason: str | None = None


QUERY = """
WITH pending AS (
    SELECT channel, count(*) AS backlog, count(*) FILTER (WHERE attempts > 0) AS retrying,
           min(next_attempt_at) FILTER (WHERE next_attempt_at <= $1) AS oldest_due
    FROM beacon_notification_intents WHERE state = 'pending' GROUP BY channel
), failures AS (
    SELECT channel, count(*) AS failures FROM beacon_notification_attempts
    WHERE attempted_at > $2 AND outcome IN ('failed', 'forbidden_address') GROUP BY channel
)
SELECT c.channel, COALESCE(p.backlog, 0) AS backlog, COALESCE(p.retrying, 0) AS retrying, p.oldest_due,
       COALESCE(f.failures, 0) AS failures, COALESCE(ch.paused_until > $1, false) AS paused,
       NULLIF(ch.paused_until, 'infinity') AS paused_until, ch.reason
FROM unnest($3::text[]) AS c(channel)
LEFT JOIN pending AS p USING (channel)
LEFT JOIN failures AS f USING (channel)
LEFT JOIN beacon_notification_channels AS ch ON ch.channel = c.channel
ORDER BY c.channel
"""


async def delivery_status(db: Fetcher, now: datetime) -> list[ChannelStatus]:
    """Each channel's state; empty while the outbox's tables do not exist yet (no worker has started)."""
    if not await db.fetchval("SELECT to_regclass('beacon_notification_intents') IS NOT NULL"):
        return []
    rows = await db.fetch(QUERY, now, now - FAILURE_WINDOW, list(CHANNELS))
    report = []
    for row in rows:
        paused = row["paused"]
        until = row["paused_until"]
        report.append(
            ChannelStatus(
                channel=row["channel"],
                backlog=row["backlog"],
                retrying=row["retrying"],
                oldest_due_seconds=max(0.0, (now - row["oldest_due"]).total_seconds()) if row["oldest_due"] else 0.0,
                failures_24h=row["failures"],
                paused=paused,
                paused_until=format_timestamp(until) if paused and until is not None else None,
                paused_reason=row["reason"] if paused else None,
            )
        )
    return report


class DeliveryRow(msgspec.Struct):
    """One attempt to deliver a notification to a subscriber, as the deliveries list shows it."""

    id: UUID
    intent_id: UUID
    update_id: UUID | None
    notice_id: UUID | None
    attempt: int
    attempted_at: datetime
    outcome: str
    http_status: int | None
    smtp_reply: str | None
    next_attempt_at: datetime | None


async def deliveries(db: Fetcher, subscriber_id: UUID, *, limit: int, after: UUID | None) -> list[DeliveryRow] | None:
    """A subscriber's attempts, newest first (attempt ids are ULIDs of their time), after the cursor; None when
    the cursor is not one of them."""
    if not await db.fetchval("SELECT to_regclass('beacon_notification_intents') IS NOT NULL"):
        return None if after is not None else []
    if after is not None and not await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM beacon_notification_attempts WHERE id = $1 AND subscriber_id = $2)",
        after,
        subscriber_id,
    ):
        return None
    rows = await db.fetch(
        "SELECT a.id, a.intent_id, m.update_id, i.notice_id, a.attempt, a.attempted_at, a.outcome, a.http_status,"
        " a.smtp_reply, a.next_attempt_at"
        " FROM beacon_notification_attempts AS a"
        " JOIN beacon_notification_intents AS i ON i.id = a.intent_id"
        " JOIN beacon_notification_messages AS m ON m.id = i.message_id"
        " WHERE a.subscriber_id = $1 AND ($2::uuid IS NULL OR a.id < $2)"
        " ORDER BY a.id DESC LIMIT $3",
        subscriber_id,
        after,
        limit,
    )
    return [DeliveryRow(**dict(row)) for row in rows]
