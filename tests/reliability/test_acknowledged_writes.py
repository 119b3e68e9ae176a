"""Issue 6 §1: acknowledged writes survive everything. Sixteen clients post incident updates over HTTP to a
live `beacon serve` while the test keeps killing Beacon's database connections (`pg_terminate_backend`)
and, in the slow variant, restarts Postgres once. Afterwards every update that got a 2xx is in the log
exactly once, every update that got an error or no answer at most once, every stream's versions are
contiguous, and the read models (widget documents included) equal a fresh rebuild from the log."""

from __future__ import annotations

import asyncio
import os
import pwd
import random
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from infra.db import create_pool
from infra.event_store import PostgresEventStore
from infra.settings import Settings
from projections.rebuild import replay_check
from projections.registry import all_projections
from tests.support.http import Keys
from tests.support.live_server import Beacon, running_beacon
from tests.support.polling import projections_behind

WRITERS = 16
INCIDENTS = 8  # two writers per incident: optimistic concurrency is part of the test
WRITES_PER_WRITER = 40  # 2 x 40 updates + the declaration stays under the 100-updates limit
SERVER_ENV = {"BEACON_RATE_LIMIT_PER_MINUTE": "10000000"}


@dataclass(frozen=True)
class Outcome:
    message: str
    status: int | None
    """The HTTP status, or None when no answer came (connection dropped, timeout)."""


@pytest.fixture
async def beacon(server_url: str, template_database: str, tmp_path: Path) -> AsyncIterator[Beacon]:
    async with running_beacon(server_url, template_database, tmp_path, SERVER_ENV) as running:
        yield running


async def test_acknowledged_writes_survive_killed_connections(beacon: Beacon) -> None:
    await _writes_under_fire(beacon, restart=None)


@pytest.mark.slow
async def test_acknowledged_writes_survive_a_postgres_restart(beacon: Beacon, server_url: str) -> None:
    await _writes_under_fire(beacon, restart=await _restarter(server_url))


async def _writes_under_fire(beacon: Beacon, restart: Callable[[], None] | None) -> None:
    publish = Keys.header(beacon.keys.publish)
    async with httpx.AsyncClient(base_url=beacon.url, timeout=30) as http:
        incidents = await _incidents(http, beacon.keys)
        outcomes: list[Outcome] = []
        done = asyncio.Event()
        killer = asyncio.create_task(_killer(beacon.database_url, done, outcomes, restart))
        try:
            await asyncio.gather(
                *(_writer(http, n, incidents[n % INCIDENTS], publish, outcomes) for n in range(WRITERS))
            )
        finally:
            done.set()
            kills, restarted = await killer
        # The fire is over: Beacon takes writes again by itself (a pooled connection killed in the last
        # round may still fail one request), and reads reflect them at once.
        for attempt in range(10):
            message = f"after the fire ({attempt})"
            body = {"status_page_incident_id": incidents[0], "message": message, "notify_subscribers": False}
            after = await http.post("/v2/status_page_incident_updates", json=body, headers=publish)
            outcomes.append(Outcome(message, after.status_code))
            if after.status_code == 201:
                break
            await asyncio.sleep(0.2)
        assert after.status_code == 201, after.text
        shown = await http.get(f"/v2/status_page_incidents/{incidents[0]}", headers=publish)
        assert shown.json()["status_page_incident"]["updates"][-1]["message"] == message
    statuses = Counter(outcome.status for outcome in outcomes)
    acknowledged = {o.message for o in outcomes if o.status is not None and 200 <= o.status < 300}
    unacknowledged = {o.message for o in outcomes} - acknowledged
    print(f"statuses: {dict(statuses)}; connections killed: {kills}; postgres restarted: {restarted}")
    assert restart is None or restarted, "the run ended before Postgres was restarted"
    assert kills > 0

    pool = await create_pool(beacon.database_url, Settings(database_url=beacon.database_url))  # as the app's
    try:
        logged = await _logged_update_messages(pool)
        lost = acknowledged - set(logged)
        print(
            f"writes attempted {len(outcomes)}, acknowledged {len(acknowledged)}, lost {len(lost)}; "
            f"unacknowledged {len(unacknowledged)}, of which recorded {len(unacknowledged & set(logged))}"
        )
        assert not lost, sorted(lost)[:10]
        assert all(logged[message] == 1 for message in acknowledged)
        assert all(logged.get(message, 0) <= 1 for message in unacknowledged)
        assert set(logged) <= acknowledged | unacknowledged  # nothing appeared that nobody sent
        gaps = await pool.fetch(
            """SELECT originator_id, count(*) AS events, max(originator_version) AS last
               FROM beacon_events GROUP BY originator_id
               HAVING min(originator_version) <> 1 OR max(originator_version) <> count(*)"""
        )
        assert not gaps, gaps
        await _wait_until_projected(pool)
        _, differences = await replay_check(pool, all_projections(), "beacon_rebuild_check")
        assert not differences, "\n".join(d.describe() for d in differences)
    finally:
        await pool.close()


async def _incidents(http: httpx.AsyncClient, keys: Keys) -> list[str]:
    page = await http.post("/v2/status_pages", json={"name": "Fire", "slug": "fire"}, headers=Keys.header(keys.admin))
    assert page.status_code == 201, page.text
    page_id = page.json()["status_page"]["id"]
    ids = []
    for n in range(INCIDENTS):
        body = {
            "idempotency_key": f"incident-{n}",
            "status_page_id": page_id,
            "name": f"Incident {n}",
            "message": f"incident {n} declared",
            "incident_status": "investigating",
            "notify_subscribers": False,
        }
        created = await http.post("/v2/status_page_incidents", json=body, headers=Keys.header(keys.publish))
        assert created.status_code == 201, created.text
        ids.append(created.json()["status_page_incident"]["id"])
    return ids


async def _writer(
    http: httpx.AsyncClient, n: int, incident_id: str, headers: dict[str, str], outcomes: list[Outcome]
) -> None:
    for i in range(WRITES_PER_WRITER):
        message = f"writer {n} update {i}"
        body = {"status_page_incident_id": incident_id, "message": message, "notify_subscribers": False}
        try:
            response = await http.post("/v2/status_page_incident_updates", json=body, headers=headers)
        except httpx.TransportError:
            outcomes.append(Outcome(message, None))
            continue
        if response.status_code != 201:
            # A refusal is the envelope and never a stack trace, whatever broke underneath.
            assert response.json()["status"] == response.status_code, response.text
        outcomes.append(Outcome(message, response.status_code))


async def _killer(
    database_url: str, done: asyncio.Event, outcomes: list[Outcome], restart: Callable[[], None] | None
) -> tuple[int, bool]:
    """Terminate every Beacon connection to this database every 100-300 ms; once half the writes have an
    outcome, restart Postgres (when asked). Returns (connections killed, restarted)."""
    kills, restarted = 0, False
    conn: asyncpg.Connection | None = None
    while not done.is_set():
        await asyncio.sleep(random.uniform(0.1, 0.3))
        if restart is not None and not restarted and len(outcomes) >= WRITERS * WRITES_PER_WRITER // 2:
            if conn is not None:
                await conn.close()
                conn = None
            await asyncio.to_thread(restart)
            restarted = True
            continue
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(database_url)
            kills += await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'beacon'"
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            conn = None  # Postgres is restarting; try again next round
    if conn is not None:
        await conn.close()
    return kills, restarted


async def _logged_update_messages(pool: asyncpg.Pool) -> Counter[str]:
    """How many times each update message is in the log (incident declarations excluded)."""
    store = PostgresEventStore(pool)
    messages: Counter[str] = Counter()
    after = 0
    while events := await store.read_all(after=after, limit=1000):
        for recorded in events:
            if recorded.topic == "beacon.Incident.UpdatePublished":
                messages[recorded.decode().message] += 1  # type: ignore[attr-defined]
        after = events[-1].position
    return messages


async def _wait_until_projected(pool: asyncpg.Pool, timeout: float = 30.0) -> None:
    """The live worker catches up by itself after the fire; give it time, then compare."""
    deadline = time.monotonic() + timeout
    while True:
        head, behind = await projections_behind(pool)
        if not behind:
            return
        assert time.monotonic() < deadline, f"projections still behind {head}: {sorted(behind)}"
        await asyncio.sleep(0.1)


async def _restarter(server_url: str) -> Callable[[], None]:
    """How to restart the Postgres the tests use: the system cluster on 127.0.0.1:5432, or the embedded
    server through its own pg_ctl. Skips the test for any other server (it may not be ours to restart)."""
    conn = await asyncpg.connect(server_url)
    try:
        data_directory = Path(await conn.fetchval("SHOW data_directory"))
        major = int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()
    parts = urlsplit(server_url)
    if parts.hostname == "127.0.0.1" and (parts.port or 5432) == 5432:
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", str(major), "main", "restart"]

        def restart_system() -> None:
            subprocess.run(command, check=True, capture_output=True, timeout=120)

        return restart_system
    if "host=/" in parts.query:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # the embedded server's binaries

        args = ["-w", "-m", "fast", "-l", str(data_directory / "log"), "restart"]

        def restart_embedded() -> None:
            owner = pwd.getpwuid(data_directory.stat().st_uid).pw_name  # pgserver runs it as its own user
            user = owner if os.geteuid() == 0 and owner != "root" else None
            pg_ctl(args, pgdata=data_directory, user=user, timeout=120)

        return restart_embedded
    pytest.skip(f"not restarting a Postgres this suite does not own ({parts.hostname}:{parts.port})")
