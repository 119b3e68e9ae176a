"""Per-page widget history (docs/adr/0004-time-travel-index-and-snapshots.md): what lets an `as_of` read of
a page's widget cost what that page's history costs, not what the log weighs.

Three tables, all derived from the log and rebuildable from zero:

- `widget_history_index`: for each status page, the positions of the events that can change its widget
  documents (its own stream's events and those of its notices while they are on the widget).
- `widget_history_snapshots`: every `SNAPSHOT_EVERY` indexed events of a page, the page's fold state
  (the widget's fold state of that page and its open notices) after that position, tagged with
  `STATE_VERSION`. A snapshot of another version is ignored, never trusted: the read folds from an
  older valid one, or from the page's first event.
- `widget_history_pages` and `widget_history_notices`: the projection's working state (each page's
  current fold, which notice belongs to which page) from which index rows and snapshots are written.

An `as_of` read finds the last position recorded at or before the instant, starts from the page's latest
valid snapshot at or before it, folds the page's indexed events after the snapshot with
`widget_document.fold_record`, folds the log past this projection's checkpoint (normally nothing) the way the
full fold does, reads the names of the placed components as of that position, and renders with
`widget_document.render_documents`, with the public base URL as of that position (one probe of its
stream). Component names are not folded: a name shown is the one a component's
last `Created`/`Updated` at or before the position gave it, one index probe per placed component
(`beacon_events_stream_position_idx`), which also covers a component renamed before it was placed.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from domain.component import Component
from domain.incident import Incident
from domain.maintenance import Maintenance, started_at_after
from domain.status_page import StatusPage
from domain.structure import component_ids, parse_structure
from infra.event_store import RecordedEvent
from infra.ids import ulid_to_uuid, uuid_to_ulid
from projections import widget_document
from projections.public_base_url import base_url_at
from projections.versions import version_key
from projections.widget_document import NoticeState, PageState, WidgetState, documents_of, fold_record

NAME = "widget_history"
SNAPSHOT_EVERY = 64
"""Indexed events of one page between two of its snapshots: an `as_of` read folds at most this many
events (plus the log past the checkpoint), whatever the size of the log or of the page's history."""
TAIL_PAGE = 1000

_STATE_FORMAT = 1
"""Bump when the snapshot layout below changes. Changes to how the state is folded bump the version by
themselves: it hashes the source of the code that folds it."""


def _state_version() -> str:
    """The version snapshots are written with and read at: the state format and a digest of the source of
    everything that folds the state, so any change to the fold invalidates every snapshot by itself."""
    folding: Iterable[Any] = (
        widget_document.evolve,
        widget_document._evolve_page,
        widget_document._evolve_notice,
        widget_document._created,
        widget_document._on_widget,
        widget_document._apply_update,
        widget_document._statuses,
        widget_document.fold_record,
        started_at_after,
        PageState,
        NoticeState,
    )
    digest = hashlib.sha256("\n".join(inspect.getsource(item) for item in folding).encode()).hexdigest()
    return f"{_STATE_FORMAT}-{digest[:16]}"


STATE_VERSION = _state_version()

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS widget_history_index (
    status_page_id text   NOT NULL,
    position       bigint NOT NULL,
    PRIMARY KEY (status_page_id, position)
);
CREATE TABLE IF NOT EXISTS widget_history_snapshots (
    status_page_id text   NOT NULL,
    position       bigint NOT NULL,
    version        text   NOT NULL,
    state          bytea  NOT NULL,
    PRIMARY KEY (status_page_id, position)
);
CREATE TABLE IF NOT EXISTS widget_history_pages (
    id      text    PRIMARY KEY,
    version text    NOT NULL,
    indexed bigint  NOT NULL,
    state   bytea   NOT NULL
);
CREATE TABLE IF NOT EXISTS widget_history_notices (
    id             uuid PRIMARY KEY,
    status_page_id text NOT NULL
);
"""


class PageFold(msgspec.Struct):
    """One page's fold state as a snapshot stores it: the page (None before it exists) and its notices on
    the widget, by id."""

    page: PageState | None
    notices: list[NoticeState]


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(PageFold)


def encode_state(state: WidgetState, status_page_id: str) -> bytes:
    notices = sorted((n for n in state.notices.values() if n is not None), key=lambda n: n.id)
    return _ENCODER.encode(PageFold(page=state.pages.get(status_page_id), notices=notices))


def decode_state(data: bytes) -> WidgetState:
    fold = _DECODER.decode(data)
    state = WidgetState()
    if fold.page is not None:
        state.pages[fold.page.id] = fold.page
    for notice in fold.notices:
        state.notices[notice.id] = notice
    return state


_EVENT_COLUMNS = (
    "e.notification_id AS position, e.originator_id AS stream_id, e.stream_type, e.originator_version AS version,"
    " e.topic, e.state, e.recorded_at, e.actor, e.request_id, e.hash"
)


def _recorded(row: asyncpg.Record) -> RecordedEvent:
    return RecordedEvent(**{**dict(row), "actor": msgspec.json.decode(row["actor"])})


async def indexed_events(
    conn: asyncpg.Connection, status_page_id: str, after: int, through: int
) -> list[RecordedEvent]:
    """The page's indexed events with `after` < position <= `through`, in position order."""
    rows = await conn.fetch(
        f"SELECT {_EVENT_COLUMNS} FROM widget_history_index AS i JOIN beacon_events AS e"
        " ON e.notification_id = i.position"
        " WHERE i.status_page_id = $1 AND i.position > $2 AND i.position <= $3 ORDER BY i.position",
        status_page_id,
        after,
        through,
    )
    return [_recorded(row) for row in rows]


# The projection.


@dataclass
class _Page:
    """A page's working state during one batch."""

    state: WidgetState
    indexed: int
    changed: bool = False


class WidgetHistory:
    """Projection `widget_history` (see the module docstring)."""

    name = NAME
    version = 1  # bump when what it stores changes: the new version is built beside the old (projections/versions.py)
    writes_wait = False  # only time travel reads it, and it falls back to the log for what it lacks
    min_pass_interval = 0.1  # a pass per 100 ms under a stream of commands, not one per commit (runner.Projection)
    tables: tuple[str, ...] = (
        "widget_history_index",
        "widget_history_snapshots",
        "widget_history_pages",
        "widget_history_notices",
    )
    schema_sql = SCHEMA_SQL

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        notice_streams = [
            r.stream_id
            for r in events
            if r.stream_type in (Incident.STREAM_TYPE, Maintenance.STREAM_TYPE) and r.version > 1
        ]
        owners: dict[Any, str | None] = {
            row["id"]: row["status_page_id"]
            for row in await conn.fetch(
                "SELECT id, status_page_id FROM widget_history_notices WHERE id = ANY($1::uuid[])", notice_streams
            )
        }
        stored = await self._stored_pages(conn, events, owners)
        pages: dict[str, _Page] = {}
        index_rows: list[tuple[str, int]] = []
        snapshots: list[tuple[str, int, str, bytes]] = []
        owners_before = dict(owners)
        for record in events:
            page_id = self._page_of(record, owners)
            if page_id is None:
                continue
            page = pages.get(page_id) or await self._load(conn, page_id, record.position, stored)
            pages[page_id] = page
            fold_record(page.state, record, page_id, set())
            if record.stream_type != StatusPage.STREAM_TYPE:
                notice_id = uuid_to_ulid(record.stream_id)
                owners[record.stream_id] = page_id if notice_id in page.state.notices else None
            index_rows.append((page_id, record.position))
            page.indexed += 1
            page.changed = True
            if page.indexed % SNAPSHOT_EVERY == 0:
                snapshots.append((page_id, record.position, STATE_VERSION, encode_state(page.state, page_id)))
        if index_rows:
            await conn.copy_records_to_table(
                "widget_history_index", records=index_rows, columns=["status_page_id", "position"]
            )
        if snapshots:
            await conn.executemany(
                "INSERT INTO widget_history_snapshots (status_page_id, position, version, state)"
                " VALUES ($1, $2, $3, $4)",
                snapshots,
            )
        rows = [(pid, STATE_VERSION, p.indexed, encode_state(p.state, pid)) for pid, p in pages.items() if p.changed]
        if rows:
            await conn.executemany(
                "INSERT INTO widget_history_pages (id, version, indexed, state) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, indexed = EXCLUDED.indexed,"
                " state = EXCLUDED.state",
                sorted(rows),
            )
        await self._save_owners(conn, owners_before, owners)

    @staticmethod
    def _page_of(record: RecordedEvent, owners: dict[Any, str | None]) -> str | None:
        """The page whose documents `record` can change, or None."""
        if record.stream_type == StatusPage.STREAM_TYPE:
            return uuid_to_ulid(record.stream_id)
        if record.stream_type not in (Incident.STREAM_TYPE, Maintenance.STREAM_TYPE):
            return None  # components: their names are read as of the instant (module docstring)
        if record.version == 1:
            event = record.decode()
            # A retrospective incident never shows on the widget (`evolve` ignores it), nor do its events.
            return event.status_page_id if isinstance(event, Incident.Declared | Maintenance.Scheduled) else None
        return owners.get(record.stream_id)

    @classmethod
    async def _stored_pages(
        cls, conn: asyncpg.Connection, events: Sequence[RecordedEvent], owners: dict[Any, str | None]
    ) -> dict[str, asyncpg.Record | None]:
        """The stored working state of every page the batch can touch, in one query: one round trip per
        page would grow a rebuild's cost with the number of pages a batch touches (every active page, on a
        big log), not with its events."""
        wanted = {page for page in owners.values() if page is not None}
        for record in events:
            if record.version == 1 or record.stream_type == StatusPage.STREAM_TYPE:
                wanted.add(cls._page_of(record, {}) or "")
        wanted.discard("")
        stored: dict[str, asyncpg.Record | None] = dict.fromkeys(wanted)
        for row in await conn.fetch(
            "SELECT id, version, indexed, state FROM widget_history_pages WHERE id = ANY($1::text[])", sorted(wanted)
        ):
            stored[row["id"]] = row
        return stored

    @staticmethod
    async def _load(
        conn: asyncpg.Connection, page_id: str, position: int, stored: dict[str, asyncpg.Record | None]
    ) -> _Page:
        if page_id in stored:
            row = stored[page_id]
        else:  # not foreseen by `_stored_pages`: read it on its own
            row = await conn.fetchrow("SELECT version, indexed, state FROM widget_history_pages WHERE id = $1", page_id)
        if row is None:
            return _Page(WidgetState(), 0)
        if row["version"] == STATE_VERSION:
            return _Page(decode_state(row["state"]), row["indexed"])
        # Folded by other code: fold the page again from its first indexed event with this code.
        state = WidgetState()
        for record in await indexed_events(conn, page_id, 0, position - 1):
            fold_record(state, record, page_id, set())
        return _Page(state, row["indexed"], changed=True)

    @staticmethod
    async def _save_owners(
        conn: asyncpg.Connection, before: dict[Any, str | None], after: dict[Any, str | None]
    ) -> None:
        """A notice maps to its page while it is on the widget; its later events cannot change the page."""
        kept = sorted((s, page) for s, page in after.items() if page is not None and before.get(s) != page)
        gone = sorted(stream for stream, page in after.items() if page is None and before.get(stream) is not None)
        if kept:
            await conn.executemany(
                "INSERT INTO widget_history_notices (id, status_page_id) VALUES ($1, $2)"
                " ON CONFLICT (id) DO UPDATE SET status_page_id = EXCLUDED.status_page_id",
                kept,
            )
        if gone:
            await conn.execute("DELETE FROM widget_history_notices WHERE id = ANY($1::uuid[])", gone)


# The read.


KEY = version_key(NAME, WidgetHistory.version)
"""The checkpoint name of this code's version (projections/versions.py)."""


@dataclass(frozen=True)
class AsOfCost:
    """What one `as_of` read folded, for tests and the bench: it must not grow with the log."""

    position: int
    snapshot: int
    indexed: int
    tail: int


async def position_at(conn: asyncpg.Connection, instant: datetime) -> int:
    """The last position recorded at or before `instant` (0 when none): one probe of
    `beacon_events_recorded_position_idx`."""
    position = await conn.fetchval(
        "SELECT notification_id FROM beacon_events WHERE recorded_at <= $1"
        " ORDER BY recorded_at DESC, notification_id DESC LIMIT 1",
        instant,
    )
    return int(position or 0)


async def documents_as_of(
    conn: asyncpg.Connection, status_page_id: str, as_of: datetime
) -> tuple[dict[str, bytes] | None, AsOfCost]:
    """`public_widget.documents_as_of` (same answer, byte for byte) at the cost of the page's events since
    its latest valid snapshot. Runs in one read-only repeatable-read transaction, so the checkpoint, the
    index and the snapshots agree."""
    try:
        ulid_to_uuid(status_page_id)
    except ValueError:
        return None, AsOfCost(0, 0, 0, 0)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        position = await position_at(conn, as_of)
        checkpoint = int(
            await conn.fetchval("SELECT position FROM beacon_projection_checkpoints WHERE name = $1", KEY) or 0
        )
        indexed_to = min(position, checkpoint)
        snapshot = await conn.fetchrow(
            "SELECT position, state FROM widget_history_snapshots"
            " WHERE status_page_id = $1 AND position <= $2 AND version = $3 ORDER BY position DESC LIMIT 1",
            status_page_id,
            indexed_to,
            STATE_VERSION,
        )
        state = decode_state(snapshot["state"]) if snapshot is not None else WidgetState()
        start = snapshot["position"] if snapshot is not None else 0
        skipped: set[Any] = set()
        folded = await indexed_events(conn, status_page_id, start, indexed_to)
        for record in folded:
            fold_record(state, record, status_page_id, skipped)
        tail = 0
        after = indexed_to
        while after < position:  # the log the projection has not indexed yet, folded as the full fold does
            rows = await conn.fetch(
                f"SELECT {_EVENT_COLUMNS} FROM beacon_events AS e WHERE e.notification_id > $1"
                " AND e.notification_id <= $2 ORDER BY e.notification_id LIMIT $3",
                after,
                position,
                TAIL_PAGE,
            )
            if not rows:
                break
            for row in rows:
                fold_record(state, _recorded(row), status_page_id, skipped)
            tail += len(rows)
            after = rows[-1]["position"]
        page = state.pages.get(status_page_id)
        names = await component_names_at(conn, component_ids(parse_structure(page.items)), position) if page else {}
        # Not indexed per page (it concerns every page): one probe of its own stream instead.
        state.base_url = await base_url_at(conn, position)
    cost = AsOfCost(position, start, len(folded), tail)
    return documents_of(state, status_page_id, names), cost


async def component_names_at(conn: asyncpg.Connection, ids: Sequence[str], position: int) -> dict[str, str]:
    """Each component's name as of `position`: the one its last `Created` or `Updated` gave it."""
    if not ids:
        return {}
    rows = await conn.fetch(
        f"SELECT DISTINCT ON (e.originator_id) {_EVENT_COLUMNS} FROM beacon_events AS e"
        " WHERE e.originator_id = ANY($1::uuid[]) AND e.notification_id <= $2 AND e.topic = ANY($3::text[])"
        " ORDER BY e.originator_id, e.notification_id DESC",
        [ulid_to_uuid(component_id) for component_id in ids],
        position,
        [Component.Created.TOPIC, Component.Updated.TOPIC],
    )
    names: dict[str, str] = {}
    for row in rows:
        event = _recorded(row).decode()
        assert isinstance(event, Component.Created | Component.Updated)
        names[uuid_to_ulid(row["stream_id"])] = event.name
    return names
