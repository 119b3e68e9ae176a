"""What the incident list and the maintenance list share: one row per notice holding its wire document
(rendered from the aggregate by the same function the write path answers with, so reads and writes
cannot drift), the columns the list filters need, and the newest-first cursor query.

A notice's row is rebuilt by replaying its stream up to the last event of the batch and rendering the
aggregate; streams are short (at most ~100 updates), and replaying keeps one mapping from state to wire.
Replaying starts from the aggregate the previous batch left in a small in-process cache when the log
confirms it (the hash of its last event), so a rebuild folds each event once instead of once per batch.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import asyncpg
import msgspec
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent

from domain.base import replay
from domain.notice import Notice, Update
from domain.structure import GroupItem, SubPageItem, component_ids
from infra.clock import format_timestamp
from infra.db import Fetcher
from infra.event_store import MAPPER, RecordedEvent
from infra.ids import is_ulid, uuid_to_ulid
from projections import status_page_catalog as catalog


class AffectedComponent(msgspec.Struct):
    """incident.io's StatusPage{Incident,Maintenance}AffectedComponentV2."""

    component_id: str
    component_status: str


def component_statuses_view(update: Update) -> list[AffectedComponent]:
    return [AffectedComponent(cid, status) for cid, status in update.component_statuses.items()]


def timestamp(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def schema_sql(table: str) -> str:
    # `document` is text, not jsonb: jsonb would reorder keys, and a rebuild must be byte-identical.
    # `impact_from`/`impact_until` are the notice's `impact_span` (until is NULL while it is open). A table
    # made before they existed gains them empty; `beacon projections rebuild` fills them for old rows.
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
    id             text        PRIMARY KEY,
    status_page_id text        NOT NULL,
    published_at   timestamptz NOT NULL,
    component_ids  text[]      NOT NULL,
    document       text        NOT NULL,
    impact_from    timestamptz,
    impact_until   timestamptz
);
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS impact_from timestamptz;
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS impact_until timestamptz;
CREATE INDEX IF NOT EXISTS {table}_newest ON {table} (status_page_id, published_at DESC, id DESC);
"""


async def load_stream(conn: asyncpg.Connection, stream_id: UUID, up_to_version: int) -> Aggregate | None:
    """The aggregate as its events up to `up_to_version` make it, read on the runner's connection."""
    rows = await conn.fetch(
        "SELECT originator_version, topic, state FROM beacon_events"
        " WHERE originator_id = $1 AND originator_version <= $2 ORDER BY originator_version",
        stream_id,
        up_to_version,
    )
    return replay([_decode(stream_id, row) for row in rows])


def _decode(stream_id: UUID, row: asyncpg.Record) -> Aggregate.Event:
    stored = StoredEvent(
        originator_id=stream_id,
        originator_version=row["originator_version"],
        topic=row["topic"],
        state=bytes(row["state"]),
    )
    return cast(Aggregate.Event, MAPPER.to_domain_event(stored))


@dataclass
class _Folded:
    """An aggregate as the log made it up to `version`, whose event there has the chained `hash`."""

    version: int
    hash: bytes
    aggregate: Aggregate


_CACHE_SIZE = 2048
_folded: OrderedDict[UUID, _Folded] = OrderedDict()
"""Aggregates the last batches left behind, least recently used first. Only ever a function of the log:
an entry is used only when the event at its version still has its hash (the hash chains the whole log
before it), so neither a rolled-back batch nor another database's log can make it wrong."""


async def load_streams(
    conn: asyncpg.Connection, events: Sequence[RecordedEvent], stream_type: str
) -> dict[UUID, Aggregate]:
    """The aggregates of the batch's `stream_type` streams as of their last event in the batch, in the
    order the batch first names them: one query for the older events (none when the cache holds the
    stream), the batch's own events decoded once (`RecordedEvent.decode` caches).

    The aggregates come from (and go back to) the cache: use them before the next `await`, when another
    projection's task may take them and fold them further."""
    batch: dict[UUID, list[RecordedEvent]] = {}
    for record in events:
        if record.stream_type == stream_type:
            batch.setdefault(record.stream_id, []).append(record)
    if not batch:
        return {}
    # Take the entries out before awaiting, so no other task folds the same aggregate meanwhile. One
    # past the batch's end (another projection's task is further on) is no use here and stays.
    taken: dict[UUID, _Folded] = {}
    for stream_id, records in batch.items():
        entry = _folded.get(stream_id)
        if entry is not None and entry.version <= records[-1].version:
            taken[stream_id] = _folded.pop(stream_id)
    # The stream's events before the batch: from the cached version (its row proves the entry) or from 1.
    ids, lows, highs = [], [], []
    for stream_id, records in batch.items():
        entry = taken.get(stream_id)
        first = records[0].version
        if entry is not None and entry.version >= first:
            continue  # the batch itself holds the cached version's event
        ids.append(stream_id)
        lows.append(entry.version if entry is not None else 1)
        highs.append(max(first - 1, entry.version if entry is not None else 0))
    older: dict[UUID, list[asyncpg.Record]] = {}
    if ids:
        rows = await conn.fetch(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state, e.hash"
            " FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS s(id, low, high)"
            " JOIN beacon_events e ON e.originator_id = s.id AND e.originator_version BETWEEN s.low AND s.high"
            " ORDER BY e.originator_id, e.originator_version",
            ids,
            lows,
            highs,
        )
        for row in rows:
            older.setdefault(row["originator_id"], []).append(row)
    stale = [stream_id for stream_id, entry in taken.items() if not _confirms(entry, older, batch[stream_id])]
    if stale:
        for stream_id in stale:
            del taken[stream_id]
        first_versions = [batch[stream_id][0].version - 1 for stream_id in stale]
        rows = await conn.fetch(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state, e.hash"
            " FROM unnest($1::uuid[], $2::bigint[]) AS s(id, high)"
            " JOIN beacon_events e ON e.originator_id = s.id AND e.originator_version <= s.high"
            " ORDER BY e.originator_id, e.originator_version",
            stale,
            first_versions,
        )
        for stream_id in stale:
            older[stream_id] = []
        for row in rows:
            older[row["originator_id"]].append(row)
    aggregates: dict[UUID, Aggregate] = {}
    for stream_id, records in batch.items():
        entry = taken.get(stream_id)
        aggregate: Aggregate | None = entry.aggregate if entry is not None else None
        version = entry.version if entry is not None else 0
        for row in older.get(stream_id, ()):
            if row["originator_version"] > version:
                aggregate = _decode(stream_id, row).mutate(aggregate)
        for record in records:
            if record.version > version:
                aggregate = record.decode().mutate(aggregate)
        if aggregate is None:
            raise LookupError(f"stream {stream_id} has no events")
        aggregates[stream_id] = aggregate
        _folded.pop(stream_id, None)
        _folded[stream_id] = _Folded(records[-1].version, records[-1].hash, aggregate)
    while len(_folded) > _CACHE_SIZE:
        _folded.popitem(last=False)
    return aggregates


def _confirms(entry: _Folded, older: dict[UUID, list[asyncpg.Record]], records: list[RecordedEvent]) -> bool:
    """Whether the log's event at the entry's version has the hash the entry was folded with."""
    for record in records:
        if record.version == entry.version:
            return record.hash == entry.hash
    for row in older.get(records[0].stream_id, ()):
        if row["originator_version"] == entry.version:
            return bool(row["hash"] == entry.hash)
    return False


class NoticeList:
    """A projection of one kind of notice into `table`: `render` gives the wire struct of an aggregate,
    `is_gone` says when a notice leaves the list (a deleted maintenance window)."""

    version = 1  # bump when what it stores changes: the new version is built beside the old (projections/versions.py)
    writes_wait = True  # a notice is listed and shown as the write that changed it answered

    def __init__(
        self,
        *,
        name: str,
        table: str,
        stream_type: str,
        notice_class: type[Notice],
        render: Callable[[Any], msgspec.Struct],
        is_gone: Callable[[Any], bool] | None = None,
    ) -> None:
        self.name = name
        self.table = table
        self.tables: tuple[str, ...] = (table,)
        self.schema_sql = schema_sql(table)
        self.stream_type = stream_type
        self.notice_class = notice_class
        self.render = render
        self.is_gone = is_gone or (lambda notice: False)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        kept: list[tuple[str, str, datetime, list[str], str, datetime, datetime | None]] = []
        gone: list[str] = []
        for stream_id, notice in (await load_streams(conn, events, self.stream_type)).items():
            if not isinstance(notice, self.notice_class):
                raise TypeError(f"stream {stream_id} is not a {self.notice_class.__name__}")
            notice_id = uuid_to_ulid(notice.id)
            if self.is_gone(notice):
                gone.append(notice_id)
                continue
            kept.append(
                (
                    notice_id,
                    notice.status_page_id,
                    notice.published_at,
                    notice.affected_component_ids,
                    msgspec.json.encode(self.render(notice)).decode(),
                    *notice.impact_span,
                )
            )
        if gone:
            await conn.execute(f"DELETE FROM {self.table} WHERE id = ANY($1::text[])", gone)
        if kept:
            await conn.executemany(
                f"INSERT INTO {self.table}"
                " (id, status_page_id, published_at, component_ids, document, impact_from, impact_until)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET status_page_id = $2,"
                " published_at = $3, component_ids = $4, document = $5, impact_from = $6, impact_until = $7",
                kept,
            )


# Queries. `db` is a pool or a connection.


@dataclass(frozen=True)
class NoticeFilter:
    """ListStatusPage{Incidents,Maintenances}'s filters, resolved: `component_ids` None means any."""

    status_page_id: str
    component_ids: frozenset[str] | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None


@dataclass(frozen=True)
class NoticeRow:
    id: str
    document: str


async def list_notices(
    db: Fetcher, table: str, where: NoticeFilter, *, limit: int, after: str | None = None
) -> list[NoticeRow] | None:
    """Up to `limit` notices of the page, newest `published_at` first (ties: highest id first), after
    the notice `after`; None when `after` names no notice in this list. `start_at`/`end_at` keep the
    notices whose impact span (`Notice.impact_span`) reaches into [start_at, end_at]."""
    cursor: tuple[datetime, str] | None = None
    if after is not None:
        row = await db.fetchrow(f"SELECT published_at, id FROM {table} WHERE id = $1", after)
        if row is None:
            return None
        cursor = (row["published_at"], row["id"])
    rows = await db.fetch(
        f"SELECT id, document FROM {table} WHERE status_page_id = $1"
        " AND ($2::text[] IS NULL OR component_ids && $2::text[])"
        " AND ($3::timestamptz IS NULL OR impact_until IS NULL OR impact_until >= $3)"
        " AND ($4::timestamptz IS NULL OR impact_from <= $4)"
        " AND ($5::timestamptz IS NULL OR (published_at, id) < ($5, $6))"
        " ORDER BY published_at DESC, id DESC LIMIT $7",
        where.status_page_id,
        sorted(where.component_ids) if where.component_ids is not None else None,
        where.start_at,
        where.end_at,
        cursor[0] if cursor else None,
        cursor[1] if cursor else None,
        limit,
    )
    return [NoticeRow(row["id"], row["document"]) for row in rows]


async def get_notice(db: Fetcher, table: str, notice_id: str) -> str | None:
    """The notice's wire document, or None (unknown, or a deleted maintenance window)."""
    if not is_ulid(notice_id):
        return None
    document: str | None = await db.fetchval(f"SELECT document FROM {table} WHERE id = $1", notice_id)
    return document


class UnknownStructureItem(LookupError):
    """Raised when a group or sub-page filter names nothing on the page's current structure."""

    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"{field} {value!r} is not a group or sub-page of this status page")
        self.field = field


async def structure_components(
    db: Fetcher, status_page_id: str, *, group_id: str | None = None, sub_page_id: str | None = None
) -> frozenset[str] | None:
    """The components a group and/or sub-page filter stands for, from the page's current structure
    (both given: the components in both). None when neither is given."""
    if group_id is None and sub_page_id is None:
        return None
    structure = await catalog.get_structure(db, status_page_id)
    items = structure.items if structure is not None else ()
    result: frozenset[str] | None = None
    if group_id is not None:
        groups = [item for item in _groups(items) if item.id == group_id]
        if not groups:
            raise UnknownStructureItem("group_id", group_id)
        result = frozenset(component.component_id for component in groups[0].components)
    if sub_page_id is not None:
        pages = [item for item in items if isinstance(item, SubPageItem) and item.id == sub_page_id]
        if not pages:
            raise UnknownStructureItem("sub_page_id", sub_page_id)
        members = frozenset(component_ids(pages[0].items))
        result = members if result is None else result & members
    return result


def _groups(items: Sequence[Any]) -> list[GroupItem]:
    found: list[GroupItem] = []
    for item in items:
        if isinstance(item, GroupItem):
            found.append(item)
        elif isinstance(item, SubPageItem):
            found.extend(member for member in item.items if isinstance(member, GroupItem))
    return found
