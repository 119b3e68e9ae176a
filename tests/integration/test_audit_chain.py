"""Tamper evidence (docs/architecture.md#audit): the hash chain verifies on a clean log, and a row edited,
deleted or moved by a superuser who slipped past the append-only trigger breaks it at a position
`verify_chain` names.
The chain is recomputed in Python, and a test holds that recomputation to the SQL that wrote it."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from domain.base import Actor, CommandContext, save
from infra.audit import LogRow, chain_hash, export_ndjson, verify_chain
from infra.event_store import PostgresEventStore
from infra.ids import uuid_to_ulid
from tests.support.builders import OPERATOR, T0
from tests.support.tally import new_tally

UNICODE_ACTOR = Actor(type="api_key", id="01KEYÜ", name='Zoë "ops" \\ bot\n🚀')


async def _write_log(store: PostgresEventStore) -> list[int]:
    """Three interleaved streams, eleven events, some appended several at a time; returns positions."""
    tallies = [new_tally(f"tally {index}", minutes=index) for index in range(3)]
    positions: list[int] = []
    for minute, tally in enumerate(tallies):
        tally.mark("opened", at=T0 + timedelta(minutes=minute), by=OPERATOR)
        context = CommandContext(now=T0 + timedelta(minutes=minute, microseconds=minute * 7), actor=OPERATOR)
        positions += (await save(store, tally, context)).positions
    for round_ in range(5):
        tally = tallies[round_ % 3]
        tally.mark(f"mark {round_}", at=T0 + timedelta(hours=1, minutes=round_), by=UNICODE_ACTOR)
        actor = UNICODE_ACTOR if round_ % 2 else OPERATOR
        context = CommandContext(
            now=T0 + timedelta(hours=1, minutes=round_), actor=actor, request_id=f"req-{round_}" if round_ else None
        )
        positions += (await save(store, tally, context)).positions
    return positions


@pytest.fixture
async def superuser(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection that bypasses the append-only triggers, as a malicious superuser would."""
    conn = await asyncpg.connect(database_url)
    await conn.execute("SET session_replication_role = replica")
    try:
        yield conn
    finally:
        await conn.close()


async def test_a_clean_log_verifies_to_its_head_with_progress(pool: Any) -> None:
    positions = await _write_log(PostgresEventStore(pool))
    seen: list[tuple[int, int, int]] = []

    report = await verify_chain(pool, progress=lambda *args: seen.append(args), page_size=4)

    assert report.ok and report.broken is None
    assert (report.checked, report.last_position) == (len(positions), positions[-1])
    head = await pool.fetchval("SELECT hash FROM beacon_events ORDER BY notification_id DESC LIMIT 1")
    assert report.head_hash == head
    assert seen[-1] == (len(positions), positions[-1], positions[-1])
    assert [checked for checked, _, _ in seen] == [4, 8, 11]


async def test_an_empty_log_verifies() -> None:
    class Empty:
        async def fetch(self, query: str, *args: Any) -> list[Any]:
            return []

        async def fetchrow(self, query: str, *args: Any) -> Any:
            return None

        async def fetchval(self, query: str, *args: Any) -> Any:
            return 0

    report = await verify_chain(Empty())
    assert report.ok and report.checked == 0 and report.head_hash is None


async def test_the_python_hash_is_the_sql_hash_of_every_real_row(pool: Any) -> None:
    await _write_log(PostgresEventStore(pool))
    rows = await pool.fetch(
        "SELECT notification_id, originator_id, originator_version, topic, state, stream_type, recorded_at,"
        " actor::text AS actor, request_id, hash,"
        " beacon_event_hash(lag(hash) OVER w, notification_id, originator_id, originator_version, topic,"
        "                   state, stream_type, recorded_at, actor, request_id) AS sql_hash"
        " FROM beacon_events WINDOW w AS (ORDER BY notification_id) ORDER BY notification_id"
    )
    previous: bytes | None = None
    for record in rows:
        row = LogRow.from_record(record)
        assert chain_hash(previous, row) == record["sql_hash"] == row.hash
        previous = row.hash
    assert any("🚀" in record["actor"] for record in rows) and any(r["request_id"] is None for r in rows)


async def _row(conn: asyncpg.Connection, position: int) -> asyncpg.Record:
    return await conn.fetchrow(
        "SELECT originator_id, originator_version, stream_type FROM beacon_events WHERE notification_id = $1",
        position,
    )


async def test_an_edited_payload_is_named_by_its_position(pool: Any, superuser: asyncpg.Connection) -> None:
    positions = await _write_log(PostgresEventStore(pool))
    target = positions[8]
    row = await _row(superuser, target)
    changed = await superuser.execute(
        "UPDATE beacon_events SET state = convert_to(replace(convert_from(state, 'UTF8'), 'mark 2', 'mark 9'), 'UTF8')"
        " WHERE notification_id = $1 AND position('mark 2' in convert_from(state, 'UTF8')) > 0",
        target,
    )
    assert changed == "UPDATE 1"

    report = await verify_chain(pool)

    assert report.broken is not None
    assert (report.broken.position, report.broken.problem) == (target, "edited")
    assert (report.broken.stream_id, report.broken.version) == (row["originator_id"], row["originator_version"])
    assert report.last_position == positions[7] and report.checked == 8
    assert f"position {target}" in str(report.broken) and uuid_to_ulid(row["originator_id"]) in str(report.broken)


async def test_an_edited_actor_breaks_the_chain_too(pool: Any, superuser: asyncpg.Connection) -> None:
    positions = await _write_log(PostgresEventStore(pool))
    await superuser.execute(
        """UPDATE beacon_events SET actor = '{"type": "system"}' WHERE notification_id = $1""", positions[7]
    )
    report = await verify_chain(pool)
    assert report.broken is not None and report.broken.position == positions[7]


async def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(pool: Any, superuser: asyncpg.Connection) -> None:
    """An attacker who knows the algorithm rewrites one row and its hash: the row after it no longer chains."""
    positions = await _write_log(PostgresEventStore(pool))
    target = positions[3]
    await superuser.execute(
        "UPDATE beacon_events e SET state = convert_to('{\"label\":\"nothing happened\"}', 'UTF8') "
        "WHERE notification_id = $1",
        target,
    )
    await superuser.execute(
        "UPDATE beacon_events e SET hash = beacon_event_hash("
        "  (SELECT p.hash FROM beacon_events p WHERE p.notification_id < e.notification_id"
        "   ORDER BY p.notification_id DESC LIMIT 1),"
        "  e.notification_id, e.originator_id, e.originator_version, e.topic, e.state, e.stream_type,"
        "  e.recorded_at, e.actor, e.request_id) WHERE notification_id = $1",
        target,
    )
    report = await verify_chain(pool)
    assert report.broken is not None
    assert report.broken.position == positions[4] and report.last_position == target


@pytest.mark.parametrize("which", ["another stream's", "same stream's"])
async def test_a_deleted_row_is_named_by_the_position_after_it(
    pool: Any, superuser: asyncpg.Connection, which: str
) -> None:
    positions = await _write_log(PostgresEventStore(pool))
    # positions[6..10] alternate streams 0,1,2,0,1; positions[0..5] are streams 0,0,1,1,2,2 (Created, Marked).
    deleted, following = (positions[6], positions[7]) if which == "another stream's" else (positions[0], positions[1])
    await superuser.execute("DELETE FROM beacon_events WHERE notification_id = $1", deleted)

    report = await verify_chain(pool)

    assert report.broken is not None
    assert (report.broken.position, report.broken.problem) == (following, "missing_predecessor")
    assert "deleted" in report.broken.detail


async def test_two_swapped_rows_are_named_as_reordered(pool: Any, superuser: asyncpg.Connection) -> None:
    positions = await _write_log(PostgresEventStore(pool))
    first, second = positions[6], positions[7]
    async with superuser.transaction():
        await superuser.execute("UPDATE beacon_events SET notification_id = -1 WHERE notification_id = $1", first)
        await superuser.execute(
            "UPDATE beacon_events SET notification_id = $1 WHERE notification_id = $2", first, second
        )
        await superuser.execute("UPDATE beacon_events SET notification_id = $1 WHERE notification_id = -1", second)

    report = await verify_chain(pool)

    assert report.broken is not None
    assert (report.broken.position, report.broken.problem) == (first, "reordered")
    assert f"recorded at position {second}" in report.broken.detail


async def test_the_export_is_one_json_document_per_event_in_commit_order(pool: Any) -> None:
    positions = await _write_log(PostgresEventStore(pool))
    out = io.BytesIO()

    written = await export_ndjson(pool, out, after=positions[2], page_size=3)

    lines = out.getvalue().decode().splitlines()
    assert written == len(lines) == len(positions) - 3
    events = [json.loads(line) for line in lines]
    assert [event["position"] for event in events] == positions[3:]
    last = events[-1]
    assert set(last) == {
        "position", "stream_id", "stream_type", "version", "type", "recorded_at", "actor", "request_id", "data", "hash"
    }
    assert (last["type"], last["stream_type"], last["request_id"]) == ("test.Tally.Marked", "tally", "req-4")
    at = "2026-01-28T11:04:00.000000Z"
    assert last["data"] == {"label": "mark 4", "by": UNICODE_ACTOR.as_data(), "timestamp": at}
    assert last["recorded_at"] == "2026-01-28T11:04:00.000000Z" and last["actor"] == OPERATOR.as_data()
    stored = await pool.fetchval("SELECT hash FROM beacon_events WHERE notification_id = $1", positions[-1])
    assert last["hash"] == stored.hex()
