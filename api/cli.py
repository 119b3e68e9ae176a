"""The `beacon` command: serve, worker, migrate, keys, audit, projections, subscribers, notifications. Every
subcommand reads settings from the environment (infra.settings) and prints what an operator needs, with results
on stdout. `serve` and `worker` only parse their arguments here: their processes are assembled in
`api/processes.py`; `subscribers` lives in `api/cli_subscribers.py`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import asyncpg

try:  # uvloop's event loop where it is installed (everywhere but Windows), as granian uses for the API
    from uvloop import run as run_async
except ImportError:  # pragma: no cover
    from asyncio import run as run_async  # type: ignore[assignment]

from api.cli_subscribers import add_parsers as add_subscriber_parsers
from infra.api_keys import ADMIN, SCOPES, create_key, list_keys, revoke_key
from infra.clock import SystemClock
from infra.db import create_pool, database_url
from infra.logs import configure_logging
from infra.migrate import migrate
from infra.settings import Settings, metrics_port_from_env
from projections.registry import all_projections

log = logging.getLogger("beacon.cli")

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


async def _connect(settings: Settings, *, migrated: bool = True) -> asyncpg.Connection:
    """A connection to the configured database, migrated first unless `migrated=False` (which only
    `beacon migrate` asks for: it applies the migrations itself, to report which ones it applied)."""
    url = await asyncio.to_thread(database_url, settings)
    conn: asyncpg.Connection = await asyncpg.connect(url)
    if migrated:
        await migrate(conn)
    return conn


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    conn = await _connect(settings, migrated=False)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


async def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> int:
    scopes = tuple(args.scope or [ADMIN])
    conn = await _connect(settings)
    try:
        key, token = await create_key(conn, name=args.name, scopes=scopes, now=SystemClock().now())
    finally:
        await conn.close()
    print(f"created API key {key.id} ({key.name}) with scopes {', '.join(key.scopes)}; the token is shown once:")
    print(token)
    return 0


async def cmd_keys_list(args: argparse.Namespace, settings: Settings) -> int:
    conn = await _connect(settings)
    try:
        for key in await list_keys(conn):
            state = "revoked" if key.revoked_at else "active"
            print(f"{key.id}\t{key.name}\t{','.join(key.scopes)}\t{state}")
    finally:
        await conn.close()
    return 0


async def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    conn = await _connect(settings)
    try:
        revoked = await revoke_key(conn, args.key_id, now=SystemClock().now())
    finally:
        await conn.close()
    print(f"revoked {args.key_id}" if revoked else f"no active key {args.key_id}")
    return 0 if revoked else 1


async def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from api.processes import run_worker_until_signalled

    return await run_worker_until_signalled(settings, metrics_port=args.metrics_port)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from api.processes import serve

    return serve(
        settings,
        host=args.host,
        port=args.port,
        workers=args.workers,
        run_worker=not args.no_worker,
        metrics_port=args.metrics_port,
    )


# --- audit and rebuilds (docs/architecture.md#audit) -----------------------------------------------------------------

REPLAY_CHECK_SCHEMA = "beacon_replay_check"


class ProgressBar:
    """A one-line progress bar on stderr (results stay alone on stdout), redrawn at most 10 times a second."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._drawn = 0.0
        self._last: tuple[int, int, str] | None = None

    def draw(self, position: int, end: int, detail: str = "", *, force: bool = False) -> None:
        self._last = (position, end, detail)
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        fraction = min(1.0, position / end) if end else 1.0
        filled = int(fraction * 30)
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {fraction:6.1%} {position}/{end} {detail}"
        )
        sys.stderr.flush()

    def done(self) -> None:
        """Show where it ended (the last update may have been skipped by the redraw limit)."""
        if self._last is not None:
            self.draw(*self._last, force=True)
        sys.stderr.write("\n")
        sys.stderr.flush()


async def _pool(settings: Settings) -> asyncpg.Pool:
    url = await asyncio.to_thread(database_url, settings)
    pool = await create_pool(url, settings)
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool


def _events_progress(bar: ProgressBar) -> Callable[[int, int, int], None]:
    """Progress of a walk over the log, with its rate: keyset pages keep it steady from first to last event."""
    started = time.monotonic()

    def report(events: int, position: int, end: int) -> None:
        rate = events / max(time.monotonic() - started, 1e-6)
        bar.draw(position, end, f"{events} events, {rate:,.0f} events/s")

    return report


async def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from infra.audit import verify_chain

    bar = ProgressBar("verifying")
    conn = await _connect(settings)
    try:
        report = await verify_chain(conn, progress=_events_progress(bar))
    finally:
        await conn.close()
    bar.done()
    if report.broken is not None:
        print(f"BROKEN at position {report.broken.position}: {report.broken}")
        print(f"the chain is intact up to position {report.last_position} ({report.checked} events)")
        return 1
    head = report.head_hash.hex() if report.head_hash else "-"
    print(f"ok: {report.checked} events, hash chain intact up to position {report.last_position}")
    print(f"head hash: {head} (record it elsewhere to detect a rewrite of the chain later)")
    return 0


async def cmd_audit_export(args: argparse.Namespace, settings: Settings) -> int:
    from infra.audit import export_ndjson

    bar = ProgressBar("exporting")
    conn = await _connect(settings)
    try:
        if args.output:
            out = await asyncio.to_thread(open, args.output, "wb")
            try:
                written = await export_ndjson(
                    conn,
                    out,
                    after=args.after,
                    progress=_events_progress(bar),
                )
            finally:
                await asyncio.to_thread(out.close)
        else:
            written = await export_ndjson(conn, sys.stdout.buffer, after=args.after, progress=_events_progress(bar))
    finally:
        await conn.close()
    bar.done()
    print(f"exported {written} events", file=sys.stderr)
    return 0


def _rebuild_progress(bar: ProgressBar) -> Callable[[Any], None]:
    def report(progress: Any) -> None:
        bar.label = progress.projection
        bar.draw(progress.position, progress.end, f"{progress.events_per_second:,.0f} events/s")

    return report


async def cmd_audit_replay_check(args: argparse.Namespace, settings: Settings) -> int:
    from projections.rebuild import replay_check

    bar = ProgressBar("rebuilding")
    pool = await _pool(settings)
    try:
        projections = all_projections()
        stats, differences = await replay_check(pool, projections, REPLAY_CHECK_SCHEMA, progress=_rebuild_progress(bar))
        bar.done()
        for difference in differences:
            print(difference.describe())
        if differences:
            print(
                f"MISMATCH: {len(differences)} difference(s); the rebuilt tables are kept in schema "
                f"{REPLAY_CHECK_SCHEMA} for inspection"
            )
            return 1
        async with pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{REPLAY_CHECK_SCHEMA}" CASCADE')
    finally:
        await pool.close()
    names = ", ".join(p.name for p in projections) or "none registered"
    print(f"ok: {len(projections)} projection(s) ({names}) rebuilt from the log match the live tables")
    print(f"replayed {stats.log_events} events in {stats.seconds:.2f}s ({stats.events_per_second:,.0f} events/s)")
    return 0


async def cmd_projections_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from projections.rebuild import RebuildProgress, UnknownProjection, rebuild_live_many

    projections = all_projections()
    names = [args.name] if args.name else [p.name for p in projections]
    bar = ProgressBar(names[0] if len(names) == 1 else f"{len(names)} projections")
    positions: dict[str, int] = {}

    def report(progress: RebuildProgress) -> None:
        # One pass rebuilds them all; the bar shows the one furthest behind.
        positions[progress.projection] = progress.position
        bar.draw(min(positions.values()), progress.end, f"{progress.events_per_second:,.0f} events/s")

    pool = await _pool(settings)
    try:
        try:
            stats = await rebuild_live_many(pool, names, projections, progress=report)
        except UnknownProjection as error:
            print(str(error), file=sys.stderr)
            return 2
        bar.done()
        for name in names:
            print(f"rebuilt {name}: {stats.events.get(name, 0)} events")
        print(
            f"rebuilt {len(names)} projection(s) from {stats.log_events} events in {stats.seconds:.2f}s "
            f"({stats.events_per_second:,.0f} events/s)"
        )
    finally:
        await pool.close()
    return 0


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell, the first row a header."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


async def cmd_projections_status(args: argparse.Namespace, settings: Settings) -> int:
    """Where each projection is, as the database has it: the same report as `GET /readyz?detail=1`. A stopped
    projection is reported, not an error of this command (exit 0)."""
    import msgspec

    from infra.event_store import PostgresEventStore
    from projections.runner import lag

    url = await asyncio.to_thread(database_url, settings)
    pool = await create_pool(url, settings, max_size=2)
    try:
        report = await lag(pool, PostgresEventStore(pool), all_projections())
    finally:
        await pool.close()
    if args.json:
        print(msgspec.json.encode(report).decode())
        return 0
    rows = [("projection", "checkpoint", "head", "lag", "lag s", "writes wait", "state")]
    for item in report:
        state = "STOPPED" if item.stopped else "running"
        if item.failed_position is not None:
            state += f" at {item.failed_position}"
        waits = "yes" if item.writes_wait else "no"
        rows.append(
            (item.name, str(item.checkpoint), str(item.head), str(item.lag), f"{item.lag_seconds:.1f}", waits, state)
        )
    _print_table(rows)
    for item in report:
        if item.error is not None:
            print(f"{item.name}: {item.error}")
    return 0


async def cmd_notifications_status(args: argparse.Namespace, settings: Settings) -> int:
    """Where notification delivery stands per channel (the report of `/readyz?detail=1`): backlog, retries,
    oldest due, pauses and the last day's failures. A backlog or a pause is reported, not an error (exit 0)."""
    import msgspec

    from process_managers.notification_status import delivery_status

    conn = await _connect(settings)
    try:
        report = await delivery_status(conn, SystemClock().now())
    finally:
        await conn.close()
    if args.json:
        print(msgspec.json.encode(report).decode())
        return 0
    if not report:
        print("no notifications yet (no worker has created the outbox's tables)")
        return 0
    rows = [("channel", "backlog", "retrying", "oldest due s", "failed 24h", "state")]
    for item in report:
        state = "running"
        if item.paused:
            state = f"PAUSED until {item.paused_until}" if item.paused_until else "PAUSED"
        rows.append(
            (
                item.channel,
                str(item.backlog),
                str(item.retrying),
                f"{item.oldest_due_seconds:.1f}",
                str(item.failures_24h),
                state,
            )
        )
    _print_table(rows)
    for item in report:
        if item.paused and item.paused_reason:
            print(f"{item.channel}: {item.paused_reason}")
    return 0


def _metrics_port() -> int | None:
    """`BEACON_METRICS_PORT`, the default of `--metrics-port`."""
    return metrics_port_from_env()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beacon", description="Beacon status page backend")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API (and, unless --no-worker, the projections)")
    serve.add_argument("--host", default=os.environ.get("BEACON_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("BEACON_PORT", "8000")))
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--no-worker", action="store_true", help="API only; run `beacon worker` elsewhere")
    serve.add_argument(
        "--metrics-port", type=int, default=_metrics_port(), help="serve /metrics here, not on the HTTP port"
    )
    serve.set_defaults(sync_handler=cmd_serve)

    worker = sub.add_parser("worker", help="run only the projections and the scheduler")
    worker.add_argument("--metrics-port", type=int, default=_metrics_port(), help="serve /metrics on this port")
    worker.set_defaults(handler=cmd_worker)
    sub.add_parser("migrate", help="apply schema migrations").set_defaults(handler=cmd_migrate)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create a key; its token is the last line of stdout")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", choices=SCOPES, help="repeatable; default admin")
    create.set_defaults(handler=cmd_keys_create)
    keys.add_parser("list", help="list keys").set_defaults(handler=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=cmd_keys_revoke)
    audit = sub.add_parser("audit", help="verify, export and replay-check the event log").add_subparsers(
        dest="audit_command", required=True
    )
    audit.add_parser("verify", help="recompute the hash chain; exit 1 at the first broken link").set_defaults(
        handler=cmd_audit_verify
    )
    export = audit.add_parser("export", help="write the log as NDJSON")
    export.add_argument("--after", type=int, default=0, help="only events after this position")
    export.add_argument("--output", help="file to write (default stdout)")
    export.set_defaults(handler=cmd_audit_export)
    audit.add_parser(
        "replay-check", help="rebuild every projection into a scratch schema and compare with the live tables"
    ).set_defaults(handler=cmd_audit_replay_check)

    projections = sub.add_parser("projections", help="manage read models").add_subparsers(
        dest="projections_command", required=True
    )
    rebuild = projections.add_parser("rebuild", help="rebuild live projections from zero (all, or NAME)")
    rebuild.add_argument("name", nargs="?")
    rebuild.set_defaults(handler=cmd_projections_rebuild)
    status = projections.add_parser("status", help="checkpoint, lag and stop of every projection")
    status.add_argument("--json", action="store_true", help="print the report as JSON")
    status.set_defaults(handler=cmd_projections_status)

    add_subscriber_parsers(sub)
    notifications = sub.add_parser("notifications", help="notification delivery").add_subparsers(
        dest="notifications_command", required=True
    )
    delivery = notifications.add_parser("status", help="backlog, oldest due, paused channels, failures by channel")
    delivery.add_argument("--json", action="store_true", help="print the report as JSON")
    delivery.set_defaults(handler=cmd_notifications_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as error:  # a setting an operator must fix: say which, without a traceback
        print(f"beacon: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    if hasattr(args, "sync_handler"):
        return int(args.sync_handler(args, settings))
    with contextlib.suppress(KeyboardInterrupt):
        return int(run_async(args.handler(args, settings)))
    return 130


if __name__ == "__main__":
    sys.exit(main())
