"""The `beacon` command: serve, worker, migrate, keys. Every subcommand reads settings from the
environment (infra.settings) and prints what an operator needs, with results on stdout."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

from infra.api_keys import ADMIN, SCOPES, create_key, has_any_key, list_keys, revoke_key
from infra.clock import SystemClock
from infra.db import create_pool, database_url
from infra.event_store import PostgresEventStore
from infra.migrate import migrate
from infra.settings import Settings
from projections.registry import all_projections
from projections.runner import ProjectionRunner

log = logging.getLogger("beacon.cli")

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


async def _connect(settings: Settings) -> asyncpg.Connection:
    url = await asyncio.to_thread(database_url, settings)
    conn: asyncpg.Connection = await asyncpg.connect(url)
    await migrate(conn)
    return conn


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    conn = await _connect(settings)
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


async def bootstrap_admin_key(settings: Settings) -> None:
    """First start with no key at all: make an admin key, print it once, keep a 0600 copy."""
    conn = await _connect(settings)
    try:
        if await has_any_key(conn):
            return
        key, token = await create_key(conn, name="bootstrap admin", scopes=(ADMIN,), now=SystemClock().now())
    finally:
        await conn.close()
    path = settings.data_dir / "bootstrap-admin-key"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    print(f"No API key existed, so Beacon created an admin key ({key.id}). It is shown once:\n\n    {token}\n")
    print(f"(A copy is in {path}, readable only by you.)")


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Projections and the maintenance scheduler until `stop` is set."""
    from projections.scheduler import MaintenanceScheduler

    url = await asyncio.to_thread(database_url, settings)
    pool = await create_pool(url, settings)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        store = PostgresEventStore(pool)
        runner = ProjectionRunner(
            pool,
            store,
            all_projections(),
            poll_interval=settings.projection_poll_interval,
            batch_size=settings.projection_batch_size,
        )
        await runner.start()  # creates the schedule table the scheduler reads
        scheduler = MaintenanceScheduler(pool, store, SystemClock(), interval=settings.projection_poll_interval)
        await scheduler.start()
        try:
            await stop.wait()
        finally:
            await scheduler.stop()
            await runner.stop()
    finally:
        await pool.close()


async def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print("beacon worker: projections running; Ctrl-C to stop", flush=True)
    await run_worker(settings, stop)
    return 0


def _worker_process(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.exit(asyncio.run(cmd_worker(argparse.Namespace(), Settings.from_env())))


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from granian import Granian
    from granian.constants import Interfaces

    # Resolve the database once here, so workers share one embedded server (or the given URL).
    url = database_url(settings)
    os.environ["DATABASE_URL"] = url
    settings = Settings.from_env()
    asyncio.run(bootstrap_admin_key(settings))
    worker: multiprocessing.process.BaseProcess | None = None
    if not args.no_worker:
        worker = multiprocessing.get_context("spawn").Process(target=_worker_process, args=({"DATABASE_URL": url},))
        worker.start()
    print(f"Beacon is listening on http://{args.host}:{args.port}", flush=True)
    try:
        Granian(
            "api.asgi:app_from_env",
            factory=True,
            address=args.host,
            port=args.port,
            workers=args.workers,
            interface=Interfaces.ASGI,
            log_access=False,
        ).serve()
    finally:
        if worker is not None:
            worker.terminate()
            worker.join(10)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beacon", description="Beacon status page backend")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API (and, unless --no-worker, the projections)")
    serve.add_argument("--host", default=os.environ.get("BEACON_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("BEACON_PORT", "8000")))
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--no-worker", action="store_true", help="API only; run `beacon worker` elsewhere")
    serve.set_defaults(sync_handler=cmd_serve)

    sub.add_parser("worker", help="run only the projections and the scheduler").set_defaults(handler=cmd_worker)
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
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    if hasattr(args, "sync_handler"):
        return int(args.sync_handler(args, settings))
    with contextlib.suppress(KeyboardInterrupt):
        return int(asyncio.run(args.handler(args, settings)))
    return 130


if __name__ == "__main__":
    sys.exit(main())
