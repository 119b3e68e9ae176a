"""A projection that stops on a poison event, seen through HTTP: the writes after it answer without waiting
the read-your-writes timeout, `/readyz` stays ready (a stopped projection must not take every replica out
of the load balancer), `/readyz?detail=1` reports it, and after the fix and a restart it resumes
(docs/architecture.md#4-projections-and-checkpoints, #6-read-your-writes)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.services import Services
from infra.event_store import RecordedEvent
from infra.settings import Settings
from projections.registry import all_projections
from tests.support.http import Keys

Client = AsyncTestClient[Litestar]
TIMEOUT = 30.0
"""Read-your-writes timeout in these tests: far longer than a write that waits on nothing stopped takes."""


class Poisonable:
    """A read model that commands wait for, which fails on every event while `poisoned` (a bug), and
    applies them once the bug is fixed."""

    name = "poisonable"
    writes_wait = True
    tables: tuple[str, ...] = ("poisonable_seen",)
    schema_sql = "CREATE TABLE IF NOT EXISTS poisonable_seen (position bigint PRIMARY KEY)"

    def __init__(self) -> None:
        self.poisoned = False

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            if self.poisoned:
                raise ValueError(f"cannot fold position {event.position}")
            await conn.execute("INSERT INTO poisonable_seen VALUES ($1)", event.position)


@pytest.fixture
def poisonable() -> Poisonable:
    return Poisonable()


@pytest.fixture
async def client(settings: Settings, poisonable: Poisonable) -> AsyncIterator[Client]:
    patient = dataclasses.replace(settings, read_your_writes_timeout=TIMEOUT)
    app = create_app(patient, projections=[*all_projections(), poisonable])
    async with AsyncTestClient(app=app) as client:
        yield client


def services_of(client: Client) -> Services:
    assert isinstance(client.app, Litestar)
    services: Services = client.app.state.services
    return services


async def create_page(client: Client, keys: Keys, slug: str) -> dict[str, Any]:
    """A write every projection here sees. It must answer before the read-your-writes timeout: had it waited
    on a stopped projection, it would have answered only once the timeout ran out."""
    started = time.monotonic()
    response = await client.post(
        "/v2/status_pages", json={"name": slug.title(), "slug": slug}, headers=Keys.header(keys.admin)
    )
    assert time.monotonic() - started < TIMEOUT, "the write waited out the read-your-writes timeout"
    assert response.status_code == 201, response.text
    return response.json()["status_page"]  # type: ignore[no-any-return]


async def detail(client: Client) -> dict[str, dict[str, Any]]:
    response = await client.get("/readyz?detail=1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    return {projection["name"]: projection for projection in body["projections"]}


async def eventually(client: Client, check: Any) -> dict[str, dict[str, Any]]:
    async with asyncio.timeout(10):
        while not check(report := await detail(client)):
            await asyncio.sleep(0.02)
    return report


async def test_a_stopped_projection_holds_up_no_write_nor_readiness_and_resumes_after_a_restart(
    client: Client, keys: Keys, poisonable: Poisonable
) -> None:
    await create_page(client, keys, "before")
    healthy = await detail(client)
    writes_wait = {p.name: p.writes_wait for p in all_projections()} | {"poisonable": True}
    assert {name: projection["writes_wait"] for name, projection in healthy.items()} == writes_wait
    healthy = await eventually(client, lambda report: all(p["lag"] == 0 for p in report.values()))
    for name, projection in healthy.items():
        assert projection["stopped"] is False and projection["active"] is True, name
        assert projection["lag_seconds"] == 0 and projection["checkpoint"] == projection["head"] > 0, name
    assert healthy["poisonable"]["error"] is None and healthy["poisonable"]["failed_position"] is None
    before = healthy["poisonable"]["checkpoint"]

    poisonable.poisoned = True
    await create_page(client, keys, "poison")  # its event stops the projection...
    await create_page(client, keys, "after")  # ...and neither this write nor that one waits for it

    assert (await client.get("/readyz")).json() == {"status": "ready"}
    report = await detail(client)
    stopped = report["poisonable"]
    assert stopped["stopped"] is True and stopped["active"] is False
    failed = stopped["failed_position"]
    assert failed > before and stopped["checkpoint"] == before  # the first event of the "poison" write
    assert f"stopped at position {failed}" in stopped["error"] and "cannot fold" in stopped["error"]
    assert stopped["lag"] == stopped["head"] - before > 1
    assert stopped["lag_seconds"] > 0
    assert not any(p["stopped"] for name, p in report.items() if name != "poisonable")
    assert services_of(client).watermarks.stopped == {"poisonable"}

    # The fix is deployed and the worker restarts: the projection resumes from its checkpoint.
    poisonable.poisoned = False
    runner = services_of(client).runner
    assert runner is not None
    await asyncio.to_thread(client.blocking_portal.call, runner.stop)
    await asyncio.to_thread(client.blocking_portal.call, runner.start)
    resumed = await eventually(client, lambda r: r["poisonable"]["lag"] == 0)
    assert resumed["poisonable"]["stopped"] is False and resumed["poisonable"]["active"] is True
    assert resumed["poisonable"]["error"] is None
    assert services_of(client).watermarks.stopped == set()
    await create_page(client, keys, "fixed")
    assert services_of(client).watermarks.positions["poisonable"] == (await detail(client))["poisonable"]["head"]


async def test_readyz_asks_the_database_only_until_it_has_seen_it_migrated_and_detail_is_always_200(
    client: Client,
) -> None:
    services = services_of(client)
    pool = services.pool
    services.pool = BrokenPool()
    try:
        # Not yet seen migrated: plain /readyz asks the database, and it is down.
        assert (await client.get("/readyz")).status_code == 503
        body = (await client.get("/readyz?detail=1")).json()
        assert body["status"] == "not_ready" and "the database cannot be read" in body["reason"]
        assert body["projections"] == []

        services.pool = pool
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        # Seen migrated, and the watermarks' connection is alive: probes cost no query.
        services.pool = BrokenPool()
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        response = await client.get("/readyz?detail=1")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ready" and "the projections cannot be read" in body["reason"]
    finally:
        services.pool = pool


class BrokenPool:
    """A pool whose database is gone."""

    def acquire(self, **_: Any) -> Any:
        raise ConnectionRefusedError("the database is down")
