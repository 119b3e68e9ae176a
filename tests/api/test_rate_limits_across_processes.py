"""A key's limit holds across processes (docs/architecture.md#rate-limits): API processes on one database
share it through a heartbeat table, each enforcing its share, and fall back to the whole limit when the
database is gone. Through real `beacon serve` processes, and through the heartbeat itself."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest

from api.rate_limit import TokenBuckets
from api.rate_share import MISSED_BEATS, RateShare
from tests.support.live_server import create_key, live_server, request

LIMIT = 60  # a minute: a burst of 60, then one a second
SECONDS = 4.0
ENV = {"BEACON_RATE_LIMIT_PER_MINUTE": str(LIMIT), "BEACON_RATE_LIMIT_HEARTBEAT_SECONDS": "0.2"}


def test_one_key_driven_at_two_servers_gets_what_one_server_gives_it(database_url: str, tmp_path: Path) -> None:
    alone_key, shared_key = create_key(database_url, "alone"), create_key(database_url, "shared")
    with live_server(database_url, tmp_path, worker=False, extra_env=ENV) as first:
        wait_for_processes(database_url, 1)
        alone = drive([first.url], alone_key)
        with live_server(database_url, tmp_path, worker=False, extra_env=ENV, extra_args=["--workers", "2"]) as second:
            wait_for_processes(database_url, 3)
            shared = drive([first.url, second.url], shared_key)

    assert alone[200] == pytest.approx(LIMIT + SECONDS, abs=3), alone  # the burst, then one a second
    assert alone[429] and shared[429], (alone, shared)
    # Three processes, each with the whole limit, would let through three times as many.
    assert abs(shared[200] - alone[200]) <= 0.1 * alone[200], (alone, shared)


def drive(urls: list[str], token: str, clients: int = 4) -> Counter[int | str]:
    """`clients` threads asking as fast as they can for `SECONDS`, taking the servers in turn; the statuses
    counted, and under "name" the limit each 429 named."""
    deadline = time.monotonic() + SECONDS

    def client(first: int) -> Counter[int | str]:
        counts: Counter[int | str] = Counter()
        turn = first
        while time.monotonic() < deadline:
            answer = request("GET", f"{urls[turn % len(urls)]}/v2/status_pages", token)
            counts[answer.status] += 1
            if answer.status == 429:
                counts[json.loads(answer.body)["rate_limit"]["name"]] += 1
            turn += 1
        return counts

    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(client, range(clients)), Counter[int | str]())
    assert total["api_key"] == total[429] and set(total) <= {200, 429, "api_key"}, total
    return total


def wait_for_processes(database_url: str, count: int) -> None:
    """Until every live process has taken its share from `count` live processes (each heartbeat row records how
    many its process counted)."""

    async def seen() -> list[int]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT live_processes FROM beacon_rate_limit_processes WHERE seen_at > now() - interval '1 second'"
            )
        finally:
            await conn.close()
        return [row["live_processes"] for row in rows]

    deadline = time.monotonic() + 30
    while (found := asyncio.run(seen())) != [count] * count:
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


async def test_processes_split_each_limit_and_one_that_stops_hands_its_share_back(pool: asyncpg.Pool) -> None:
    first, second = _limits(), _limits()
    # A heartbeat of a fraction of a second (which a statement once truncated to none at all).
    one, two = RateShare(pool, first, interval=0.3), RateShare(pool, second, interval=0.3)
    await one.tick()
    assert one.live == 1 and first["api_key"].share("k") == 1.0
    await two.tick()
    await one.tick()
    assert (one.live, two.live) == (2, 2)
    for limits in (first, second):
        assert {name: buckets.share("k") for name, buckets in limits.items()} == {
            "api_key": 0.5,
            "retrospective_incidents": 0.5,
        }

    await two.stop()
    await one.tick()
    assert one.live == 1 and first["retrospective_incidents"].share("k") == 1.0


async def test_shares_follow_the_process_a_keys_traffic_reaches(pool: asyncpg.Pool) -> None:
    busy, idle = _limits(), _limits()
    hearts = [RateShare(pool, busy, interval=60), RateShare(pool, idle, interval=60)]
    for heart in hearts:
        await heart.tick()
    for _ in range(100):
        busy["api_key"].take("k")
    for heart in hearts + hearts:
        await heart.tick()
    assert busy["api_key"].share("k") > 0.9 and idle["api_key"].share("k") < 0.1
    assert busy["api_key"].share("k") + idle["api_key"].share("k") == pytest.approx(1.0)
    assert busy["retrospective_incidents"].share("k") == 0.5  # no retrospective traffic: an even split


async def test_without_the_database_a_process_keeps_its_share_for_a_while_then_enforces_the_whole_limit(
    database_url: str, pool: asyncpg.Pool
) -> None:
    clock = [0.0]
    other = RateShare(pool, _limits(), interval=1)
    await other.tick()
    own = _limits()
    doomed = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    heart = RateShare(doomed, own, interval=1, monotonic=lambda: clock[0])
    await heart.tick()
    assert heart.live == 2 and own["api_key"].share("k") == 0.5
    await doomed.close()

    clock[0] += MISSED_BEATS * heart.interval - 0.1
    await heart.tick()  # fails, but the other process was there a moment ago
    assert own["api_key"].share("k") == 0.5
    clock[0] += 0.2
    await heart.tick()  # nobody can say who serves now: the whole limit, as one process alone
    assert heart.live == 0
    assert own["api_key"].share("k") == own["retrospective_incidents"].share("k") == 1.0


def _limits() -> dict[str, TokenBuckets]:
    return {"api_key": TokenBuckets(rate=20, burst=1200), "retrospective_incidents": TokenBuckets(rate=5, burst=300)}
