"""Time travel by index and snapshot (docs/adr/0004-time-travel-index-and-snapshots.md): an `as_of` read of a
page's widget, started from the page's latest valid snapshot and folded over that page's indexed events
only, gives the bytes the live widget served then, on a generated log of the realistic mix; a snapshot
of another version is ignored, never trusted; and the history rebuilds from zero to the same tables."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from bench.replay import copy_mixed_log
from infra.event_store import PostgresEventStore, RecordedEvent
from projections import widget_history
from projections.public_widget import PublicWidget
from projections.public_widget import documents_as_of as full_fold
from projections.rebuild import rebuild_live
from projections.runner import catch_up, catch_up_many, ensure_tables
from projections.widget_history import WidgetHistory, documents_as_of

HISTORY = WidgetHistory()


@dataclass
class Served:
    """What the live widget served: for each page, its documents after each event that touched it."""

    records: list[RecordedEvent] = field(default_factory=list)
    changes: dict[str, list[tuple[int, dict[str, bytes]]]] = field(default_factory=lambda: defaultdict(list))

    def at(self, page_id: str, instant: datetime) -> dict[str, bytes] | None:
        """The page's documents served right after the last event recorded at or before `instant`."""
        position = max((r.position for r in self.records if r.recorded_at <= instant), default=0)
        documents = None
        for changed_at, served in self.changes[page_id]:
            if changed_at <= position:
                documents = served
        return documents


async def write_and_serve(pool: asyncpg.Pool, events: int, *, seed: int) -> Served:
    """A generated log, and the live widget's documents recorded after each of its events (the live
    projection applied one event at a time, as a quiet production system would)."""
    await copy_mixed_log(pool, events, seed=seed)
    store = PostgresEventStore(pool)
    served = Served(await store.read_all(0, 1_000_000))
    widget = PublicWidget()
    async with pool.acquire() as conn:
        await ensure_tables(conn, [widget, HISTORY])
        for record in served.records:
            await catch_up_many(conn, store, [widget], batch_size=1, up_to={widget.name: record.position})
            rows = await conn.fetch(
                "SELECT status_page_id, sub_page_slug, body FROM widget_documents WHERE position = $1",
                record.position,
            )
            for page_id in {row["status_page_id"] for row in rows}:
                page_rows = [row for row in rows if row["status_page_id"] == page_id]
                documents = {row["sub_page_slug"]: row["body"] for row in page_rows}
                served.changes[page_id].append((record.position, documents))
    return served


def instants(served: Served, count: int, rng: random.Random) -> list[datetime]:
    """Random instants of the log: at an event's `recorded_at`, and just before the next event."""
    picked = rng.sample(served.records, count)
    return [r.recorded_at + timedelta(microseconds=rng.choice([0, -1, 1])) for r in picked]


async def test_as_of_at_random_instants_is_what_the_live_widget_served(pool: asyncpg.Pool) -> None:
    served = await write_and_serve(pool, 900, seed=13)
    store = PostgresEventStore(pool)
    rng = random.Random(13)
    async with pool.acquire() as conn:
        # The history has indexed half the log: the rest is folded from the log past its checkpoint.
        half = served.records[len(served.records) // 2].position
        await catch_up_many(conn, store, [HISTORY], up_to={HISTORY.name: half})
        tails = 0
        for instant in instants(served, 15, rng):
            for page_id in served.changes:
                documents, cost = await documents_as_of(conn, page_id, instant)
                assert documents == served.at(page_id, instant), (page_id, instant)
                tails += cost.tail
        assert tails > 0

        await catch_up(conn, store, HISTORY)
        snapshots = await conn.fetchval("SELECT count(*) FROM widget_history_snapshots")
        assert snapshots >= 8  # several per page: the reads below start from them
        for instant in instants(served, 20, rng):
            for page_id in served.changes:
                documents, cost = await documents_as_of(conn, page_id, instant)
                expected = served.at(page_id, instant)
                assert documents == expected, (page_id, instant)
                assert documents == await full_fold(store, page_id, instant)
                assert cost.tail == 0
                assert cost.indexed <= widget_history.SNAPSHOT_EVERY


async def history_tables(conn: asyncpg.Connection) -> dict[str, list[Any]]:
    return {
        table: [tuple(row) for row in await conn.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")]
        for table in HISTORY.tables
    }


async def test_snapshots_of_another_version_are_ignored_and_the_history_rebuilds_from_zero(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(widget_history, "SNAPSHOT_EVERY", 8)
    served = await write_and_serve(pool, 300, seed=14)
    store = PostgresEventStore(pool)
    page_id = max(served.changes, key=lambda page: len(served.changes[page]))
    instant = served.records[-1].recorded_at
    async with pool.acquire() as conn:
        await catch_up(conn, store, HISTORY)
        expected = served.at(page_id, instant)
        documents, cost = await documents_as_of(conn, page_id, instant)
        assert documents == expected and cost.snapshot > 0

        # A snapshot of this version is trusted: tampering with it shows (so the reads below do use them).
        before = await history_tables(conn)
        tampered = b'{"page":null,"notices":[]}'
        await conn.execute("UPDATE widget_history_snapshots SET state = $1", tampered)
        assert (await documents_as_of(conn, page_id, instant))[0] is None

        # The same tampered snapshots under another version are ignored: the page's index is folded from zero.
        await conn.execute("UPDATE widget_history_snapshots SET version = 'an older renderer'")
        documents, cost = await documents_as_of(conn, page_id, instant)
        assert documents == expected and cost.snapshot == 0

        # A code change moves the version: every stored snapshot (and page state) stops being trusted.
        await conn.execute("UPDATE widget_history_snapshots SET version = $1", widget_history.STATE_VERSION)
        monkeypatch.setattr(widget_history, "STATE_VERSION", "2-a-changed-fold")
        documents, cost = await documents_as_of(conn, page_id, instant)
        assert documents == expected and cost.snapshot == 0
        monkeypatch.undo()
        monkeypatch.setattr(widget_history, "SNAPSHOT_EVERY", 8)

        # Rebuilt from zero, the tables are what the live projection wrote, and reads agree again.
        await rebuild_live(pool, HISTORY.name, [HISTORY])
        assert await history_tables(conn) == before
        documents, cost = await documents_as_of(conn, page_id, instant)
        assert documents == expected and cost.snapshot > 0


async def test_page_state_folded_by_other_code_is_folded_again_from_the_index(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(widget_history, "SNAPSHOT_EVERY", 8)
    served = await write_and_serve(pool, 300, seed=15)
    store = PostgresEventStore(pool)
    middle = len(served.records) // 2
    half = served.records[middle].position
    async with pool.acquire() as conn:
        await catch_up_many(conn, store, [HISTORY], up_to={HISTORY.name: half})
        # A page state written by other code (here: garbage under an old version) must not leak into
        # the snapshots taken after it.
        await conn.execute("UPDATE widget_history_pages SET version = 'old', state = $1", b'{"page":null,"notices":[]}')
        await catch_up(conn, store, HISTORY)
        await conn.execute("DELETE FROM widget_history_snapshots WHERE position <= $1", half)
        for record in served.records[middle::7]:
            for page_id in served.changes:
                documents, _ = await documents_as_of(conn, page_id, record.recorded_at)
                assert documents == served.at(page_id, record.recorded_at), (page_id, record.position)
