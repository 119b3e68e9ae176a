"""The audit feed at scale (docs/auditing.md#the-audit-feed-at-scale): its `stream_id`, `since` and `until`
filters are index ranges walked in keyset pages, and paging through a selection returns exactly what one
unpaged scan of the log would."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import asyncpg

from bench.replay import copy_mixed_log
from infra.audit import Selection, audit_query, iter_audit_pages, position_bounds, read_audit_page
from infra.event_store import PostgresEventStore


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in plan_nodes(child))]


async def explain(conn: asyncpg.Connection, query: str, args: list[Any]) -> list[dict[str, Any]]:
    # The planner would scan a few hundred rows sequentially; what matters is that an index can serve
    # the query in order (no sort), which is what keeps it cheap on millions of rows.
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        await conn.execute("SET LOCAL enable_bitmapscan = off")
        [row] = await conn.fetch("EXPLAIN (FORMAT JSON) " + query, *args)
    return plan_nodes(json.loads(row[0])[0]["Plan"])


async def test_the_stream_id_filter_walks_its_index_in_position_order(pool: asyncpg.Pool) -> None:
    await copy_mixed_log(pool, 300, seed=3)
    records = await PostgresEventStore(pool).read_all(0, 10_000)
    stream = records[len(records) // 2].stream_id
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE beacon_events")
        query, args = audit_query(Selection(after=0, stream_id=stream), None, 100)
        nodes = await explain(conn, query, args)
    scans = [node for node in nodes if "Index Name" in node]
    assert [node["Index Name"] for node in scans] == ["beacon_events_stream_position_idx"], nodes
    assert "originator_id" in scans[0]["Index Cond"]
    assert not [node for node in nodes if node["Node Type"] == "Sort"]


async def test_time_filters_become_position_ranges_and_pages_match_an_unpaged_scan(pool: asyncpg.Pool) -> None:
    await copy_mixed_log(pool, 400, seed=4)
    records = await PostgresEventStore(pool).read_all(0, 10_000)
    since = records[100].recorded_at
    until = records[300].recorded_at + timedelta(microseconds=1)
    stream = records[150].stream_id
    for selection in (
        Selection(since=since, until=until),
        Selection(after=120, since=since),
        Selection(until=until),
        Selection(stream_id=stream, since=since),
    ):
        expected = [
            r.position
            for r in records
            if r.position > selection.after
            and (selection.stream_id is None or r.stream_id == selection.stream_id)
            and (selection.since is None or r.recorded_at >= selection.since)
            and (selection.until is None or r.recorded_at < selection.until)
        ]
        paged = [e.position async for page in iter_audit_pages(pool, selection, page_size=7) for e in page]
        assert paged == expected, selection
        assert [e.position for e in await read_audit_page(pool, selection, 5)] == expected[:5]

    async with pool.acquire() as conn:
        after, through = await position_bounds(conn, Selection(since=since, until=until))
    assert records[after].recorded_at >= since > records[after - 1].recorded_at
    assert through is not None and records[through - 1].recorded_at < until <= records[through].recorded_at
