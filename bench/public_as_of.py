"""Public-site `as_of` at scale (docs/adr/0004-time-travel-index-and-snapshots.md): does a read of one
page's document cost what that page's history costs, whatever the size of the log?

    .venv/bin/python -m bench.public_as_of                      # logs of 2,000 and 40,000 other events
    .venv/bin/python -m bench.public_as_of --events 1000 50000

For each size: the realistic mix of `bench/replay.py` (other pages), then one realistic page (groups, a
sub-page, every notice state: tests/support/widget_history.py) appended last, so the page is the same in
both logs and only the log around it grows. `public_site` and `site_history` catch up; then `as_of` reads
of the page's `summary.json` and its sub-page's `/history` at an instant after everything, through the
page's streams (p50 of `READS`) and, as the baseline, through the old fold of the whole log
(`fold_page_full`, p50 of `BASELINE_READS`). Prints the growth ratio large / small of each (goal for the
indexed read: about 1). Uses DATABASE_URL, or the embedded server when unset; scratch databases, dropped
at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta

from bench.history import migrated_database
from bench.replay import copy_mixed_log
from domain.base import Actor, CommandContext
from domain.component import Component
from domain.incident import Incident
from domain.maintenance import Maintenance
from domain.status_page import StatusPage
from infra.db import database_url
from infra.event_store import PostgresEventStore
from infra.settings import Settings
from projections.public_site import PublicSite
from projections.public_site_as_of import document_as_of
from projections.runner import Projection, catch_up, ensure_tables
from projections.site_history import SiteHistory
from tests.support.widget_history import realistic_history

READS = 20
BASELINE_READS = 3
RECORDED = datetime(2027, 1, 1, tzinfo=UTC)
"""When the realistic page's events are recorded: after any mixed log's."""
PATHS = ("/acme/api/v2/summary.json", "/acme/eu/history")


async def measure(server: str, settings: Settings, events: int) -> dict[str, float]:
    async with migrated_database(server, settings) as (_, pool):
        copied = await copy_mixed_log(pool, events)
        store = PostgresEventStore(pool)
        context = CommandContext(now=RECORDED, actor=Actor(type="system"))
        kinds = (StatusPage, Component, Incident, Maintenance)
        page_events = realistic_history().events
        for event in page_events:
            [kind] = [cls for cls in kinds if isinstance(event, cls.Event)]
            await store.append(
                [event], stream_type=kind.STREAM_TYPE, expected_version=event.originator_version - 1, context=context
            )
        projections: list[Projection] = [PublicSite(), SiteHistory()]
        as_of = RECORDED + timedelta(hours=1)
        results: dict[str, float] = {"events": copied + len(page_events), "page_events": len(page_events)}
        async with pool.acquire() as conn:
            await ensure_tables(conn, projections)
            for projection in projections:
                await catch_up(conn, store, projection)
            for path in PATHS:  # warm: the templates' first render is not the read's cost
                await document_as_of(conn, store, path, as_of)
            for full, reads in ((False, READS), (True, BASELINE_READS)):
                times: list[float] = []
                for i in range(reads):
                    path = PATHS[i % len(PATHS)]
                    started = time.perf_counter()
                    document = await document_as_of(conn, store, path, as_of, full=full)
                    times.append(time.perf_counter() - started)
                    assert document is not None, path
                results["full" if full else "indexed"] = statistics.median(times)
        return results


async def main(sizes: list[int]) -> None:
    settings = Settings()
    server = database_url(settings)
    results = [await measure(server, settings, size) for size in sizes]
    for r in results:
        print(
            f"log of {r['events']:,.0f} events (the page: {r['page_events']:.0f}): as_of p50 indexed"
            f" {r['indexed'] * 1000:.1f} ms, old full fold {r['full'] * 1000:.1f} ms"
        )
    first, last = results[0], results[-1]
    print(
        f"growth {last['events'] / first['events']:.0f}x log: indexed {last['indexed'] / first['indexed']:.2f}x,"
        f" full fold {last['full'] / first['full']:.2f}x"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[2000, 40000])
    asyncio.run(main(parser.parse_args().events))
