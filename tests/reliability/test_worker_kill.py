"""Issue 6 §2: projectors survive kill -9. A `beacon worker` process is SIGKILLed ten times at random
moments while thousands of events are appended (through the domain handlers and the Postgres event
store, as the API would), and restarted each time. At the end every read model and every widget document
equals a fresh rebuild from the log, and no projection stopped: nothing was applied twice or skipped."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from domain.base import Actor, CommandContext
from domain.component import ComponentInfo, create_component
from domain.incident import Incident, declare_incident
from domain.notice import publish_notice_update
from domain.status_page import create_status_page, replace_structure
from domain.structure import ComponentItem, GroupItem
from infra.clock import SystemClock
from infra.event_store import PostgresEventStore
from infra.ids import new_ulid, ulid_to_uuid
from projections.rebuild import replay_check
from projections.registry import all_projections
from tests.support.polling import projections_behind
from tests.support.worker_process import Worker

KILLS = 10
MIN_EVENTS = 3000
APPENDERS = 8
UPDATES_PER_INCIDENT = 60
STATUSES = ("degraded_performance", "partial_outage", "full_outage", "operational")
ACTOR = Actor(type="api_key", id="01JAAAAAAAAAAAAAAAAAAAAAAA", name="worker-kill test")


def context() -> CommandContext:
    return CommandContext(now=SystemClock().now(), actor=ACTOR, request_id=str(uuid.uuid4()))


@pytest.mark.slow
async def test_projections_survive_kill_9(database_url: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    store = PostgresEventStore(pool)
    pages = [await _page(store, n) for n in range(3)]
    # Small batches: more kills land mid-batch.
    worker = Worker(database_url, tmp_path, {"BEACON_PROJECTION_BATCH_SIZE": "50"})
    kills_done = asyncio.Event()
    appended = [0]
    appenders = [
        asyncio.create_task(_append(store, pages[n % len(pages)], n, appended, kills_done)) for n in range(APPENDERS)
    ]
    try:
        # Ten random moments spread over the appends: mid-batch, between batches, while catching up.
        for threshold in sorted(random.sample(range(200, MIN_EVENTS), KILLS)):
            worker.start()
            # Killed once it runs (mid-batch, between batches, catching up), not while Python still imports it: a
            # start now takes longer than the appends between two thresholds, and every kill fell in the imports.
            await worker.running()
            await asyncio.sleep(0.2)
            while appended[0] < threshold:
                await asyncio.sleep(0.01)
            worker.kill()
        kills_done.set()
        await asyncio.gather(*appenders)
        worker.start()
        head = await _wait_until_projected(pool, worker)
    finally:
        worker.stop()
        for task in appenders:
            task.cancel()
        await asyncio.gather(*appenders, return_exceptions=True)
    print(f"kills survived: {KILLS}; events appended during the kills: {appended[0]}; log head: {head}")
    assert appended[0] >= MIN_EVENTS
    assert "stopped at position" not in worker.logs() and "projection" not in _errors(worker.logs())
    stats, differences = await replay_check(pool, all_projections(), "beacon_kill_check")
    assert not differences, "\n".join(d.describe() for d in differences)
    assert stats.log_events == head
    documents = await pool.fetchval("SELECT count(*) FROM beacon_kill_check.widget_documents")
    assert documents >= len(pages)


def _errors(logs: str) -> str:
    return "\n".join(line for line in logs.splitlines() if "ERROR" in line)


async def _page(store: PostgresEventStore, n: int) -> tuple[str, list[str]]:
    """A status page with three components (two of them in a group); returns its id and component ids."""
    page_id = new_ulid(SystemClock().now())
    await create_status_page(
        store, page_id=ulid_to_uuid(page_id), name=f"Page {n}", slug=f"page-{n}", context=context()
    )
    components = []
    for c in range(3):
        component_id = new_ulid(SystemClock().now())
        await create_component(
            store,
            component_id=ulid_to_uuid(component_id),
            name=f"Component {n}.{c}",
            description=None,
            context=context(),
        )
        components.append(component_id)
    group = GroupItem(
        id=new_ulid(SystemClock().now()),
        name="Core",
        components=(ComponentItem(components[1]), ComponentItem(components[2])),
    )
    await replace_structure(
        store,
        page_id=ulid_to_uuid(page_id),
        items=[ComponentItem(components[0]), group],
        components={c: ComponentInfo(name=f"Component {n}.{i}") for i, c in enumerate(components)},
        context=context(),
    )
    return page_id, components


async def _append(
    store: PostgresEventStore, page: tuple[str, list[str]], n: int, appended: list[int], kills_done: asyncio.Event
) -> None:
    """Incidents with component updates, one after another, until enough events exist and the kills are over."""
    page_id, components = page
    rng = random.Random(n)

    async def lookup(_: str) -> frozenset[str]:
        return frozenset(components)

    serial = 0
    while not kills_done.is_set() or appended[0] < MIN_EVENTS:
        serial += 1
        incident_id = ulid_to_uuid(new_ulid(SystemClock().now()))
        await declare_incident(
            store,
            incident_id=incident_id,
            status_page_id=page_id,
            page_components=frozenset(components),
            name=f"Incident {n}.{serial}",
            message="Investigating",
            status="investigating",
            component_statuses={rng.choice(components): "degraded_performance"},
            notify_subscribers=False,
            idempotency_key=f"{n}.{serial}",
            update_id=new_ulid(SystemClock().now()),
            context=context(),
        )
        appended[0] += 1
        for u in range(UPDATES_PER_INCIDENT):
            last = u == UPDATES_PER_INCIDENT - 1
            await publish_notice_update(
                store,
                Incident,
                incident_id,
                page_components=lookup,
                message=f"update {u}",
                status="resolved" if last else rng.choice(("identified", "monitoring")),
                component_statuses=None if last else {rng.choice(components): rng.choice(STATUSES)},
                notify_subscribers=False,
                update_id=new_ulid(SystemClock().now()),
                context=context(),
            )
            appended[0] += 1


async def _wait_until_projected(pool: asyncpg.Pool, worker: Worker, timeout: float = 120.0) -> int:
    """The restarted worker catches every projection up to the log's head; returns the head."""
    deadline = time.monotonic() + timeout
    while True:
        head, behind = await projections_behind(pool)
        if not behind:
            return head
        assert worker.process is not None and worker.process.poll() is None, worker.logs()[-3000:]
        assert time.monotonic() < deadline, f"still behind {head}: {sorted(behind)}\n{worker.logs()[-3000:]}"
        await asyncio.sleep(0.2)
