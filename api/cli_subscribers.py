"""`beacon subscribers list|import|erase` (README "Subscribers"): what an operator does with a page's
subscribers from a shell, through the same commands as the admin API (`api/subscribers.py`).

The read models these commands need (the page catalog, the subscriber list) are caught up first, so the
answers are current whether or not a `beacon serve` or `beacon worker` is running.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from api.subscribers import OnExisting, SubscriberCommands
from domain.base import Actor, CommandContext, DomainError
from domain.subscriber import Channel, check_email
from infra import contacts
from infra.clock import SystemClock
from infra.contacts import Contact
from infra.event_store import PostgresEventStore
from infra.ids import is_ulid, ulid_to_uuid
from infra.settings import Settings, secret_key_bytes
from projections import status_page_catalog as catalog
from projections import subscriber_list
from projections.runner import Projection, catch_up, ensure_tables
from projections.status_page_catalog import StatusPageCatalog
from projections.subscriber_list import SubscriberList

IMPORT_CONCURRENCY = 4
"""Rows imported at once: each holds at most three of the pool's connections (its lookup transaction, its key, its
append), well within `BEACON_POOL_SIZE`'s default of 10."""
CLI_ACTOR = Actor(type="cli", name="beacon subscribers")
"""Who the log says acted: the operator's shell (no OS user name: it is nobody's business)."""


@dataclass(frozen=True)
class Session:
    pool: asyncpg.Pool
    run: SubscriberCommands


@asynccontextmanager
async def session(settings: Settings) -> AsyncIterator[Session]:
    """A pool (migrated) with the catalog and the subscriber list caught up, and the subscriber commands."""
    from api.cli import _pool  # the CLI's one way to open the database (api/cli.py imports this module)

    pool = await _pool(settings)
    try:
        store = PostgresEventStore(pool)
        async with pool.acquire() as conn:
            projections: list[Projection] = [StatusPageCatalog(), SubscriberList()]
            await ensure_tables(conn, projections)
            for projection in projections:
                await catch_up(conn, store, projection)
        yield Session(pool, SubscriberCommands.configured(settings, pool, store, secret_key_bytes(settings)))
    finally:
        await pool.close()


def context() -> CommandContext:
    return CommandContext(now=SystemClock().now(), actor=CLI_ACTOR)


async def page_id(pool: asyncpg.Pool, slug: str) -> str | None:
    row = await catalog.get_page_by_slug(pool, slug)
    return row.id if row else None


async def cmd_subscribers_list(args: argparse.Namespace, settings: Settings) -> int:
    from api.cli import _print_table

    async with session(settings) as s:
        found = await page_id(s.pool, args.page)
        if found is None:
            print(f"no status page {args.page!r}", file=sys.stderr)
            return 2
        rows: list[subscriber_list.SubscriberRow] = []
        after = None
        while True:  # every subscriber, a keyset page at a time
            batch = await subscriber_list.list_subscribers(
                s.pool, found, limit=1000, after=after, channel=args.channel, state=args.state
            )
            if not batch:
                break
            rows += batch
            after = batch[-1].id
        known = await contacts.load_contacts(s.pool, [row.stream_id for row in rows])
        table = [["id", "channel", "state", "scope", "contact", "created_at"]]
        for row in rows:
            contact = known[row.stream_id]
            shown = (contact.email or contact.url or "") if contact else "(erased)"
            table.append([row.id, row.channel, row.state, row.scope, shown, row.created_at.isoformat()])
        _print_table(table)
    return 0


def addresses(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, address) of each row of a CSV file: the `email` column when the first row is a header
    naming one, else the first column. Blank rows are left out."""
    with path.open(newline="", encoding="utf-8-sig") as file:
        rows = list(csv.reader(file))
    column, start = 0, 0
    if rows:
        header = [cell.strip().lower() for cell in rows[0]]
        if "email" in header:
            column, start = header.index("email"), 1
    for number, row in enumerate(rows[start:], start=start + 1):
        if len(row) > column and row[column].strip():
            yield number, row[column]


async def cmd_subscribers_import(args: argparse.Namespace, settings: Settings) -> int:
    """Confirmed email subscribers from a CSV of addresses that already opted in. Idempotent: an address
    with a subscriber on the page — whatever its state, unsubscribed and bounced included — is skipped."""
    from api.cli import ProgressBar

    path = Path(args.file)
    try:
        rows = await asyncio.to_thread(lambda: list(addresses(path)))
    except OSError as error:
        print(f"cannot read {path}: {error.strerror}", file=sys.stderr)
        return 2
    async with session(settings) as s:
        found = await page_id(s.pool, args.page)
        if found is None:
            print(f"no status page {args.page!r}", file=sys.stderr)
            return 2
        structure = await s.run.structure(found)
        bar = ProgressBar("importing")
        counts = {"imported": 0, "skipped": 0, "invalid": 0}
        pending = iter(rows)

        async def importer() -> None:
            # Rows are independent (two rows of one address meet at the lookup's lock), so a few run at once
            # and their appends share group commits.
            for line, address in pending:
                try:
                    made = await s.run.create(
                        status_page_id=found,
                        channel=Channel.EMAIL,
                        contact=Contact(email=check_email(address)),
                        structure=structure,
                        confirmed=True,
                        on_existing=OnExisting.SKIP,
                        context=context(),
                    )
                except DomainError as error:
                    counts["invalid"] += 1
                    print(f"\nline {line}: {error.message}", file=sys.stderr)
                else:
                    counts["imported" if made.created else "skipped"] += 1
                done = sum(counts.values())
                bar.draw(done, len(rows), f"{counts['imported']} imported, {counts['skipped']} skipped")

        await asyncio.gather(*(importer() for _ in range(IMPORT_CONCURRENCY)))
        bar.done()
    imported, skipped, invalid = counts["imported"], counts["skipped"], counts["invalid"]
    print(f"imported {imported}, skipped {skipped} (already on the page, in any state), invalid {invalid}")
    return 1 if invalid else 0


async def cmd_subscribers_erase(args: argparse.Namespace, settings: Settings) -> int:
    """Erase a subscriber's contact for good (the same as `POST /v2/status_page_subscribers/{id}/erase`)."""
    from domain.base import NotFound

    if not is_ulid(args.subscriber_id):
        print(f"no subscriber {args.subscriber_id!r}", file=sys.stderr)
        return 2
    async with session(settings) as s:
        try:
            await s.run.erase(ulid_to_uuid(args.subscriber_id), context())
        except NotFound:
            print(f"no subscriber {args.subscriber_id!r}", file=sys.stderr)
            return 2
    print(f"erased {args.subscriber_id}")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from domain.subscriber import SubscriberState

    subscribers = sub.add_parser("subscribers", help="list, import and erase a page's subscribers").add_subparsers(
        dest="subscribers_command", required=True
    )
    listing = subscribers.add_parser("list", help="a page's subscribers, newest first")
    listing.add_argument("--page", required=True, help="the status page's slug")
    listing.add_argument("--channel", choices=[channel.value for channel in Channel])
    listing.add_argument("--state", choices=[state.value for state in SubscriberState])
    listing.set_defaults(handler=cmd_subscribers_list)
    importing = subscribers.add_parser(
        "import", help="confirmed email subscribers from a CSV of addresses that already opted in"
    )
    importing.add_argument("file", help="CSV: an `email` column, or addresses in the first column")
    importing.add_argument("--page", required=True, help="the status page's slug")
    importing.set_defaults(handler=cmd_subscribers_import)
    erase = subscribers.add_parser("erase", help="erase a subscriber's address or URL for good")
    erase.add_argument("subscriber_id")
    erase.set_defaults(handler=cmd_subscribers_erase)
