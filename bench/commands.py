"""Commands per second over HTTP against a real `beacon serve`, against the store's raw append rate
measured in the same run on the same server (issue 3). Goal: commands/s ÷ raw appends/s >= 0.3.

16 concurrent HTTP clients each run incidents through their life, for the given number of seconds:
declare one on a page with components, post updates to it (each naming a component status), resolve
it, declare the next. So at most 16 incidents are ongoing at once, as on a real page; an earlier
version never resolved them, and within ten seconds the page showed over 300 ongoing incidents, which
measured the widget re-rendering an ever larger document rather than the command path.
Every command is the whole production path: auth, rate limit, validation, load–decide–append
and read-your-writes (the answer waits for the read models, DESIGN D6). Then 16 concurrent writers call
`PostgresEventStore.append` directly for as long, one event per call.

    .venv/bin/python -m bench.commands [seconds]

Uses DATABASE_URL, or the embedded server when unset; works in its own scratch database, dropped at
the end. The per-key rate limit is raised for the run (the bench measures throughput, not the limit).
Each client drives its own keep-alive connection through bench/http_client.py, a bare-bytes client: on this
2-core machine the load generator's CPU is CPU the server under test lacks, and httpx spent ~1.1 ms
of it per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg

from bench.append import NOW, Counter, Step, _rate, _with_database
from bench.http_client import Connection
from domain.base import SYSTEM, CommandContext
from infra.db import create_pool, database_url
from infra.event_store import PostgresEventStore
from infra.migrate import migrate
from infra.settings import Settings
from tests.live_server import create_key, live_server

CLIENTS = 16
UPDATES_PER_INCIDENT = 8
COMPONENTS = 4
GOAL = 0.3
STATUSES = ("investigating", "identified", "monitoring")
COMPONENT_STATUSES = ("degraded_performance", "partial_outage", "full_outage", "operational")


@dataclass
class Tally:
    """Latencies of successful commands and the failures, by status code."""

    latencies: list[float] = field(default_factory=list)
    failures: dict[int, int] = field(default_factory=dict)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


async def setup_page(client: Connection) -> tuple[str, list[str]]:
    """A status page whose structure holds `COMPONENTS` components, through the management API."""
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    page = await _ok(client, "POST", "/v2/status_pages", {"name": "Bench", "slug": slug})
    page_id = page["status_page"]["id"]
    components = []
    for n in range(COMPONENTS):
        created = await _ok(client, "POST", "/v2/status_page_components", {"name": f"Service {n}"})
        components.append(created["status_page_component"]["id"])
    items = [{"component": {"component_id": component_id}} for component_id in components]
    await _ok(client, "PUT", f"/v2/status_page_structures/{page_id}", {"items": items})
    return page_id, components


async def _ok(client: Connection, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.request(method, path, body)
    if response.status >= 300:
        raise RuntimeError(f"{method} {path} answered {response.status}: {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


async def client_loop(
    client: Connection, page_id: str, components: list[str], deadline: float, tally: Tally, index: int
) -> None:
    """One client: declare an incident, post updates to it, repeat until the deadline."""
    n = 0
    incident_id: str | None = None
    while time.perf_counter() < deadline:
        component = components[(index + n) % len(components)]
        status = {"component_id": component, "component_status": COMPONENT_STATUSES[n % len(COMPONENT_STATUSES)]}
        if incident_id is None or n % (UPDATES_PER_INCIDENT + 1) == 0:
            path, body = (
                "/v2/status_page_incidents",
                {
                    "idempotency_key": uuid.uuid4().hex,
                    "status_page_id": page_id,
                    "name": f"Elevated errors #{index}-{n}",
                    "message": "We are investigating elevated error rates.",
                    "incident_status": "investigating",
                    "notify_subscribers": False,
                    "component_statuses": [status],
                },
            )
        elif n % (UPDATES_PER_INCIDENT + 1) == UPDATES_PER_INCIDENT:
            path, body = (
                "/v2/status_page_incident_updates",
                {
                    "status_page_incident_id": incident_id,
                    "message": "Resolved: error rates are back to normal.",
                    "incident_status": "resolved",
                    "notify_subscribers": False,
                },
            )
        else:
            path, body = (
                "/v2/status_page_incident_updates",
                {
                    "status_page_incident_id": incident_id,
                    "message": f"Update {n}: still working on it.",
                    "incident_status": STATUSES[n % len(STATUSES)],
                    "notify_subscribers": False,
                    "component_statuses": [status],
                },
            )
        started = time.perf_counter()
        response = await client.request("POST", path, body)
        elapsed = time.perf_counter() - started
        if response.status == 201:
            tally.latencies.append(elapsed)
            if path == "/v2/status_page_incidents":
                incident_id = response.json()["status_page_incident"]["id"]
        else:
            tally.failures[response.status] = tally.failures.get(response.status, 0) + 1
            incident_id = None  # start afresh with a new incident
        n += 1


async def commands_per_second(url: str, token: str, seconds: float) -> tuple[float, Tally]:
    headers = {"Authorization": f"Bearer {token}"}
    async with contextlib.AsyncExitStack() as stack:
        # One connection per client, opened before the clock starts; the first also sets the page up.
        clients = [await stack.enter_async_context(Connection(url, headers, timeout=30)) for _ in range(CLIENTS)]
        page_id, components = await setup_page(clients[0])
        warmup = Tally()
        warm_deadline = time.perf_counter() + min(1.0, seconds)
        await asyncio.gather(
            *(client_loop(clients[i], page_id, components, warm_deadline, warmup, i) for i in range(4))
        )
        tally = Tally()
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(client_loop(clients[i], page_id, components, deadline, tally, i) for i in range(CLIENTS))
        )
        return len(tally.latencies) / (time.perf_counter() - started), tally


async def raw_appends_per_second(url: str, settings: Settings, seconds: float) -> float:
    pool = await create_pool(url, replace(settings, pool_size=CLIENTS + 2))
    try:
        store = PostgresEventStore(pool)
        context = CommandContext(now=NOW, actor=SYSTEM, request_id="bench")

        async def writer() -> Step:
            counter = Counter(id=uuid.uuid4(), by=SYSTEM.as_data(), timestamp=NOW)
            await store.append(
                counter.collect_events(), stream_type=Counter.STREAM_TYPE, expected_version=0, context=context
            )

            async def step() -> None:
                counter._incremented(message="Still working on it.", by=SYSTEM.as_data(), timestamp=NOW)
                await store.append(
                    counter.collect_events(),
                    stream_type=Counter.STREAM_TYPE,
                    expected_version=counter.version - 1,
                    context=context,
                )

            return step

        await _rate(2, min(1.0, seconds), writer)  # warm up connections and prepared statements
        return await _rate(CLIENTS, seconds, writer)
    finally:
        await pool.close()


async def _create_database(server: str, name: str) -> str:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(server, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url


async def _drop_database(server: str, name: str) -> None:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def main(seconds: float) -> None:
    settings = Settings.from_env()
    server = database_url(settings)
    name = f"beacon_bench_{uuid.uuid4().hex[:12]}"
    url = asyncio.run(_create_database(server, name))
    try:
        token = create_key(url, "bench", "admin")
        with (
            tempfile.TemporaryDirectory() as tmp,
            live_server(url, Path(tmp), extra_env={"BEACON_RATE_LIMIT_PER_MINUTE": "100000000"}) as beacon,
        ):
            rate, tally = asyncio.run(commands_per_second(beacon.url, token, seconds))
        # The server is stopped before the baseline, so the two measurements do not compete.
        raw = asyncio.run(raw_appends_per_second(url, settings, seconds))
    finally:
        asyncio.run(_drop_database(server, name))
    lifecycle = f"declare an incident, {UPDATES_PER_INCIDENT - 1} updates, resolve; repeat"
    print(f"{CLIENTS} HTTP clients, {seconds:.0f} s: {lifecycle}")
    print(f"commands/s      {rate:10,.0f}   ({len(tally.latencies)} commands, failures: {tally.failures or 'none'})")
    print(f"latency p50     {tally.percentile(0.50) * 1000:10.1f} ms")
    print(f"latency p99     {tally.percentile(0.99) * 1000:10.1f} ms")
    print(f"raw appends/s   {raw:10,.0f}   ({CLIENTS} writers on PostgresEventStore.append, same server)")
    print(f"ratio           {rate / raw:10.2f}   (goal >= {GOAL})")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
