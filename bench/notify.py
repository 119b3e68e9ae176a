"""Notifications at scale (issue 11), ratios in one run:

    .venv/bin/python bench/notify.py                 # about a minute and a half
    .venv/bin/python bench/notify.py --seconds 20 --subscribers 100000

(a) Fan-out. 100,000 confirmed subscribers on one page; one update is published with `notify_subscribers`;
    the time until the outbox has recorded every intent (the runner's own catch-up code, `catch_up`, from
    the committed event to the committed checkpoint: folding the event, rendering the message, the one
    `INSERT … SELECT`) against a plain `INSERT … SELECT` of the same rows into a table of the same shape and
    indexes, in the same database. Goal: plain ÷ outbox >= 0.5x. Alternated `--rounds` times; the medians.
(b) Dispatch. `--deliveries` intents per channel, each to its own subscriber, delivered by the dispatcher as a
    worker runs it (claims, contacts decrypted, mail composed per subscriber, attempts recorded in batches)
    to a local aiosmtpd sink and to a local webhook receiver; against a bare loop sending the same bytes
    with aiosmtplib / httpx at the same concurrency (mail: the transport's 4 SMTP connections; webhooks:
    `BEACON_NOTIFY_CONCURRENCY`'s 16 requests in flight, each signed). Goal: dispatcher ÷ bare >= 0.7x each.
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
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable as `python bench/notify.py`

from bench.commands import CLIENTS, CpuMeter, beacon_server, commands_per_second, postgres_roles, server_roles
from bench.history import migrated_database
from bench.scratch import scratch_database
from domain.base import SYSTEM, CommandContext, save
from domain.incident import Incident
from domain.status_page import StatusPage
from infra.contacts import Contact, encrypt, new_key
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


# (b) dispatch


DISPATCH_GOAL = 0.7
DISPATCH_CONCURRENCY = 16
WEBHOOK_SECRET = "whsec_" + "YmVuY2gtYmVuY2gtYmVuY2gtYmVuY2g="


def dispatch_content(page_id: uuid.UUID, notice_id: uuid.UUID, update_id: uuid.UUID) -> dict[str, Any]:
    """A message's stored content, as the outbox writes it for one update (sizes of a real one)."""
    url = "https://status.bench.example"
    published = "2026-01-28T10:00:00.000000Z"
    body = "We are investigating elevated error rates on the API. " * 4
    name = "Elevated API error rates"
    notice = uuid_to_ulid(notice_id)
    link = f"{url}/incidents/{notice}"
    incident = {
        "id": notice,
        "name": name,
        "status": "investigating",
        "impact": "major",
        "shortlink": link,
        "incident_updates": [
            {"id": uuid_to_ulid(update_id), "created_at": published, "body": body, "status": "investigating"}
        ],
        "components": [{"id": "c1", "name": "API", "status": "partial_outage"}],
    }
    page = {"id": uuid_to_ulid(page_id), "name": "Bench", "slug": "bench", "url": url, "host": "status.bench.example"}
    return {
        "subject": f"[Bench] {name} — Investigating",
        "page": page,
        "notice": {"id": notice, "kind": "incident", "name": name, "url": link},
        "update": {"id": uuid_to_ulid(update_id), "published_at": published, "message": body},
        "first_update": True,
        "text": f"{name} — Investigating\n\n{body}\n",
        "html": f"<h1>{name} — Investigating</h1>\n<p>{body}</p>\n",
        "webhook": {
            "meta": {"documentation": "https://example.invalid/docs", "generated_at": published},
            "page": {"id": page["id"], "status_indicator": "major", "status_description": "Partial System Outage"},
            "incident": incident,
        },
    }


async def _intents(pool: asyncpg.Pool, channel: str, count: int, contact: Callable[[int], Contact]) -> None:
    """`count` due intents of one message, each to a subscriber of its own with a real encrypted contact."""
    page_id, notice_id, update_id, message_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = time_now()
    subscribers = [uuid.uuid4() for _ in range(count)]
    keys = [new_key() for _ in subscribers]
    sealed = [encrypt(key, contact(n)) for n, key in enumerate(keys)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO beacon_notification_messages (id, kind, status_page_id, notice_id, update_id, position,"
            " content, created_at) VALUES ($1, 'update', $2, $3, $4, 1, $5::jsonb, $6)",
            message_id, page_id, notice_id, update_id,
            json.dumps(dispatch_content(page_id, notice_id, update_id)), now,
        )
        await conn.executemany(
            "INSERT INTO beacon_subscriber_keys (subscriber_id, key, contact) VALUES ($1, $2, $3)",
            list(zip(subscribers, keys, sealed, strict=True)),
        )
        await conn.execute(
            f"INSERT INTO {SUBSCRIBERS} (subscriber_id, status_page_id, channel, component_ids, state, contact)"
            " SELECT s, $2, $3, '{}', $4, 'v1:bench' FROM unnest($1::uuid[]) AS s",
            subscribers, page_id, channel, "active" if channel == "webhook" else "confirmed",
        )
        await conn.execute(
            f"INSERT INTO {INTENTS} (id, message_id, subscriber_id, channel, notice_id, position, next_attempt_at,"
            " updated_at) SELECT gen_random_uuid(), $1, s, $2, $3, 1, $4, $4 FROM unnest($5::uuid[]) AS s",
            message_id, channel, notice_id, now, subscribers,
        )


async def _dispatched(pool: asyncpg.Pool, channel: str, mail_url: str | None, webhook_url: str) -> tuple[float, int]:
    """Seconds for a running dispatcher to deliver every pending intent of `channel`, and how many."""
    from infra.clock import SystemClock
    from infra.mail import SmtpTransport
    from infra.webhooks import WebhookSender, target_resolver
    from process_managers.notification_dispatcher import NotificationDispatcher, RetrySchedule

    total = await pool.fetchval(f"SELECT count(*) FROM {INTENTS} WHERE state = 'pending' AND channel = $1", channel)
    before = await pool.fetchval(f"SELECT count(*) FROM {INTENTS} WHERE state = 'delivered' AND channel = $1", channel)
    dispatcher = NotificationDispatcher(
        pool,
        PostgresEventStore(pool),
        SystemClock(),
        mail=SmtpTransport(mail_url) if mail_url else None,
        webhooks=WebhookSender(target_resolver(allow_private=True)),
        secret_key=b"b" * 32,
        schedule=RetrySchedule((5, 300)),
        concurrency=DISPATCH_CONCURRENCY,
        poll_interval=0.5,
    )
    started = time.perf_counter()
    await dispatcher.start()
    try:
        # Its own count first, so the database is asked only once the dispatcher believes it is done: a count(*)
        # every 20 ms cost the database and this process as much as a tenth of what is measured.
        while dispatcher.status.recorded < total:
            await asyncio.sleep(0.005)
        while await pool.fetchval(
            f"SELECT count(*) FROM {INTENTS} WHERE state = 'pending' AND channel = $1", channel
        ):
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        await dispatcher.stop()
    delivered = await pool.fetchval(
        f"SELECT count(*) FROM {INTENTS} WHERE state = 'delivered' AND channel = $1", channel
    )
    if delivered - before != total:
        raise RuntimeError(f"{channel}: {delivered - before} of {total} delivered ({dispatcher.status})")
    return elapsed, total


async def _bare_mail(port: int, messages: list[bytes], connections: int) -> float:
    """The same messages through `connections` aiosmtplib connections, each sending one after another."""
    import aiosmtplib

    queue = list(messages)

    async def sender() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await client.connect()
        try:
            while queue:
                await client.sendmail("status@status.bench.example", ["someone@example.org"], queue.pop())
        finally:
            await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(connections)))
    return time.perf_counter() - started


async def _bare_webhooks(url: str, bodies: list[bytes], concurrency: int) -> float:
    """The same bodies POSTed, signed, by `concurrency` tasks on one httpx client."""
    import httpx

    from infra.webhooks import sign

    queue = list(bodies)
    async with httpx.AsyncClient(timeout=15, follow_redirects=False, trust_env=False) as client:

        async def sender() -> None:
            while queue:
                body = queue.pop()
                message_id = str(uuid.uuid4())
                stamp = int(time.time())
                headers = {
                    "content-type": "application/json",
                    "webhook-id": message_id,
                    "webhook-timestamp": str(stamp),
                    "webhook-signature": sign([WEBHOOK_SECRET], message_id, stamp, body),
                }
                response = await client.post(url, content=body, headers=headers)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return time.perf_counter() - started


RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass

class Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True

Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""
"""A webhook receiver answering 200 to every POST, in a process of its own."""


@contextlib.contextmanager
def sink_process(command: list[str], port: int) -> Iterator[None]:
    """A receiver in its own process, so its work does not share this process's interpreter lock with what
    is measured; up once its port accepts connections."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{command[:3]} did not start") from None
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(10)


def _same_messages(content: dict[str, Any], count: int) -> tuple[list[bytes], list[bytes]]:
    """What the dispatcher sends for `count` subscribers: each one's mail, and each one's webhook body."""
    from infra.mail import Links, compose

    mails, bodies = [], []
    for n in range(count):
        subscriber, intent = uuid.uuid4(), uuid.uuid4()
        link = f"https://status.bench.example/subscriptions/unsubscribe?token={subscriber.hex}"
        mails.append(
            compose(
                content,
                intent_id=intent,
                subscriber_id=subscriber,
                sender="status@status.bench.example",
                recipient=f"subscriber{n}@example.org",
                host="status.bench.example",
                links=Links(unsubscribe=link, manage=link),
                sent_at=time_now(),
            )
        )
        bodies.append(json.dumps({**content["webhook"], "meta": {"unsubscribe": link}}).encode())
    return mails, bodies


Rates = dict[str, list[tuple[float, float]]]


async def dispatch(server: str, settings: Settings, deliveries: int, rounds: int) -> Rates:
    """Per channel and round: (dispatcher deliveries/s, bare loop deliveries/s), the two alternated."""
    from tests.support.live_server import free_port

    smtp_port, http_port = free_port(), free_port()
    smtp = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}", "-c", "aiosmtpd.handlers.Sink"]
    webhook_url = f"http://127.0.0.1:{http_port}/hook"
    mails, bodies = _same_messages(dispatch_content(uuid.uuid4(), uuid.uuid4(), uuid.uuid4()), deliveries)
    rates: dict[str, list[tuple[float, float]]] = {"email": [], "webhook": []}
    async with migrated_database(server, settings) as (_, pool):
        async with pool.acquire() as conn:
            await ensure_tables(conn, [NotificationOutbox()])
        with sink_process(smtp, smtp_port), sink_process([sys.executable, "-c", RECEIVER, str(http_port)], http_port):
            for _ in range(rounds):
                await _intents(pool, "email", deliveries, lambda n: Contact(email=f"subscriber{n}@example.org"))
                seconds, count = await _dispatched(pool, "email", f"smtp://127.0.0.1:{smtp_port}", webhook_url)
                bare = await _bare_mail(smtp_port, mails, connections=4)
                rates["email"].append((count / seconds, len(mails) / bare))
            for _ in range(rounds):
                await _intents(pool, "webhook", deliveries, lambda n: Contact(url=webhook_url, secret=WEBHOOK_SECRET))
                seconds, count = await _dispatched(pool, "webhook", None, webhook_url)
                bare = await _bare_webhooks(webhook_url, bodies, DISPATCH_CONCURRENCY)
                rates["webhook"].append((count / seconds, len(bodies) / bare))
    return rates


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
    parser.add_argument("--rounds", type=int, default=3, help="fan-outs, and dispatch runs, measured (default 3)")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per command run (default 15)")
    parser.add_argument("--deliveries", type=int, default=2000, help="intents per channel in (b) (default 2,000)")
    parser.add_argument("--parts", default="abc", help="which parts to run, e.g. `b` (default abc)")
    args = parser.parse_args()
    settings = Settings.from_env()
    server = database_url(settings)

    if "a" in args.parts:
        outbox, plain = asyncio.run(fan_out(server, settings, args.subscribers, args.rounds))
        median: Callable[[list[float]], float] = statistics.median
        print(f"(a) fan-out of one update to {args.subscribers:,} subscribers, median of {args.rounds}:")
        print(f"    outbox (catch-up to checkpoint) {median(outbox):7.3f} s   {[round(s, 3) for s in outbox]}")
        print(f"    plain INSERT … SELECT           {median(plain):7.3f} s   {[round(s, 3) for s in plain]}")
        print(f"    plain ÷ outbox = {_verdict(median(plain) / median(outbox), FAN_OUT_GOAL)}")

    if "b" in args.parts:
        print(f"(b) deliveries/s, {args.deliveries:,} intents per channel and round, {DISPATCH_CONCURRENCY} in flight:")
        measured = asyncio.run(dispatch(server, settings, args.deliveries, args.rounds))
        for channel, runs in measured.items():
            dispatcher = statistics.median(run[0] for run in runs)
            bare = statistics.median(run[1] for run in runs)
            print(
                f"    {channel:8} dispatcher {dispatcher:6,.0f}/s   bare loop {bare:6,.0f}/s   (medians of {len(runs)};"
                f" each {[f'{d:,.0f}/{b:,.0f}' for d, b in runs]})   dispatcher ÷ bare = "
                f"{_verdict(dispatcher / bare, DISPATCH_GOAL)}"
            )

    if "c" not in args.parts:
        return
    rates = commands(server, args.seconds, args.subscribers)
    (without_label, without), (with_label, with_) = rates.items()
    print(f"(c) commands/s through `beacon serve`, {CLIENTS} clients, {args.seconds:g} s each, notify_subscribers on:")
    print(f"    {without_label:28}{without:10,.0f}")
    print(f"    {with_label:28}{with_:10,.0f}")
    print(f"    with ÷ without = {_verdict(with_ / without, COMMANDS_GOAL)}")


if __name__ == "__main__":
    main()
