"""Component availability: the time ranges each component spent in an outage during incidents, and the
availability over a window that ShowStatusPageComponentAvailability answers (docs/architecture.md#availability).

Downtime is the union of the component's full- and partial-outage impacts in the window (overlapping
incidents count once); time before the component's data begins is not part of the window. Its data
begins at its creation, or at its earliest recorded impact when that is earlier: a retrospective incident
backfilled onto a component created today (history migrated from another provider) counts. Impacts are kept
per incident and rewritten from the incident's derived `component_impacts` whenever it changes, so this
read model and the incident's own `component_impacts` cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from domain.incident import Incident, IncidentComponentStatus
from infra.db import Fetcher
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
-- Both reads name the page and the component and range over or order by start_at: the window's outages,
-- and where the component's data begins (min(start_at), one index probe). It replaces an index on
-- (component_id, start_at) that made the second read scan the component's impacts on other pages.
CREATE INDEX IF NOT EXISTS {TABLE}_page_component ON {TABLE} (status_page_id, component_id, start_at);
DROP INDEX IF EXISTS {TABLE}_component;
"""

DOWNTIME_STATUSES = (IncidentComponentStatus.FULL_OUTAGE.value, IncidentComponentStatus.PARTIAL_OUTAGE.value)
MAX_WINDOW = timedelta(days=366)


class ComponentAvailability:
    """The `component_availability` projection."""

    name = "component_availability"
    version = 1  # bump when what it stores changes: the new version is built beside the old (projections/versions.py)
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
    db: Fetcher, status_page_id: str, component_id: str, start_at: datetime, end_at: datetime
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


EARLIEST_IMPACT_SQL = f"SELECT min(start_at) FROM {TABLE} WHERE status_page_id = $1 AND component_id = $2"


async def data_available_since(db: Fetcher, status_page_id: str, component_id: str, created_at: datetime) -> datetime:
    """Where the component's availability data begins on the page: its creation, or its earliest impact
    (of any status) on the page's incidents when that came first — a retrospective incident backfilled
    onto a component created today moves it back. One probe of the `(status_page_id, component_id,
    start_at)` index."""
    earliest: datetime | None = await db.fetchval(EARLIEST_IMPACT_SQL, status_page_id, component_id)
    return created_at if earliest is None else min(created_at, earliest)


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
    """Up time over covered time as a percentage, floored (never rounded up) to at most 4 decimals
    ("99.94", "100"; 99.99995% is "99.9999", not "100"); None when nothing of the window is covered
    (availability unknown, not assumed). Exact: integer microseconds, no floating point."""
    if covered <= timedelta():
        return None
    covered_micros = covered // timedelta(microseconds=1)
    up_micros = covered_micros - min(down, covered) // timedelta(microseconds=1)
    # Percent in units of 0.0001 (100 * 10_000 per whole), floored by integer division.
    ten_thousandths = up_micros * 100 * 10_000 // covered_micros
    whole, fraction = divmod(ten_thousandths, 10_000)
    return f"{whole}.{fraction:04d}".rstrip("0").rstrip(".")


async def component_availability(
    db: Fetcher,
    status_page_id: str,
    component_id: str,
    *,
    data_available_since: datetime,
    start_at: datetime,
    end_at: datetime,
    now: datetime,
) -> str | None:
    """`availability_percent` over [start_at, end_at): only the part after the component's data begins
    (`data_available_since`) and before now counts (the future has no data yet)."""
    covered_start = max(start_at, data_available_since)
    covered_end = min(end_at, now)
    if covered_end <= covered_start:
        return None
    intervals = await outage_intervals(db, status_page_id, component_id, covered_start, covered_end)
    return availability_percent(covered_end - covered_start, downtime(intervals, covered_start, covered_end))
