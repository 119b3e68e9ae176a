"""The log as evidence (docs/architecture.md#audit): verify the hash chain, and read the log as audit
records (JSON / NDJSON).

The chain is recomputed here in Python, from the stored columns, so an auditor does not have to trust
the SQL function that wrote it. The canonical form, mirrored exactly from `beacon_event_hash` in
`infra/migrations/0001_event_store.sql` (and documented for auditors in `docs/auditing.md`):

    hash(n) = SHA-256( hash(n-1) || UTF-8(content(n)) || state(n) )      hash(0) = b"" (empty)

    content(n) = the non-NULL ones of these fields, joined by "\\n" (Postgres `concat_ws`):
        position             decimal (the `notification_id` column)
        stream id            lowercase hyphenated UUID (`originator_id`)
        version              decimal (`originator_version`)
        topic                text
        stream_type          text
        recorded_at          UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (always six fractional digits)
        actor                the jsonb column as Postgres prints it (`actor::text`)
        request_id           text, "" when NULL

where hash(n-1) is the *stored* hash of the row before it in position order. Every link is checked
against the row before it as stored, so an edited, deleted or reordered row breaks the chain at (or
right after) its position. A wholesale rewrite of the chain from some row onwards by someone who knows
this algorithm is only caught against a head hash recorded elsewhere: `verify_chain` reports the head.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import IO, Any
from uuid import UUID

import msgspec

from infra.clock import format_timestamp
from infra.db import Fetcher
from infra.event_store import chain_content, chain_link
from infra.ids import uuid_to_ulid
from infra.transcoder import MsgspecTranscoder

PAGE_SIZE = 1000
REORDER_WINDOW = 32
"""How many rows either side of a broken link are searched for the place a reordered row came from."""

_COLUMNS = (
    "notification_id, originator_id, originator_version, topic, state, stream_type, recorded_at,"
    " actor::text AS actor, request_id, hash"
)


@dataclass(frozen=True)
class LogRow:
    """One row of `beacon_events`, exactly as stored (the actor as its jsonb text)."""

    position: int
    stream_id: UUID
    version: int
    topic: str | None
    state: bytes | None
    stream_type: str
    recorded_at: datetime
    actor: str
    request_id: str | None
    hash: bytes

    @classmethod
    def from_record(cls, row: Any) -> LogRow:
        return cls(
            position=row["notification_id"],
            stream_id=row["originator_id"],
            version=row["originator_version"],
            topic=row["topic"],
            state=row["state"],
            stream_type=row["stream_type"],
            recorded_at=row["recorded_at"],
            actor=row["actor"],
            request_id=row["request_id"],
            hash=row["hash"],
        )


def canonical_content(row: LogRow, *, position: int | None = None) -> bytes:
    """The bytes hashed after the previous hash and before the state (see the module docstring).

    `position` overrides the row's own, to ask "would this row's hash fit at another position?"."""
    return chain_content(
        position=row.position if position is None else position,
        stream_id=row.stream_id,
        version=row.version,
        topic=row.topic,
        stream_type=row.stream_type,
        recorded_at=row.recorded_at,
        actor_text=row.actor,
        request_id=row.request_id,
    )


def chain_hash(previous: bytes | None, row: LogRow, *, position: int | None = None) -> bytes:
    """`beacon_event_hash` in Python: the hash `row` must carry after a row whose hash is `previous`."""
    return chain_link(previous, canonical_content(row, position=position), row.state)


@dataclass(frozen=True)
class BrokenLink:
    """Where the chain breaks first, and the likeliest reason."""

    position: int
    stream_id: UUID
    stream_type: str
    version: int
    problem: str
    """`edited`, `missing_predecessor` or `reordered`."""
    detail: str

    def __str__(self) -> str:
        return (
            f"hash chain broken at position {self.position} ({self.stream_type} {uuid_to_ulid(self.stream_id)}"
            f" v{self.version}): {self.problem}: {self.detail}"
        )


@dataclass(frozen=True)
class ChainReport:
    """The outcome of a walk over the log: how far it got, the head to record elsewhere, the first break."""

    checked: int
    last_position: int
    head_hash: bytes | None
    broken: BrokenLink | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None


Progress = Callable[[int, int, int], None]
"""Called after each page with (events checked, position reached, last position when the walk began)."""


async def _page(source: Fetcher, after: int, limit: int) -> list[LogRow]:
    rows = await source.fetch(
        f"SELECT {_COLUMNS} FROM beacon_events WHERE notification_id > $1 ORDER BY notification_id LIMIT $2",
        after,
        limit,
    )
    return [LogRow.from_record(row) for row in rows]


async def verify_chain(source: Fetcher, *, progress: Progress | None = None, page_size: int = PAGE_SIZE) -> ChainReport:
    """Walk the whole log in position order, a page at a time (constant memory), recomputing each hash
    from the previous stored row's hash; stop at the first broken link and say what is wrong there."""
    end: int = await source.fetchval("SELECT coalesce(max(notification_id), 0) FROM beacon_events")
    previous: LogRow | None = None
    checked = 0
    while True:
        rows = await _page(source, previous.position if previous else 0, page_size)
        if not rows:
            break
        for row in rows:
            if row.hash != chain_hash(previous.hash if previous else None, row):
                broken = await _diagnose(source, previous, row)
                return ChainReport(
                    checked, previous.position if previous else 0, previous.hash if previous else None, broken
                )
            previous = row
            checked += 1
        if progress is not None:
            progress(checked, rows[-1].position, end)
    return ChainReport(checked, previous.position if previous else 0, previous.hash if previous else None)


async def _diagnose(source: Fetcher, previous: LogRow | None, row: LogRow) -> BrokenLink:
    """Name the likeliest cause of a mismatch at `row`; only runs once, at the first broken link."""

    def broken(problem: str, detail: str) -> BrokenLink:
        return BrokenLink(row.position, row.stream_id, row.stream_type, row.version, problem, detail)

    # Reordered: the row's stored hash fits another place nearby (another predecessor and position).
    neighbours = [
        LogRow.from_record(record)
        for record in await source.fetch(
            f"SELECT {_COLUMNS} FROM beacon_events WHERE notification_id BETWEEN $1 AND $2 ORDER BY notification_id",
            row.position - REORDER_WINDOW,
            row.position + REORDER_WINDOW,
        )
    ]
    candidates: list[LogRow | None] = [None, *neighbours]
    positions = range(max(1, row.position - REORDER_WINDOW - 1), row.position + REORDER_WINDOW + 2)
    for before in candidates:
        if before is row or (before is not None and before.position == row.position):
            continue
        before_hash = before.hash if before else None
        for position in positions:
            if position != row.position and row.hash == chain_hash(before_hash, row, position=position):
                after_what = f"after the event now at position {before.position}" if before else "as the first event"
                return broken(
                    "reordered",
                    f"this event was recorded at position {position} {after_what}; rows were moved or swapped",
                )

    # Missing predecessor: a row of this stream, or a row just before this one, is gone.
    if row.version > 1:
        kept: int | None = await source.fetchval(
            "SELECT count(*) FROM beacon_events WHERE originator_id = $1 AND originator_version < $2",
            row.stream_id,
            row.version,
        )
        if kept is not None and kept < row.version - 1:
            return broken(
                "missing_predecessor",
                f"only {kept} of versions 1..{row.version - 1} of this stream are in the log; rows were deleted",
            )
    expected_after = previous.position if previous else 0
    if row.position > expected_after + 1:
        return broken(
            "missing_predecessor",
            f"positions {expected_after + 1}..{row.position - 1} are absent and the hash does not chain from "
            f"position {expected_after}; rows were deleted",
        )
    return broken(
        "edited",
        "the stored hash does not match this event's content chained from its predecessor's hash: this row "
        "(payload, metadata or hash) was edited, or its predecessor was replaced by a row with a recomputed hash",
    )


# --- audit records ---------------------------------------------------------------------------------


class AuditEvent(msgspec.Struct):
    """One event as the audit API, the history endpoints and exports show it (docs/architecture.md#audit)."""

    position: int
    stream_id: str
    stream_type: str
    version: int
    type: str
    recorded_at: str
    actor: dict[str, Any]
    request_id: str | None
    data: dict[str, Any]
    hash: str


_TRANSCODER = MsgspecTranscoder()


def _plain(value: Any) -> Any:
    """The decoded state as JSON: datetimes as RFC 3339 UTC, ids as ULIDs (as on the wire), Decimals as strings."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, UUID):
        return uuid_to_ulid(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


def audit_event(row: LogRow) -> AuditEvent:
    """The stored state decoded with the library's JSON format, as stored (not upcast)."""
    data = _plain(_TRANSCODER.decode(row.state)) if row.state else {}
    return AuditEvent(
        position=row.position,
        stream_id=uuid_to_ulid(row.stream_id),
        stream_type=row.stream_type,
        version=row.version,
        type=row.topic or "",
        recorded_at=format_timestamp(row.recorded_at),
        actor=msgspec.json.decode(row.actor),
        request_id=row.request_id,
        data=data if isinstance(data, dict) else {"value": data},
        hash=row.hash.hex(),
    )


@dataclass(frozen=True)
class Selection:
    """Which events an audit read returns: position > `after`, optionally one stream, and
    `since` <= recorded_at < `until`."""

    after: int = 0
    stream_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


async def position_bounds(source: Fetcher, selection: Selection) -> tuple[int, int | None]:
    """The selection's `since` and `until` as positions: (after, through), through None when unbounded.

    recorded_at never goes backwards in log order (`beacon_append` refuses it), so a time range is a
    position range, found with one probe each of `beacon_events_recorded_position_idx`; the pages are
    then keyset ranges of positions, and their cost does not depend on where in the log they are."""
    last_before = (
        "SELECT notification_id FROM beacon_events WHERE recorded_at < $1"
        " ORDER BY recorded_at DESC, notification_id DESC LIMIT 1"
    )
    after, through = selection.after, None
    if selection.since is not None:
        after = max(after, int(await source.fetchval(last_before, selection.since) or 0))
    if selection.until is not None:
        through = int(await source.fetchval(last_before, selection.until) or 0)
    return after, through


def audit_query(selection: Selection, through: int | None, limit: int) -> tuple[str, list[Any]]:
    """The SQL of one keyset page and its arguments, with only the filters the selection uses, so each
    combination is planned on its own index: `stream_id` walks `beacon_events_stream_position_idx` in
    position order, the others the position index. The time filters stay as conditions too, so a
    position bound can only narrow the scan, never change what matches."""
    conditions, args = ["notification_id > $1"], [selection.after]

    def condition(sql: str, value: Any) -> None:
        args.append(value)
        conditions.append(sql.replace("?", f"${len(args)}"))

    if selection.stream_id is not None:
        condition("originator_id = ?", selection.stream_id)
    if through is not None:
        condition("notification_id <= ?", through)
    if selection.since is not None:
        condition("recorded_at >= ?", selection.since)
    if selection.until is not None:
        condition("recorded_at < ?", selection.until)
    args.append(limit)
    where = " AND ".join(conditions)
    query = f"SELECT {_COLUMNS} FROM beacon_events WHERE {where} ORDER BY notification_id LIMIT ${len(args)}"
    return query, args


async def read_audit_page(source: Fetcher, selection: Selection, limit: int) -> list[AuditEvent]:
    """Up to `limit` events of the selection in position (= commit) order."""
    after, through = await position_bounds(source, selection)
    return await _read_page(source, replace(selection, after=after), through, limit)


async def _read_page(source: Fetcher, selection: Selection, through: int | None, limit: int) -> list[AuditEvent]:
    query, args = audit_query(selection, through, limit)
    return [audit_event(LogRow.from_record(row)) for row in await source.fetch(query, *args)]


async def iter_audit_pages(
    source: Fetcher, selection: Selection, *, page_size: int = PAGE_SIZE
) -> AsyncIterator[list[AuditEvent]]:
    """The whole selection, a page at a time (keyset on the position, never OFFSET), so exports of any
    size run in constant memory and at the same rate from the first event to the last."""
    after, through = await position_bounds(source, selection)
    while True:
        page = await _read_page(source, replace(selection, after=after), through, page_size)
        if page:
            yield page
        if len(page) < page_size:
            return
        after = page[-1].position


_ENCODER = msgspec.json.Encoder()


def ndjson(events: Sequence[AuditEvent]) -> bytes:
    """One JSON document per line, each line ending in a newline."""
    buffer = bytearray()
    for item in events:
        _ENCODER.encode_into(item, buffer, len(buffer))
        buffer.extend(b"\n")
    return bytes(buffer)


async def iter_ndjson(source: Fetcher, selection: Selection, *, page_size: int = PAGE_SIZE) -> AsyncIterator[bytes]:
    """The selection as NDJSON chunks, one per page."""
    async for page in iter_audit_pages(source, selection, page_size=page_size):
        yield ndjson(page)


async def export_ndjson(
    source: Fetcher, out: IO[bytes], *, after: int = 0, progress: Progress | None = None, page_size: int = PAGE_SIZE
) -> int:
    """Write every event past `after` to `out` as NDJSON; return how many. File writes run in a thread so
    a slow disk or pipe never blocks the event loop."""
    end: int = await source.fetchval("SELECT coalesce(max(notification_id), 0) FROM beacon_events")
    written = 0
    async for page in iter_audit_pages(source, Selection(after=after), page_size=page_size):
        await asyncio.to_thread(out.write, ndjson(page))
        written += len(page)
        if progress is not None:
            progress(written, page[-1].position, end)
    await asyncio.to_thread(out.flush)
    return written


async def read_stream(source: Fetcher, stream_id: UUID) -> list[AuditEvent]:
    """One stream's events in version order (the history endpoints)."""
    rows = await source.fetch(
        f"SELECT {_COLUMNS} FROM beacon_events WHERE originator_id = $1 ORDER BY originator_version", stream_id
    )
    return [audit_event(LogRow.from_record(row)) for row in rows]
