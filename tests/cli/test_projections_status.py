"""`beacon projections status` as an operator runs it (a real subprocess): each projection's checkpoint,
the log's head, the lag in events and seconds, whether writes wait for it, and a stopped one with its
position and error — as a table, or as JSON with `--json` — exiting 0 either way."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import asyncpg

from domain.base import save
from infra.event_store import PostgresEventStore
from projections.registry import all_projections
from projections.runner import ProjectionStop, ensure_tables, record_stops
from tests.support.builders import context_at
from tests.support.live_server import BEACON, operator_env
from tests.support.tally import new_tally

STOPPED = "incident_list"
CAUGHT_UP = "status_page_catalog"
ERROR = "projection incident_list stopped at position 2 (test.Tally.Created on …): ValueError('boom')"


def status(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = operator_env(database_url, tmp_path)
    command = [BEACON, "projections", "status", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)


async def prepare(database_url: str) -> int:
    """Three events in the log; one projection caught up, one stopped at the second event, the rest at 0."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        store = PostgresEventStore(pool)
        for n in range(3):
            await save(store, new_tally(f"tally {n}"), context_at(n))
        head = await store.max_position()
        async with pool.acquire() as conn:
            await ensure_tables(conn, all_projections())
            await conn.execute(
                "INSERT INTO beacon_projection_checkpoints (name, position) VALUES ($1, $3), ($2, $4)",
                CAUGHT_UP,
                STOPPED,
                head,
                head - 2,
            )
            await record_stops(conn, [ProjectionStop(STOPPED, head - 1, ERROR)])
    finally:
        await pool.close()
    return head


async def test_projections_status_prints_a_table_and_json_and_exits_0_with_a_stopped_projection(
    database_url: str, tmp_path: Path
) -> None:
    head = await prepare(database_url)
    names = [p.name for p in all_projections()]

    table = status(database_url, tmp_path)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["projection", "checkpoint", "head", "lag", "lag", "s", "writes", "wait", "state"]
    by_name = {row.split()[0]: row.split() for row in rows[: len(names)]}
    assert list(by_name) == names
    assert by_name[CAUGHT_UP][1:4] == [str(head), str(head), "0"]
    assert by_name[CAUGHT_UP][5:] == ["yes", "running"]
    assert by_name[STOPPED][1:4] == [str(head - 2), str(head), "2"]
    assert float(by_name[STOPPED][4]) > 0  # the oldest event it has not applied is that old
    assert by_name[STOPPED][6:] == ["STOPPED", "at", str(head - 1)]
    assert rows[len(names) :] == [f"{STOPPED}: {ERROR}"]

    as_json = status(database_url, tmp_path, "--json")
    assert as_json.returncode == 0, as_json.stderr
    report = {item["name"]: item for item in json.loads(as_json.stdout)}
    assert list(report) == names
    assert report[STOPPED] | {"lag_seconds": 0} == {
        "name": STOPPED,
        "checkpoint": head - 2,
        "head": head,
        "lag": 2,
        "active": None,  # this command runs no projection
        "error": ERROR,
        "stopped": True,
        "failed_position": head - 1,
        "lag_seconds": 0,
        "writes_wait": True,
    }
    assert report[CAUGHT_UP]["stopped"] is False and report[CAUGHT_UP]["lag"] == 0
    assert {name: item["writes_wait"] for name, item in report.items()} == {
        p.name: p.writes_wait for p in all_projections()
    }
