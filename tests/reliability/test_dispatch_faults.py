"""Notification delivery through faults: a real `beacon worker` delivers a page's updates to its webhook
subscribers (a real receiver verifying every delivery with `standardwebhooks`) while the test SIGKILLs it at
random moments and cuts every database connection (tests/support/tcp_proxy.py). In the end:

- every (update, subscriber) pair was delivered at least once;
- the receiver saw each `webhook-id` at most as often as the intent was attempted (a killed send counts:
  its reservation was taken, so the retry is a new attempt);
- no subscriber ever received an update of a notice before every earlier update of that notice.

The default variant is small enough for `make test`; the `slow` one is the issue's 1,000 subscribers told
about 20 updates."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest

from infra.clock import FakeClock, SystemClock
from infra.event_store import PostgresEventStore
from infra.ids import uuid_to_ulid
from tests.support.live_server import TEST_SECRET_KEY
from tests.support.notifications import World, webhook_secret
from tests.support.tcp_proxy import PostgresProxy
from tests.support.webhook_receiver import Receiver, webhook_receiver
from tests.support.worker_process import Worker

SECRET = webhook_secret(7)


@dataclass(frozen=True)
class Scenario:
    subscribers: int
    notices: int
    updates_per_notice: int
    kills: int
    cuts: int


SMALL = Scenario(subscribers=40, notices=2, updates_per_notice=3, kills=2, cuts=2)
LARGE = Scenario(subscribers=1000, notices=4, updates_per_notice=5, kills=6, cuts=4)


async def _run(scenario: Scenario, pool: asyncpg.Pool, database_url: str, tmp_path: Path) -> None:
    world = World(pool, PostgresEventStore(pool), FakeClock(SystemClock().now()))
    await world.setup()
    with webhook_receiver() as receiver:
        paths = {}
        for n in range(scenario.subscribers):
            subscriber = await world.subscriber(url=receiver.url(f"/s{n}"), secret=SECRET)
            paths[f"/s{n}"] = subscriber
            receiver.secrets[f"/s{n}"] = [SECRET]
        notices: dict[str, list[str]] = {}
        for n in range(scenario.notices):
            messages = [f"notice {n} update {u}" for u in range(scenario.updates_per_notice)]
            incident_id, update_ids = await world.incident(*messages, statuses=("investigating", "identified"))
            notices[uuid_to_ulid(incident_id)] = update_ids
        total = scenario.subscribers * scenario.notices * scenario.updates_per_notice

        proxy = PostgresProxy(database_url)
        proxy.start()
        worker = Worker(
            proxy.url,
            tmp_path,
            {
                "BEACON_SECRET_KEY": TEST_SECRET_KEY,
                "BEACON_WEBHOOK_ALLOW_PRIVATE": "1",
                # Short reservations and retries: a killed worker's claims come back within the test.
                "BEACON_NOTIFY_CLAIM_SECONDS": "2",
                "BEACON_NOTIFY_RETRY_SCHEDULE": "0.2,0.5,1,1,1,1,1",
                "BEACON_DATA_DIR": str(tmp_path / "data"),
            },
        )
        try:
            faults = ["kill"] * scenario.kills + ["cut"] * scenario.cuts
            random.shuffle(faults)
            thresholds = sorted(random.sample(range(total // 10, total * 8 // 10), len(faults)))
            worker.start()
            for fault, threshold in zip(faults, thresholds, strict=True):
                await _wait_for(partial(_reached, receiver, threshold), worker, 120)
                if fault == "kill":
                    worker.kill()
                    worker.start()
                else:
                    proxy.cut()
                    await asyncio.sleep(random.uniform(0.1, 0.5))
                    proxy.restore()

            async def all_delivered() -> bool:
                delivered = await pool.fetchval(
                    "SELECT count(*) FROM beacon_notification_intents WHERE state = 'delivered'"
                )
                return bool(delivered == total)

            await _wait_for_async(all_delivered, worker, 180)
        finally:
            worker.stop()
            proxy.close()

        intents = await pool.fetch("SELECT id, subscriber_id, state, attempts FROM beacon_notification_intents")
        _check(receiver, intents, paths, notices, total)
        print(
            f"{total} intents, {len(receiver.deliveries)} deliveries, {worker.starts} worker starts, "
            f"{scenario.cuts} cuts"
        )


def _check(
    receiver: Receiver,
    intents: list[asyncpg.Record],
    paths: dict[str, UUID],
    notices: dict[str, list[str]],
    total: int,
) -> None:
    assert len(intents) == total and {row["state"] for row in intents} == {"delivered"}
    # A worker killed mid-request leaves a truncated body, which fails verification as it should; every
    # complete delivery verifies.
    complete = [delivery for delivery in receiver.deliveries if delivery.complete]
    assert all(delivery.verified for delivery in complete)
    seen: dict[str, int] = {}
    for delivery in receiver.deliveries:  # an attempt cut short counts against the attempts too
        seen[delivery.webhook_id] = seen.get(delivery.webhook_id, 0) + 1
    for row in intents:
        # At least once, and never more often than it was attempted.
        assert 1 <= seen.get(str(row["id"]), 0) <= row["attempts"], (row, seen.get(str(row["id"])))
    order = {update: index for updates in notices.values() for index, update in enumerate(updates)}
    notice_of = {update: notice for notice, updates in notices.items() for update in updates}
    for path in paths:
        received: dict[str, set[int]] = {}
        for delivery in receiver.at(path):
            incident = delivery.payload["incident"]
            update = incident["incident_updates"][0]["id"]
            index = order[update]
            notice = notice_of[update]
            assert incident["id"] == notice
            earlier = received.setdefault(notice, set())
            assert set(range(index)) <= earlier, f"{path} got update {index} of {notice} before {sorted(earlier)}"
            earlier.add(index)


def _reached(receiver: Receiver, deliveries: int) -> bool:
    return len(receiver.deliveries) >= deliveries


async def _wait_for(check: Callable[[], bool], worker: Worker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert worker.process is not None and worker.process.poll() is None, worker.logs()[-3000:]
        assert time.monotonic() < deadline, worker.logs()[-3000:]
        await asyncio.sleep(0.02)


async def _wait_for_async(check: Callable[[], Awaitable[bool]], worker: Worker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except (OSError, asyncpg.PostgresError):
            pass
        assert worker.process is not None and worker.process.poll() is None, worker.logs()[-3000:]
        assert time.monotonic() < deadline, worker.logs()[-3000:]
        await asyncio.sleep(0.1)


async def test_delivery_survives_kills_and_lost_connections(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    await _run(SMALL, pool, database_url, tmp_path)


@pytest.mark.slow
async def test_a_thousand_subscribers_and_twenty_updates_survive_kills_and_lost_connections(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    await _run(LARGE, pool, database_url, tmp_path)
