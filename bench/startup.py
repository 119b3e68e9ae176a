"""Start-up at scale (issue 13): how long until a fresh HTTP process is ready, and how much memory does it
hold, with 10 and with 10,000 status pages of 20 components each?

    .venv/bin/python -m bench.startup                     # 10 and 10,000 pages
    .venv/bin/python -m bench.startup --pages 10 1000     # a quick run

For each size: the pages (20 components each, in four groups of five; every tenth page with an open
incident) are written through the domain classes into the in-memory store and copied into a scratch
database in one COPY (`bench/replay.py`), then every projection catches up from zero (timed apart: that
is not the HTTP process's start). Then a real `beacon serve --no-worker` (granian, one HTTP worker) starts
against it; the time to ready runs from the spawn to the first `200` of `/readyz` (the widget documents
are loaded by then: the lifespan loads them before the app answers). Resident memory (RSS from /proc) of
the granian main process and of each HTTP worker is read once ready and again after every page's widget
was fetched once. Goals at 10,000 pages: ready in <= 20 s, every process <= 1.5 GB resident. Uses
DATABASE_URL, or the embedded server when unset; works in its own scratch databases, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.history import migrated_database
from bench.replay import OPERATORS, copy_store
from domain.base import CommandContext, save
from domain.component import Component, ComponentInfo
from domain.incident import Incident
from domain.status_page import StatusPage
from domain.structure import ComponentItem, GroupItem
from infra.db import database_url
from infra.ids import new_ulid, uuid_to_ulid
from infra.memory_store import InMemoryEventStore
from infra.settings import Settings
from projections.rebuild import rebuild_live_many
from projections.registry import all_projections

COMPONENTS = 20
GROUP_SIZE = 5
INCIDENT_EVERY = 10
READY_TIMEOUT = 600.0
GOAL_READY_SECONDS = 20.0
GOAL_RSS_BYTES = 1.5 * 2**30
ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Result:
    pages: int
    events: int
    build_seconds: float
    catch_up_seconds: float
    ready_seconds: float
    rss_ready: dict[str, int]
    rss_served: dict[str, int]


async def write_pages(store: InMemoryEventStore, pages: int) -> None:
    """`pages` pages of `COMPONENTS` components each, in groups of `GROUP_SIZE`, widget on; every
    `INCIDENT_EVERY`-th page with an open incident on two of its components."""
    now = T0
    by = OPERATORS[0]
    for number in range(pages):
        now += timedelta(seconds=1)
        context = CommandContext(now=now, actor=by, request_id=str(uuid.uuid4()))
        ids: list[str] = []
        names: list[str] = []
        for index in range(COMPONENTS):
            name = f"Service {number}-{index}"
            component = Component.create(id=uuid.uuid4(), name=name, description=None, at=now, by=by)
            await save(store, component, context)
            ids.append(uuid_to_ulid(component.id))
            names.append(name)
        page = StatusPage.create(
            id=uuid.uuid4(), name=f"Acme {number}", slug=f"acme-{number}",
            public_url=f"https://status{number}.acme.test", at=now, by=by,
        )  # fmt: skip
        groups = [
            GroupItem(
                id=new_ulid(now),
                name=f"Group {start // GROUP_SIZE}",
                components=tuple(ComponentItem(c) for c in ids[start : start + GROUP_SIZE]),
            )
            for start in range(0, COMPONENTS, GROUP_SIZE)
        ]
        page.replace_structure(
            items=groups, components={c: ComponentInfo(name=n) for c, n in zip(ids, names, strict=True)},
            at=now, by=by,
        )  # fmt: skip
        await save(store, page, context)
        if number % INCIDENT_EVERY == 0:
            incident = Incident.declare(
                id=uuid.uuid4(), status_page_id=uuid_to_ulid(page.id), page_components=frozenset(ids),
                name=f"Incident on page {number}", message="We are investigating reports of errors.",
                status="investigating", component_statuses={ids[0]: "partial_outage", ids[1]: "degraded_performance"},
                notify_subscribers=False, update_id=new_ulid(now), at=now, by=by,
            )  # fmt: skip
            await save(store, incident, context)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (VmRSS), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (granian's workers), from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        found.append(child)
        pending += children.get(child, [])
    return sorted(found)


def rss_of_tree(pid: int) -> dict[str, int]:
    """RSS of the granian main process (`beacon serve` itself) and of each process below it."""
    sizes = {"main": rss_bytes(pid)}
    for index, child in enumerate(descendants(pid)):
        sizes[f"worker {index + 1}"] = rss_bytes(child)
    return sizes


async def serve_and_measure(url: str, pages: int) -> tuple[float, dict[str, int], dict[str, int]]:
    port = free_port()
    # The checkout this file is in, whatever the virtualenv's editable install points at.
    env = {**os.environ, "DATABASE_URL": url, "BEACON_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "api.cli", "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)]
    errors = tempfile.TemporaryFile()  # a pipe nobody reads could fill up and stall the server
    started = time.perf_counter()
    server = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=errors, cwd=ROOT
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            while True:
                if server.returncode is not None:
                    errors.seek(0)
                    raise RuntimeError(f"beacon serve exited {server.returncode}: {errors.read().decode()[-2000:]}")
                if time.perf_counter() - started > READY_TIMEOUT:
                    raise RuntimeError(f"not ready after {READY_TIMEOUT:.0f}s")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            ready = time.perf_counter() - started
            rss_ready = rss_of_tree(server.pid)
            for number in range(pages):
                response = await client.get(f"/acme-{number}/api/v1/summary")
                assert response.status_code == 200, (number, response.status_code)
            rss_served = rss_of_tree(server.pid)
    finally:
        server.terminate()
        try:
            await asyncio.wait_for(server.wait(), 15)
        except TimeoutError:
            server.kill()
            await server.wait()
        errors.close()
    return ready, rss_ready, rss_served


async def measure(server_url: str, settings: Settings, pages: int) -> Result:
    async with migrated_database(server_url, settings) as (url, pool):
        started = time.perf_counter()
        memory = InMemoryEventStore()
        await write_pages(memory, pages)
        events = await copy_store(pool, memory)
        del memory
        build_seconds = time.perf_counter() - started
        print(f"  wrote {events:,} events in {build_seconds:.1f}s", file=sys.stderr)
        projections = all_projections()
        stats = await rebuild_live_many(pool, [p.name for p in projections], projections)
        split = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in stats.projection_seconds.items())
        print(f"  projections caught up in {stats.seconds:.1f}s ({split})", file=sys.stderr)
        await pool.execute("VACUUM ANALYZE")
        ready, rss_ready, rss_served = await serve_and_measure(url, pages)
        return Result(pages, events, build_seconds, stats.seconds, ready, rss_ready, rss_served)


def _mb(sizes: dict[str, int]) -> str:
    return ", ".join(f"{label} {size / 2**20:,.0f} MB" for label, size in sizes.items())


def report(results: list[Result]) -> None:
    for r in results:
        print(
            f"{r.pages:,} pages x {COMPONENTS} components ({r.events:,} events; built in {r.build_seconds:.0f}s,"
            f" projections caught up in {r.catch_up_seconds:.0f}s):"
        )
        print(f"  time to ready (spawn -> /readyz 200): {r.ready_seconds:6.2f} s")
        print(f"  RSS when ready:                     {_mb(r.rss_ready)}")
        print(f"  RSS after every widget served once: {_mb(r.rss_served)}")
    last = results[-1]
    worst = max([*last.rss_ready.values(), *last.rss_served.values()])
    print(
        f"at {last.pages:,} pages: ready in {last.ready_seconds:.2f} s (goal <= {GOAL_READY_SECONDS:.0f}),"
        f" largest process {worst / 2**20:,.0f} MB (goal <= {GOAL_RSS_BYTES / 2**20:,.0f})"
    )


async def main(sizes: list[int]) -> None:
    # The COPY and the catch-up's batches outlast the request-path statement timeout.
    settings = dataclasses.replace(Settings.from_env(), statement_timeout_ms=0)
    server_url = await asyncio.to_thread(database_url, settings)
    started = time.perf_counter()
    results: list[Result] = []
    for pages in sizes:
        print(f"building {pages:,} pages", file=sys.stderr)
        results.append(await measure(server_url, settings, pages))
    report(results)
    print(f"ran {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, nargs="+", default=[10, 10_000], help="page counts, smallest first")
    asyncio.run(main(parser.parse_args().pages))
