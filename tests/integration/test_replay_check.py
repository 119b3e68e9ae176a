"""Every read model can be dropped and rebuilt from the log, byte for byte (docs/architecture.md): after a mixed
scenario the replay check finds the rebuilt tables equal to the live ones; a live row altered by hand is
flagged with its table and rows; a live rebuild repairs it, with or without a running worker."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from bench.replay import write_mixed_log
from domain.base import SYSTEM, CommandContext
from domain.status_page import create_status_page, update_status_page
from infra.event_store import PostgresEventStore, RecordedEvent
from projections.rebuild import RebuildProgress, UnknownProjection, rebuild, rebuild_live, replay_check
from projections.registry import all_projections
from projections.runner import ProjectionRunner, catch_up, ensure_tables

SCRATCH = "beacon_replay_test"


class StreamTally:
    """A small generic read model (events and last position per stream, plus an applied-order log with a
    serial key), so the check is exercised whatever the registry holds."""

    name = "replay_counter"
    writes_wait = True
    tables = ("replay_counter_counts", "replay_counter_seen")
    schema_sql = """
        CREATE TABLE IF NOT EXISTS replay_counter_counts (
            stream_id uuid PRIMARY KEY, events int NOT NULL, last_position bigint NOT NULL
        );
        CREATE TABLE IF NOT EXISTS replay_counter_seen (seq bigserial PRIMARY KEY, position bigint NOT NULL)"""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        self.batches.append([event.position for event in events])
        for event in events:
            await conn.execute(
                "INSERT INTO replay_counter_counts VALUES ($1, 1, $2) ON CONFLICT (stream_id) DO UPDATE"
                " SET events = replay_counter_counts.events + 1, last_position = excluded.last_position",
                event.stream_id,
                event.position,
            )
            await conn.execute("INSERT INTO replay_counter_seen (position) VALUES ($1)", event.position)


def _projections() -> list[Any]:
    return [*all_projections(), StreamTally()]


async def _live(pool: asyncpg.Pool, projections: list[Any], batch_size: int = 500) -> None:
    """Bring every live projection up to date, as the worker would (its default batch size)."""
    store = PostgresEventStore(pool)
    async with pool.acquire() as conn:
        await ensure_tables(conn, projections)
        for projection in projections:
            await catch_up(conn, store, projection, batch_size=batch_size)


@pytest.fixture
async def scenario(pool: asyncpg.Pool) -> list[Any]:
    await write_mixed_log(PostgresEventStore(pool), 1500, seed=11)
    projections = _projections()
    await _live(pool, projections)
    return projections


async def test_a_rebuild_of_a_mixed_log_matches_the_live_tables(pool: asyncpg.Pool, scenario: list[Any]) -> None:
    seen: list[RebuildProgress] = []

    stats, differences = await replay_check(pool, scenario, SCRATCH, progress=seen.append)

    assert differences == []
    end = await pool.fetchval("SELECT max(notification_id) FROM beacon_events")
    assert stats.log_events == await pool.fetchval("SELECT count(*) FROM beacon_events") >= 1500
    assert {p.name for p in scenario} == {progress.projection for progress in seen}
    assert all(progress.end == end for progress in seen) and seen[-1].position == end
    # The scratch schema really holds rebuilt rows (an empty rebuild would compare equal to nothing).
    for projection in scenario:
        for table in projection.tables:
            live = await pool.fetchval(f'SELECT count(*) FROM public."{table}"')
            rebuilt = await pool.fetchval(f'SELECT count(*) FROM "{SCRATCH}"."{table}"')
            assert live == rebuilt


async def test_batch_boundaries_do_not_change_the_read_models(pool: asyncpg.Pool) -> None:
    """The live worker folds the log in whatever batches NOTIFY timing gives it (often one event); the
    rebuild folds it in big ones. The tables must not depend on that."""
    await write_mixed_log(PostgresEventStore(pool), 1500, seed=13)
    projections = _projections()
    await _live(pool, projections, batch_size=97)

    _, differences = await replay_check(pool, projections, SCRATCH)

    assert differences == [], "\n".join(d.describe()[:2000] for d in differences)


async def test_a_hand_altered_read_model_row_is_flagged(pool: asyncpg.Pool, scenario: list[Any]) -> None:
    catalog = next(p for p in scenario if p.name == "status_page_catalog")
    pages_table = next(t for t in catalog.tables if "pages" in t)
    await pool.execute(
        f"UPDATE {pages_table} SET name = 'Hacked' WHERE position = (SELECT min(position) FROM {pages_table})"
    )
    await pool.execute(
        "UPDATE replay_counter_counts SET events = events + 1"
        " WHERE stream_id = (SELECT stream_id FROM replay_counter_counts ORDER BY stream_id LIMIT 1)"
    )

    _, differences = await replay_check(pool, scenario, SCRATCH)

    flagged = {(d.projection, d.table): d for d in differences}
    assert set(flagged) == {("status_page_catalog", pages_table), ("replay_counter", "replay_counter_counts")}
    page = flagged[("status_page_catalog", pages_table)]
    assert (page.only_live, page.only_scratch) == (1, 1)
    assert "Hacked" in page.live_rows[0] and "Hacked" not in page.scratch_rows[0]
    assert "Hacked" in page.describe() and pages_table in page.describe()


async def test_a_widget_document_altered_by_one_byte_is_flagged(pool: asyncpg.Pool, scenario: list[Any]) -> None:
    widget = next((p for p in scenario if p.name == "public_widget"), None)
    if widget is None:
        pytest.skip("no public_widget projection registered")
    documents = next(t for t in widget.tables if "document" in t)
    columns = [
        row["column_name"]
        for row in await pool.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1"
            " AND data_type = 'bytea'",
            documents,
        )
    ]
    assert columns, f"{documents} has no bytes column"
    changed = await pool.execute(
        f"UPDATE {documents} SET {columns[0]} = {columns[0]} || ' '::bytea"
        f" WHERE ctid = (SELECT min(ctid) FROM {documents})"
    )
    assert changed == "UPDATE 1"

    _, differences = await replay_check(pool, scenario, SCRATCH)

    assert [(d.projection, d.table, d.only_live, d.only_scratch) for d in differences] == [
        ("public_widget", documents, 1, 1)
    ]


async def test_rebuild_live_repairs_a_projection_without_a_worker(pool: asyncpg.Pool, scenario: list[Any]) -> None:
    await pool.execute(
        "DELETE FROM replay_counter_counts"
        " WHERE stream_id = (SELECT stream_id FROM replay_counter_counts ORDER BY stream_id LIMIT 1)"
    )
    assert (await replay_check(pool, scenario, SCRATCH))[1] != []

    stats = await rebuild_live(pool, "replay_counter", scenario)

    assert stats.log_events == await pool.fetchval("SELECT count(*) FROM beacon_events")
    assert (await replay_check(pool, scenario, SCRATCH))[1] == []


async def test_rebuild_live_under_a_running_worker_is_moved_in_whole(pool: asyncpg.Pool, scenario: list[Any]) -> None:
    """Blue/green (docs/adr/0006-projection-versions.md): the rebuild folds the log into a shadow schema while the
    worker keeps running the live tables, then moves it in; the worker goes on from the rebuild's checkpoint."""
    counter = next(p for p in scenario if p.name == "replay_counter")
    await pool.execute("UPDATE replay_counter_counts SET events = 0")
    runner = ProjectionRunner(pool, PostgresEventStore(pool), [counter], poll_interval=0.05, batch_size=200)
    await runner.start()
    try:
        while not runner.statuses["replay_counter"].active:
            await asyncio.sleep(0.01)
        stats = await asyncio.wait_for(rebuild_live(pool, "replay_counter", scenario), 60)
        assert runner.statuses["replay_counter"].active and runner.statuses["replay_counter"].error is None
    finally:
        await runner.stop()

    end = await pool.fetchval("SELECT max(notification_id) FROM beacon_events")
    assert stats.positions["replay_counter"] == end
    assert (await replay_check(pool, scenario, SCRATCH))[1] == []
    assert await pool.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'proj_replay_counter%'") == 0


async def test_the_live_projection_moving_on_during_a_check_is_followed(
    pool: asyncpg.Pool, scenario: list[Any]
) -> None:
    """A worker that applies new events while the check runs is not a mismatch: the rebuild follows it."""
    await write_mixed_log(PostgresEventStore(pool), 200, seed=12)  # new events the live tables have not seen
    stats = await rebuild(pool, scenario, SCRATCH)  # scratch now ahead of live
    assert stats.log_events > 0
    _, differences = await replay_check(pool, scenario, SCRATCH)
    assert differences == []  # compared at the live checkpoints, not at the end of the log


async def test_an_unknown_projection_name_is_refused(pool: asyncpg.Pool) -> None:
    with pytest.raises(UnknownProjection, match="no projection named 'nope'"):
        await rebuild_live(pool, "nope", _projections())


async def test_a_change_the_widget_does_not_show_leaves_no_difference(pool: asyncpg.Pool) -> None:
    """A description edit touches the page but not its widget bytes; the document's position must
    still match a rebuild that sees both events in one batch."""
    store = PostgresEventStore(pool)
    context = CommandContext(now=datetime(2026, 1, 28, tzinfo=UTC), actor=SYSTEM)
    page_id = uuid4()
    await create_status_page(store, page_id=page_id, name="Acme", slug="acme", context=context)
    await update_status_page(store, page_id=page_id, name="Acme", description="Now with words", context=context)
    projections = _projections()
    await _live(pool, projections, batch_size=1)

    _, differences = await replay_check(pool, projections, SCRATCH)

    assert differences == [], "\n".join(d.describe()[:2000] for d in differences)
