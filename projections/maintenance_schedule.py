"""The maintenance schedule: which windows automation still has to move, and from when
(docs/architecture.md#7-time-and-automation).

It answers one question for the scheduler — "which windows are due now?" — so the scheduler never
scans the log. A window has a row only while automation has a step left (scheduled → in progress at
`start_at`, in progress → complete at `end_at`); a manual status change, completion or deletion
removes it for good, since automation never turns back on. The row is a hint, not the truth: the
scheduler re-decides on the aggregate, so a stale row costs one no-op load, never a wrong event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from domain.maintenance import Maintenance, MaintenanceStatus
from infra.event_store import RecordedEvent

TABLE = "maintenance_schedule"
CHANNEL = "beacon_maintenance_schedule"
"""Notified at the commit of a batch that changed the schedule: the scheduler wakes on it, not on every
batch of the shared pass, which under write load commits a hundred times a second."""

SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id          uuid        PRIMARY KEY,
    status      text        NOT NULL,
    start_at    timestamptz NOT NULL,
    end_at      timestamptz NOT NULL,
    due_at      timestamptz NOT NULL,
    position    bigint      NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_due_at ON {TABLE} (due_at);
"""


@dataclass(frozen=True)
class ScheduleRow:
    """A window automation still has to move: its current status and window."""

    id: UUID
    status: MaintenanceStatus
    start_at: datetime
    end_at: datetime

    @property
    def due_at(self) -> datetime:
        return self.start_at if self.status is MaintenanceStatus.SCHEDULED else self.end_at


def _pending(row: ScheduleRow, *, automate: bool) -> ScheduleRow | None:
    """The row if automation still has a step for it, else None (the row goes)."""
    if not automate or row.status is MaintenanceStatus.COMPLETE:
        return None
    return row


def evolve(row: ScheduleRow | None, event: Any, stream_id: UUID) -> ScheduleRow | None:
    """The schedule row after one Maintenance event (None: nothing left for automation). Pure, so the
    fold is the same live and in a rebuild. A window without a row stays without one: automation that
    was turned off, finished or deleted never comes back."""
    if isinstance(event, Maintenance.Scheduled):
        created = ScheduleRow(stream_id, MaintenanceStatus(event.maintenance_status), event.start_at, event.end_at)
        return _pending(created, automate=event.automate_maintenance_status)
    if row is None:
        return None
    if isinstance(event, Maintenance.UpdatePublished):
        updated = replace(row, status=MaintenanceStatus(event.maintenance_status))
        return _pending(updated, automate=event.automate_maintenance_status)
    if isinstance(event, Maintenance.Started | Maintenance.Completed):
        return _pending(replace(row, status=MaintenanceStatus(event.maintenance_status)), automate=True)
    if isinstance(event, Maintenance.Edited):
        return replace(row, start_at=event.start_at, end_at=event.end_at)
    if isinstance(event, Maintenance.Deleted):
        return None
    return row


_TOPIC_PREFIX = Maintenance.TOPIC + "."


class MaintenanceSchedule:
    """The `maintenance_schedule` projection."""

    name = "maintenance_schedule"
    version = 1  # bump when what it stores changes: the new version is built beside the old (projections/versions.py)
    writes_wait = True  # a window created already due starts as soon as the write has answered
    tables: tuple[str, ...] = (TABLE,)
    schema_sql = SCHEMA_SQL

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        records = [record for record in events if record.topic.startswith(_TOPIC_PREFIX)]
        if not records:
            return  # other aggregates' events only advance the checkpoint
        # Fold the batch in memory from the stored rows, then write each row that changed once, with the
        # position of the last event that changed it: the same rows as applying event by event.
        rows = await _rows(conn, list(dict.fromkeys(record.stream_id for record in records)))
        changed: dict[UUID, int] = {}
        for record in records:
            before = rows.get(record.stream_id)
            after = evolve(before, record.decode(), record.stream_id)
            rows[record.stream_id] = after
            if after != before:
                changed[record.stream_id] = record.position
        gone = [stream_id for stream_id in changed if rows[stream_id] is None]
        kept = [(row, changed[stream_id]) for stream_id in changed if (row := rows[stream_id]) is not None]
        if gone:
            await conn.execute(f"DELETE FROM {TABLE} WHERE id = ANY($1::uuid[])", gone)
        if kept:
            await conn.executemany(
                f"INSERT INTO {TABLE} (id, status, start_at, end_at, due_at, position)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET status = $2,"
                " start_at = $3, end_at = $4, due_at = $5, position = $6",
                [(row.id, row.status.value, row.start_at, row.end_at, row.due_at, position) for row, position in kept],
            )
        if gone or kept:
            # Delivered at the batch's commit, with the rows; a rebuild (`use_schema` marks its transaction)
            # tells nobody, as the public documents' notifications do not.
            await conn.execute(
                "SELECT pg_notify($1, '') WHERE coalesce(current_setting('beacon.scratch', true), '') = ''", CHANNEL
            )


async def _rows(conn: asyncpg.Connection, stream_ids: list[UUID]) -> dict[UUID, ScheduleRow | None]:
    found = await conn.fetch(f"SELECT id, status, start_at, end_at FROM {TABLE} WHERE id = ANY($1::uuid[])", stream_ids)
    rows: dict[UUID, ScheduleRow | None] = dict.fromkeys(stream_ids)
    for row in found:
        rows[row["id"]] = ScheduleRow(row["id"], MaintenanceStatus(row["status"]), row["start_at"], row["end_at"])
    return rows


# Queries. `db` is a pool or a connection.


async def due(db: asyncpg.Pool | asyncpg.Connection, now: datetime, *, limit: int = 1000) -> list[UUID]:
    """The windows whose next automatic step is due at `now`, earliest first (stream ids)."""
    rows = await db.fetch(f"SELECT id FROM {TABLE} WHERE due_at <= $1 ORDER BY due_at, id LIMIT $2", now, limit)
    return [row["id"] for row in rows]


async def next_due_at(db: asyncpg.Pool | asyncpg.Connection) -> datetime | None:
    """When the earliest pending automatic step falls due (None when automation has nothing left)."""
    value: datetime | None = await db.fetchval(f"SELECT min(due_at) FROM {TABLE}")
    return value
