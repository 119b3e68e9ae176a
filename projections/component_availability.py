"""Component availability: the time ranges each component spent in an outage during incidents, and the
availability over a window that ShowStatusPageComponentAvailability answers (SPEC §4).

Downtime is the union of the component's full- and partial-outage impacts in the window (overlapping
incidents count once); time before the component existed is not part of the window. Impacts are kept
per incident and rewritten from the incident's derived `component_impacts` whenever it changes, so this
read model and the incident's own `component_impacts` cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import asyncpg

from domain.incident import Incident, IncidentComponentStatus
from infra.event_store import RecordedEvent
from infra.ids import uuid_to_ulid
from projections.notice_list import load_streams

TABLE = "component_availability_impacts"

SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    incident_id      text        NOT NULL,
    seq              integer     NOT NULL,
    status_page_id   text        NOT NULL,
    component_id     text        NOT NULL,
    component_status text        NOT NULL,
    start_at         timestamptz NOT NULL,
    end_at           timestamptz,
    PRIMARY KEY (incident_id, seq)
);
CREATE INDEX IF NOT EXISTS {TABLE}_component ON {TABLE} (component_id, start_at);
"""

DOWNTIME_STATUSES = (IncidentComponentStatus.FULL_OUTAGE.value, IncidentComponentStatus.PARTIAL_OUTAGE.value)
MAX_WINDOW = timedelta(days=366)


class ComponentAvailability:
    """The `component_availability` projection."""

    name = "component_availability"
    writes_wait = True  # availability reflects an incident update as soon as the update answers
    tables: tuple[str, ...] = (TABLE,)
    schema_sql = SCHEMA_SQL

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        incident_ids: list[str] = []
        rows: list[tuple[str, int, str, str, str, datetime, datetime | None]] = []
        for stream_id, incident in (await load_streams(conn, events, Incident.STREAM_TYPE)).items():
            if not isinstance(incident, Incident):
                raise TypeError(f"stream {stream_id} is not an Incident")
            incident_id = uuid_to_ulid(stream_id)
            incident_ids.append(incident_id)
            rows += [
                (
                    incident_id,
                    seq,
                    incident.status_page_id,
                    impact.component_id,
                    impact.component_status.value,
                    impact.start_at,
                    impact.end_at,
                )
                for seq, impact in enumerate(incident.component_impacts)
            ]
        if not incident_ids:
            return
        await conn.execute(f"DELETE FROM {TABLE} WHERE incident_id = ANY($1::text[])", incident_ids)
        if rows:
            # One statement for the batch's rows (arrays, one per column), not one per row.
            await conn.execute(
                f"INSERT INTO {TABLE} (incident_id, seq, status_page_id, component_id, component_status,"
                " start_at, end_at) SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[],"
                " $5::text[], $6::timestamptz[], $7::timestamptz[])",
                *(list(column) for column in zip(*rows, strict=True)),
            )


@dataclass(frozen=True)
class Interval:
    start_at: datetime
    end_at: datetime | None


async def outage_intervals(
    db: Any, status_page_id: str, component_id: str, start_at: datetime, end_at: datetime
) -> list[Interval]:
    """The component's full/partial outage impacts on the page's incidents that overlap the window."""
    rows = await db.fetch(
        f"SELECT start_at, end_at FROM {TABLE} WHERE status_page_id = $1 AND component_id = $2"
        " AND component_status = ANY($3::text[]) AND start_at < $5 AND (end_at IS NULL OR end_at > $4)",
        status_page_id,
        component_id,
        list(DOWNTIME_STATUSES),
        start_at,
        end_at,
    )
    return [Interval(row["start_at"], row["end_at"]) for row in rows]


def downtime(intervals: Iterable[Interval], start_at: datetime, end_at: datetime) -> timedelta:
    """The length of the union of the intervals clipped to [start_at, end_at); open ones run to the end."""
    clipped = sorted(
        (max(i.start_at, start_at), min(i.end_at or end_at, end_at))
        for i in intervals
    )
    total = timedelta()
    current: tuple[datetime, datetime] | None = None
    for begin, end in clipped:
        if end <= begin:
            continue
        if current is not None and begin <= current[1]:
            current = (current[0], max(current[1], end))
            continue
        if current is not None:
            total += current[1] - current[0]
        current = (begin, end)
    if current is not None:
        total += current[1] - current[0]
    return total


def availability_percent(covered: timedelta, down: timedelta) -> str | None:
    """Up time over covered time as a percentage, floored to at most 4 decimals ("99.94", "100");
    None when nothing of the window is covered (availability unknown, not assumed)."""
    if covered <= timedelta():
        return None
    micros = Decimal(covered // timedelta(microseconds=1))
    down_micros = Decimal(down // timedelta(microseconds=1))
    percent = ((micros - down_micros) * 100 / micros).quantize(Decimal("0.0001"), rounding=ROUND_FLOOR)
    text = format(percent, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


async def component_availability(
    db: Any,
    status_page_id: str,
    component_id: str,
    *,
    data_available_since: datetime,
    start_at: datetime,
    end_at: datetime,
    now: datetime,
) -> str | None:
    """`availability_percent` over [start_at, end_at): only the part after the component existed and
    before now counts (the future has no data yet)."""
    covered_start = max(start_at, data_available_since)
    covered_end = min(end_at, now)
    if covered_end <= covered_start:
        return None
    intervals = await outage_intervals(db, status_page_id, component_id, covered_start, covered_end)
    return availability_percent(covered_end - covered_start, downtime(intervals, covered_start, covered_end))
