"""Upgrades without a wrong page (docs/adr/0006-projection-versions.md): a projection's new version is built
beside the old one while writes go on, each process reads the version its code was built for and never a
partial or foreign one, the old version is dropped once no process reads it, and `beacon projections
rebuild` keeps serving the whole read model while it rebuilds.

"Old code" and "new code" are two apps on one database, as two processes of a rolling deploy would be: the
new one's registry has `incident_list` at version 2, whose rows render every name as `v2 <name>`."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from domain.incident import Incident
from infra.settings import Settings
from projections.incident_list import incident_list, incident_view
from projections.notice_list import NoticeList
from projections.registry import all_projections
from projections.runner import Projection
from tests.support.http import Keys, Page, create_incident, setup_page
from tests.support.live_server import BEACON

Client = AsyncTestClient[Litestar]
WAIT = 60.0
"""Bound on every wait here (a hung upgrade fails the test rather than hanging it)."""


class IncidentListV2(NoticeList):
    version = 2


def incident_list_v2() -> NoticeList:
    """`incident_list` as a later release would ship it: a new version, rendering names differently."""
    base = incident_list()
    return IncidentListV2(
        name=base.name,
        table=base.table,
        stream_type=base.stream_type,
        notice_class=Incident,
        render=lambda incident: msgspec.structs.replace(incident_view(incident), name=f"v2 {incident.name}"),
    )


def new_code() -> list[Projection]:
    return [incident_list_v2() if p.name == "incident_list" else p for p in all_projections()]


@asynccontextmanager
async def process(settings: Settings, projections: Sequence[Projection]) -> AsyncIterator[Client]:
    """One process of the given code, with a background worker of its own (ready once its versions are built)."""
    async with AsyncTestClient(app=create_app(settings, projections=list(projections))) as client:
        yield client


@dataclasses.dataclass
class Traffic:
    """Writes through some processes and reads through every process, checked as they come."""

    keys: Keys
    page: Page
    acked: dict[int, set[str]] = dataclasses.field(default_factory=dict)
    """Names of the incidents each process (by id(client)) acknowledged."""
    first: set[str] = dataclasses.field(default_factory=set)
    """Names acknowledged before any upgrade began."""
    reads: dict[int, int] = dataclasses.field(default_factory=dict)
    stop: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    @classmethod
    async def begin(cls, client: Client, keys: Keys, incidents: int) -> Traffic:
        """A page with `incidents` incidents created before any upgrade."""
        traffic = cls(keys, await setup_page(client, keys))
        for number in range(incidents):
            name = f"before {number}"
            assert (await create_incident(client, keys, traffic.page, name, name=name)).status_code == 201
            traffic.first.add(name)
        return traffic

    async def write(self, client: Client, label: str, pace: float = 0.05) -> None:
        """Incidents created one after another, until stopped (a list page holds 250: keep below)."""
        count = 0
        while not self.stop.is_set():
            name = f"{label} {count}"
            count += 1
            response = await create_incident(client, self.keys, self.page, name, name=name)
            assert response.status_code == 201, response.text
            self.acked.setdefault(id(client), set()).add(name)
            await asyncio.sleep(pace)

    async def read(self, client: Client, prefix: str) -> None:
        """Every list read is whole and of one version: each name carries this code's `prefix`, and every
        incident this process acknowledged before the read (and every one from before the upgrade) is there."""
        while not self.stop.is_set():
            expected = self.first | self.acked.get(id(client), set())
            names = await _names(client, self)
            assert len(names) < 250, "the test wrote more incidents than one list page shows: write slower"
            assert all(name.startswith(prefix) for name in names), f"a foreign version's row: {names}"
            missing = expected - {name.removeprefix(prefix) for name in names}
            assert not missing, f"a partial read model: {len(missing)} acknowledged incident(s) missing"
            self.reads[id(client)] = self.reads.get(id(client), 0) + 1
            await asyncio.sleep(0.01)


async def until(check: Any, what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not await check():
            await asyncio.sleep(0.05)


async def test_a_new_version_is_built_beside_the_old_under_writes_and_the_old_is_dropped_once_unread(
    settings: Settings, keys: Keys, pool: asyncpg.Pool
) -> None:
    settings = dataclasses.replace(settings, reader_heartbeat_seconds=0.3, projection_poll_interval=0.05)
    async with process(settings, all_projections()) as old:
        traffic = await Traffic.begin(old, keys, 30)
        tasks = [asyncio.create_task(traffic.write(old, "old", pace=0.1)), asyncio.create_task(traffic.read(old, ""))]
        try:
            # The new code's process is not up (ready) before its version is built, while the old one serves.
            async with process(settings, new_code()) as new:
                assert await pool.fetchval("SELECT to_regclass('proj_incident_list_v2.incident_list') IS NOT NULL")
                tasks += [
                    asyncio.create_task(traffic.write(new, "new", pace=0.1)),
                    asyncio.create_task(traffic.read(new, "v2 ")),
                ]
                await until(lambda: _at_least(traffic, [old, new], 20, tasks), "reads through both processes")
                # The old version stays while its process reads it, though the new worker beats meanwhile.
                await _beats(pool, 3)
                assert await pool.fetchval("SELECT to_regclass('public.incident_list') IS NOT NULL")
                traffic.stop.set()
                await asyncio.gather(*tasks)
                acked = set().union(*traffic.acked.values()) | traffic.first
                assert len(acked) < 250, "more incidents than one list page shows"

                async def both_whole() -> bool:
                    return set(await _names(old, traffic)) == acked and set(await _names(new, traffic)) == {
                        f"v2 {name}" for name in acked
                    }

                # Both versions come to hold every incident, each in its own rendering.
                await until(both_whole, "both versions whole")
        finally:
            traffic.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    # The old process has gone; the new one alone (its worker) drops version 1 of incident_list.
    async with process(settings, new_code()) as new:

        async def dropped() -> bool:
            return bool(await pool.fetchval("SELECT to_regclass('public.incident_list') IS NULL"))

        await until(dropped, "version 1 dropped")
        assert (
            await pool.fetchval("SELECT count(*) FROM beacon_projection_checkpoints WHERE name = 'incident_list'") == 0
        )
        assert set(await _names(new, traffic)) == {f"v2 {name}" for name in acked}
        # The other projections' version 1 is what the new code reads too: nothing else was dropped.
        assert await pool.fetchval("SELECT to_regclass('public.widget_documents') IS NOT NULL")


async def test_rebuild_serves_the_whole_read_model_throughout(
    settings: Settings, keys: Keys, database_url: str
) -> None:
    """`beacon projections rebuild` (the command itself) under writes: every read during it is complete."""
    settings = dataclasses.replace(settings, projection_poll_interval=0.05)
    async with process(settings, all_projections()) as live:
        traffic = await Traffic.begin(live, keys, 100)
        tasks = [asyncio.create_task(traffic.write(live, "w", pace=0.15)), asyncio.create_task(traffic.read(live, ""))]
        try:
            rebuild = await asyncio.create_subprocess_exec(
                BEACON,
                "projections",
                "rebuild",
                "incident_list",
                env={**os.environ, "DATABASE_URL": database_url},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            reads_before = traffic.reads.get(id(live), 0)
            output, _ = await asyncio.wait_for(rebuild.communicate(), WAIT)
            assert rebuild.returncode == 0, output.decode()
            assert traffic.reads.get(id(live), 0) > reads_before, "no read ran during the rebuild"
            target = traffic.reads[id(live)] + 5
            await until(lambda: _at_least(traffic, [live], target, tasks), "reads after it")
        finally:
            traffic.stop.set()
            await asyncio.gather(*tasks)
        assert len(traffic.first | traffic.acked[id(live)]) < 250, "more incidents than one list page shows"
        assert traffic.first | traffic.acked[id(live)] <= set(await _names(live, traffic))


async def _at_least(
    traffic: Traffic, clients: Sequence[Client], reads: int, tasks: Sequence[asyncio.Task[None]]
) -> bool:
    for task in tasks:
        if task.done():
            task.result()  # a failed check fails the test now
    return all(traffic.reads.get(id(client), 0) >= reads for client in clients)


async def _beats(pool: asyncpg.Pool, count: int) -> None:
    """Until every recorded heartbeat has been renewed `count` times past now."""
    for _ in range(count):
        seen = await pool.fetchval("SELECT max(last_seen) FROM beacon_projection_readers")

        async def renewed(seen: Any = seen) -> bool:
            return bool(await pool.fetchval("SELECT min(last_seen) > $1 FROM beacon_projection_readers", seen))

        await until(renewed, "a heartbeat")


async def _names(client: Client, traffic: Traffic) -> list[str]:
    response = await client.get(
        "/v2/status_page_incidents",
        params={"status_page_id": traffic.page.id, "page_size": 250},
        headers=Keys.header(traffic.keys.read),
    )
    assert response.status_code == 200, response.text
    return [incident["name"] for incident in response.json()["status_page_incidents"]]
