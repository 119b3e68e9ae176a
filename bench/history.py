"""History at any scale (issue 13, docs/adr/0004-time-travel-index-and-snapshots.md): does an `as_of`
widget read cost what the page's history costs, whatever the size of the log?

    .venv/bin/python -m bench.history                       # logs of 10,000 and 1,000,000 events
    .venv/bin/python -m bench.history --events 5000 50000   # a quick run

For each size: a log of the realistic mix of `bench/replay.py` (generated in memory, loaded with one
COPY), every projection rebuilt from zero into the live tables (the rebuild rate), then `as_of` widget
reads at 50 random instants, each of a page that existed then, through the per-page index and snapshots
(p50, p99) and, as the baseline, through the old full fold (every instant on the first log, a few on
the others: it reads the whole log up to the instant). Then, with every log still there, the first log
is rebuilt once more (its rate is the mean of both runs) and `stream_id` audit pages are timed on every
log in turn, query by query: on a shared box the load drifts within minutes, and a ratio of two numbers
measured minutes apart measured the drift (`--explain` prints one page's plan on each log). Prints the
growth ratios last / first: p50 goal <= 1.5, rebuild rate goal >= 0.8, audit goal <= 1.5. Uses
DATABASE_URL, or the embedded server when unset; works in its own scratch databases, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import random
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from bench.replay import copy_mixed_log
from bench.scratch import scratch_database
from infra.audit import Selection, audit_query, read_audit_page
from infra.db import create_pool, database_url
from infra.event_store import PostgresEventStore
from infra.ids import uuid_to_ulid
from infra.migrate import migrate
from infra.settings import Settings
from projections.public_widget import documents_as_of as full_fold
from projections.rebuild import RebuildStats, rebuild_live_many
from projections.registry import all_projections
from projections.widget_history import documents_as_of

INSTANTS = 50
BASELINE_INSTANTS_LARGE = 3
AUDIT_QUERIES = 200


@dataclass
class Result:
    events: int
    build_seconds: float
    rebuild_rate: float
    projection_rates: dict[str, float] = field(default_factory=dict)
    rebuild_rate_again: float | None = None
    """The first log's rebuild measured once more after the last log's: the box's load drifts in minutes."""
    as_of: list[float] = field(default_factory=list)
    full_fold: list[float] = field(default_factory=list)
    audit: list[float] = field(default_factory=list)
    folded: list[int] = field(default_factory=list)
    streams: list[uuid.UUID] = field(default_factory=list)

    @property
    def rebuild(self) -> float:
        """The rebuild rate, the mean of both measurements when there are two."""
        if self.rebuild_rate_again is None:
            return self.rebuild_rate
        return (self.rebuild_rate + self.rebuild_rate_again) / 2


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def measure(pool: asyncpg.Pool, events: int, *, baseline_instants: int, rng: random.Random) -> Result:
    started = time.perf_counter()
    written = await copy_mixed_log(pool, events)
    build_seconds = time.perf_counter() - started
    print(f"  wrote {written:,} events in {build_seconds:.1f}s", file=sys.stderr)
    stats = await rebuild_all(pool)
    rates = {name: stats.events[name] / seconds for name, seconds in stats.projection_seconds.items() if seconds}
    result = Result(written, build_seconds, stats.events_per_second, rates)
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE")
        pages = await conn.fetch(
            "SELECT originator_id, notification_id FROM beacon_events WHERE stream_type = 'status_page'"
            " AND originator_version = 1"
        )
        positions = [int(row["notification_id"]) for row in pages]
        picks: list[tuple[str, datetime]] = []
        for _ in range(INSTANTS):
            position = rng.randint(max(positions[:2]), written)
            instant = await conn.fetchval("SELECT recorded_at FROM beacon_events WHERE notification_id = $1", position)
            page = rng.choice([row["originator_id"] for row in pages if row["notification_id"] <= position])
            picks.append((uuid_to_ulid(page), instant))
        for page_id, instant in picks:
            folded: list[int] = []

            async def read(page_id: str = page_id, instant: datetime = instant, folded: list[int] = folded) -> None:
                _, cost = await documents_as_of(conn, page_id, instant)
                folded.append(cost.indexed + cost.tail)

            result.as_of.append(await timed(read))
            result.folded += folded
        store = PostgresEventStore(pool)
        for page_id, instant in picks[:baseline_instants]:
            result.full_fold.append(await timed(lambda p=page_id, i=instant: full_fold(store, p, i)))  # type: ignore[misc]
            new, _ = await documents_as_of(conn, page_id, instant)
            assert new == await full_fold(store, page_id, instant), (page_id, instant)
        streams = await conn.fetch(
            "SELECT originator_id FROM beacon_events WHERE originator_version = 1"
            " AND stream_type = 'status_page_incident' ORDER BY random() LIMIT $1",
            AUDIT_QUERIES,
        )
        result.streams = [row["originator_id"] for row in streams]
    return result


async def rebuild_all(pool: asyncpg.Pool) -> RebuildStats:
    projections = all_projections()
    stats = await rebuild_live_many(pool, [p.name for p in projections], projections)
    print(f"  rebuilt every projection in {stats.seconds:.1f}s", file=sys.stderr)
    return stats


async def measure_audit(pools: list[asyncpg.Pool], results: list[Result], *, explain: bool) -> None:
    """`stream_id` audit pages on every log in turn, query by query (the order alternating), so that the
    load of the shared box falls on every log alike rather than on whichever ran during a busy minute."""
    for index in range(AUDIT_QUERIES):
        order = list(zip(pools, results, strict=True))
        for pool, result in order if index % 2 else reversed(order):
            selection = Selection(stream_id=result.streams[index % len(result.streams)])
            result.audit.append(await timed(lambda p=pool, s=selection: read_audit_page(p, s, 100)))  # type: ignore[misc]
    if explain:
        for pool, result in zip(pools, results, strict=True):
            query, args = audit_query(Selection(stream_id=result.streams[0]), None, 100)
            plan = await pool.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {query}", *args)
            print(f"log of {result.events:,} events, one stream_id page:", file=sys.stderr)
            print("\n".join("  " + row[0] for row in plan), file=sys.stderr)


@contextlib.asynccontextmanager
async def migrated_database(server: str, settings: Settings) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """A new migrated scratch database (its URL and a pool on it), dropped on the way out."""
    async with scratch_database(server) as url:
        pool = await create_pool(url, settings)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            yield url, pool
        finally:
            await pool.close()


def report(results: list[Result]) -> None:
    ms = 1000.0
    for r in results:
        print(f"log of {r.events:,} events (built in {r.build_seconds:.0f}s):")
        print(
            f"  as_of widget, index + snapshots: p50 {percentile(r.as_of, 0.5) * ms:7.2f} ms"
            f"  p99 {percentile(r.as_of, 0.99) * ms:7.2f} ms  ({len(r.as_of)} instants,"
            f" events folded p50 {statistics.median(r.folded):.0f}, max {max(r.folded)})"
        )
        if r.full_fold:
            n = len(r.full_fold)  # the baseline reads the first n instants
            print(
                f"  as_of widget, old full fold:     p50 {percentile(r.full_fold, 0.5) * ms:7.2f} ms"
                f"  p99 {percentile(r.full_fold, 0.99) * ms:7.2f} ms  ({len(r.full_fold)} instants)"
                f"  -> {statistics.median(r.full_fold) / statistics.median(r.as_of[:n]):,.0f}x faster now"
            )
        again = f" (again after the last log: {r.rebuild_rate_again:,.0f})" if r.rebuild_rate_again else ""
        print(f"  rebuild of every projection:     {r.rebuild_rate:,.0f} events/s{again}")
        print(f"  audit stream_id page:            p50 {percentile(r.audit, 0.5) * ms:7.2f} ms")
    first, last = results[0], results[-1]
    growth = percentile(last.as_of, 0.5) / percentile(first.as_of, 0.5)
    rebuild = last.rebuild / first.rebuild
    audit = percentile(last.audit, 0.5) / percentile(first.audit, 0.5)
    print(f"as_of p50 growth {last.events:,} / {first.events:,}: {growth:.2f}  (goal <= 1.5)")
    print(f"rebuild rate ratio:  {rebuild:.2f}  (goal >= 0.8); each projection's apply alone:")
    for name, rate in last.projection_rates.items():
        print(f"  {name:<24} {first.projection_rates.get(name, 0):>9,.0f} -> {rate:>9,.0f} events/s")
    print(f"audit stream_id p50 growth: {audit:.2f}  (goal <= 1.5)")


async def main(sizes: list[int], *, explain: bool) -> None:
    # One COPY of a million rows and the rebuild's batches outlast the request-path statement timeout.
    settings = dataclasses.replace(Settings.from_env(), statement_timeout_ms=0)
    server = await asyncio.to_thread(database_url, settings)
    rng = random.Random(13)
    results: list[Result] = []
    started = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        pools: list[asyncpg.Pool] = []
        for index, events in enumerate(sizes):
            print(f"building a log of {events:,} events", file=sys.stderr)
            _, pool = await stack.enter_async_context(migrated_database(server, settings))
            pools.append(pool)
            baseline = INSTANTS if index == 0 else BASELINE_INSTANTS_LARGE
            results.append(await measure(pools[-1], events, baseline_instants=baseline, rng=rng))
        if len(sizes) > 1:
            print(f"rebuilding the log of {sizes[0]:,} events again", file=sys.stderr)
            results[0].rebuild_rate_again = (await rebuild_all(pools[0])).events_per_second
        print("stream_id audit pages on every log in turn", file=sys.stderr)
        await measure_audit(pools, results, explain=explain)
    report(results)
    print(f"ran {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[10_000, 1_000_000], help="log sizes, smallest first")
    parser.add_argument("--explain", action="store_true", help="print a stream_id page's plan (ANALYZE, BUFFERS)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, explain=arguments.explain))
