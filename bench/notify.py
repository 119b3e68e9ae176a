"""Notifications at scale (issue 11), ratios in one run:

    .venv/bin/python bench/notify.py                 # about a minute and a half
    .venv/bin/python bench/notify.py --seconds 20 --subscribers 100000

(a) Fan-out. 100,000 confirmed subscribers on one page; one update is published with `notify_subscribers`;
    the time until the outbox has recorded every intent (the runner's own catch-up code, `catch_up`, from
    the committed event to the committed checkpoint: folding the event, rendering the message, the one
    `INSERT … SELECT`) against a plain `INSERT … SELECT` of the same rows into a table of the same shape and
    indexes, in the same database. Goal: plain ÷ outbox >= 0.5x. Alternated `--rounds` times; the medians.
(b) Dispatch — PART (b) GOES HERE (helper "dispatch"): intents delivered per second to a local aiosmtpd
    sink and a local webhook receiver against a bare aiosmtplib / httpx loop at the same concurrency.
(c) The command path is not slowed: bench/commands.py's client loop (16 clients driving incidents through
    their life, every command with `notify_subscribers: true`) against `beacon serve` on a page with
    100,000 confirmed subscribers, against the same run on a page without. Goal: with ÷ without >= 0.9x.
    The subscribers are written straight into the outbox's subscriber table (what folding 100,000
    `Subscriber.Created` events leaves there), since appending them would take longer than the run; the
    fan-outs the commands cause run in the server's background worker meanwhile, as in production.

Each part gets its own scratch database on DATABASE_URL's server (the embedded one when unset), dropped at
the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable as `python bench/notify.py`

from bench.commands import CLIENTS, CpuMeter, beacon_server, commands_per_second, postgres_roles, server_roles
from bench.history import migrated_database
from bench.scratch import scratch_database
from domain.base import SYSTEM, CommandContext, save
from domain.incident import Incident
from domain.status_page import StatusPage
from infra.db import database_url
from infra.event_store import PostgresEventStore
from infra.ids import new_ulid, ulid_to_uuid, uuid_to_ulid
from infra.migrate import migrate
from infra.settings import Settings
from projections.notification_outbox import INTENTS, SUBSCRIBERS, NotificationOutbox
from projections.runner import catch_up, ensure_tables
from tests.support.live_server import create_key

SUBSCRIBER_COUNT = 100_000
FAN_OUT_GOAL = 0.5
COMMANDS_GOAL = 0.9
PLAIN = "bench_plain_intents"


def subscribers_sql(count: int) -> str:
    """`count` confirmed page-scope email subscribers of the page `$1`, in one statement."""
    return (
        f"INSERT INTO {SUBSCRIBERS} (subscriber_id, status_page_id, channel, component_ids, state, contact)"
        f" SELECT gen_random_uuid(), $1, 'email', '{{}}', 'confirmed', 'v1:bench' FROM generate_series(1, {count})"
    )


# (a) fan-out


async def fan_out(server: str, settings: Settings, subscribers: int, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds per round: the outbox recording one update's intents, and the plain INSERT … SELECT."""
    async with migrated_database(server, settings) as (_, pool):
        store = PostgresEventStore(pool)
        outbox = NotificationOutbox()
        page_id = uuid.uuid4()
        now = CommandContext(now=time_now(), actor=SYSTEM)
        await save(store, StatusPage.create(id=page_id, name="Bench", slug="bench", at=now.now, by=SYSTEM), now)
        async with pool.acquire() as conn:
            await ensure_tables(conn, [outbox])
            await catch_up(conn, store, outbox)
            await conn.execute(subscribers_sql(subscribers), page_id)
            await conn.execute(f"CREATE TABLE {PLAIN} (LIKE {INTENTS} INCLUDING ALL)")
            await conn.execute("ANALYZE")
        outbox_seconds, plain_seconds = [], []
        for number in range(rounds):
            context = CommandContext(now=time_now(), actor=SYSTEM)
            incident = Incident.declare(
                id=uuid.uuid4(),
                status_page_id=uuid_to_ulid(page_id),
                page_components=frozenset(),
                name=f"Bench incident {number}",
                message="We are investigating.",
                status="investigating",
                component_statuses=None,
                notify_subscribers=True,
                update_id=new_ulid(context.now),
                at=context.now,
                by=SYSTEM,
            )
            await save(store, incident, context)
            async with pool.acquire() as conn:
                started = time.perf_counter()
                await catch_up(conn, store, outbox)
                outbox_seconds.append(time.perf_counter() - started)
                recorded = await conn.fetchval(f"SELECT count(*) FROM {INTENTS} WHERE notice_id = $1", incident.id)
                if recorded != subscribers:
                    raise RuntimeError(f"the outbox recorded {recorded} intents, not {subscribers}")
                started = time.perf_counter()
                await conn.execute(
                    f"INSERT INTO {PLAIN} (id, message_id, subscriber_id, channel, notice_id, position,"
                    " next_attempt_at, updated_at)"
                    f" SELECT gen_random_uuid(), $1, subscriber_id, channel, $2, $3, now(), now() FROM {SUBSCRIBERS}"
                    " WHERE status_page_id = $4 AND state = 'confirmed'",
                    uuid.uuid4(),
                    incident.id,
                    number,
                    page_id,
                )
                plain_seconds.append(time.perf_counter() - started)
        return outbox_seconds, plain_seconds


def time_now() -> datetime:
    return datetime.now(UTC)


# (b) dispatch — PART (b) GOES HERE (helper "dispatch").


# (c) the command path with and without subscribers


def commands(server: str, seconds: float, subscribers: int) -> dict[str, float]:
    """Commands per second through `beacon serve`, on a page without subscribers and on one with them."""
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, count in (("without subscribers", 0), (f"with {subscribers:,} subscribers", subscribers)):
            rates[label] = asyncio.run(_commands_once(server, Path(tmp), seconds, count))
    return rates


async def _commands_once(server: str, tmp: Path, seconds: float, subscribers: int) -> float:
    async with scratch_database(server) as url:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        token = await asyncio.to_thread(create_key, url, "bench", "admin")
        database = url.rsplit("/", 1)[1]
        with beacon_server(url, tmp) as live:

            async def roles() -> dict[str, list[int]]:
                processes = server_roles(live.process.pid)
                return {**processes, **await postgres_roles(server, database, processes)}

            async def add_subscribers(page_id: str) -> None:
                if subscribers:
                    db = await asyncpg.connect(url)
                    try:
                        await db.execute(subscribers_sql(subscribers), ulid_to_uuid(page_id))
                        await db.execute(f"ANALYZE {SUBSCRIBERS}")
                    finally:
                        await db.close()

            run = await commands_per_second(
                live.url, token, seconds, CLIENTS, CpuMeter(roles), notify=True, prepare=add_subscribers
            )
        failures = run.tally.failures
        if failures:
            print(f"  ({subscribers:,} subscribers: failures {failures})")
        return run.rate


def _verdict(ratio: float, goal: float) -> str:
    return f"{ratio:.2f}x (goal >= {goal:.1f}x: {'met' if ratio >= goal else 'not met'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=SUBSCRIBER_COUNT)
    parser.add_argument("--rounds", type=int, default=3, help="fan-outs measured (default 3)")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per command run (default 15)")
    args = parser.parse_args()
    settings = Settings.from_env()
    server = database_url(settings)

    outbox, plain = asyncio.run(fan_out(server, settings, args.subscribers, args.rounds))
    median: Callable[[list[float]], float] = statistics.median
    print(f"(a) fan-out of one update to {args.subscribers:,} subscribers, median of {args.rounds}:")
    print(f"    outbox (catch-up to checkpoint) {median(outbox):7.3f} s   {[round(s, 3) for s in outbox]}")
    print(f"    plain INSERT … SELECT           {median(plain):7.3f} s   {[round(s, 3) for s in plain]}")
    print(f"    plain ÷ outbox = {_verdict(median(plain) / median(outbox), FAN_OUT_GOAL)}")

    # (b) dispatch — PART (b) GOES HERE (helper "dispatch").

    rates = commands(server, args.seconds, args.subscribers)
    (without_label, without), (with_label, with_) = rates.items()
    print(f"(c) commands/s through `beacon serve`, {CLIENTS} clients, {args.seconds:g} s each, notify_subscribers on:")
    print(f"    {without_label:28}{without:10,.0f}")
    print(f"    {with_label:28}{with_:10,.0f}")
    print(f"    with ÷ without = {_verdict(with_ / without, COMMANDS_GOAL)}")


if __name__ == "__main__":
    main()
