"""The auditor's example (`docs/examples/independent_replay.py`) runs as documented against a real log:
it verifies the chain with its own hash code, reads every event with the stock library, and reconstructs
an incident with its own classes; on a tampered log it exits 1 naming the position."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg

from domain.base import Actor, CommandContext, save
from domain.incident import Incident
from infra.event_store import PostgresEventStore
from infra.ids import new_ulid, uuid_to_ulid
from tests.support.builders import T0

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "examples" / "independent_replay.py"
PUBLISHER = Actor(type="api_key", id="01KEYPUBLISHER", name="ops bot")


async def _incident_story(store: PostgresEventStore) -> str:
    page_id, login = new_ulid(T0), new_ulid(T0)
    incident = Incident.declare(
        id=uuid4(), status_page_id=page_id, page_components=frozenset({login}), name="Login failing",
        message="Investigating errors", status="investigating", component_statuses={login: "partial_outage"},
        notify_subscribers=True, update_id=new_ulid(T0), at=T0, by=PUBLISHER,
    )
    await save(store, incident, CommandContext(now=T0, actor=PUBLISHER, request_id="r1"))
    incident.publish_update(
        update_id=new_ulid(T0), message="Fix deployed", status="monitoring", component_statuses=None,
        notify_subscribers=True, page_components=frozenset({login}), at=T0 + timedelta(minutes=20), by=PUBLISHER,
    )
    incident.rename(name="Login failing in EU", at=T0 + timedelta(minutes=21), by=PUBLISHER)
    await save(store, incident, CommandContext(now=T0 + timedelta(minutes=21), actor=PUBLISHER, request_id="r2"))
    incident.publish_update(
        update_id=new_ulid(T0), message="All good", status="resolved", component_statuses=None,
        notify_subscribers=True, page_components=frozenset({login}), at=T0 + timedelta(hours=1), by=PUBLISHER,
    )
    await save(store, incident, CommandContext(now=T0 + timedelta(hours=1), actor=PUBLISHER, request_id="r3"))
    return uuid_to_ulid(incident.id)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # Its own process, started from outside the repository: nothing of Beacon's is imported by the script.
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, cwd="/", check=False
    )


async def test_the_example_reconstructs_an_incident_with_the_stock_library(
    pool: asyncpg.Pool, database_url: str
) -> None:
    incident_id = await _incident_story(PostgresEventStore(pool))

    done = await asyncio.to_thread(_run, "--database-url", database_url, "--incident", incident_id)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    head = await pool.fetchval("SELECT hash FROM beacon_events ORDER BY notification_id DESC LIMIT 1")
    assert lines[0] == f"hash chain intact: 4 events, head {head.hex()}"
    assert lines[1] == (
        'read 4 events with the library: {"beacon.Incident.Declared": 1, "beacon.Incident.Renamed": 1, '
        '"beacon.Incident.UpdatePublished": 2}'
    )
    assert lines[2] == f"incident {incident_id} (version 4): 'Login failing in EU', resolved"
    assert lines[3:6] == [
        "  2026-01-28 10:00 ops bot: declared 'Login failing', investigating: Investigating errors",
        "  2026-01-28 10:20 ops bot: monitoring: Fix deployed",
        "  2026-01-28 10:21 ops bot: renamed 'Login failing' -> 'Login failing in EU'",
    ]
    # Resolving put the component back to operational, as Beacon recorded it.
    assert lines[6].startswith("  2026-01-28 11:00 ops bot: resolved: All good [")
    assert lines[6].endswith("=operational]")
    assert len(lines) == 7


async def test_the_example_refuses_a_tampered_log(pool: asyncpg.Pool, database_url: str) -> None:
    await _incident_story(PostgresEventStore(pool))
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SET session_replication_role = replica")
        position = await conn.fetchval(
            "SELECT notification_id FROM beacon_events ORDER BY notification_id OFFSET 1 LIMIT 1"
        )
        await conn.execute(
            "UPDATE beacon_events SET state = convert_to(replace(convert_from(state, 'UTF8'), 'Fix', 'No fix'), 'UTF8')"
            " WHERE notification_id = $1",
            position,
        )
    finally:
        await conn.close()

    done = await asyncio.to_thread(_run, "--database-url", database_url)

    assert done.returncode == 1
    assert done.stdout.startswith(f"hash chain BROKEN at position {position} ")
