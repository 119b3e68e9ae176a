"""Connecting to Postgres: the URL (system or embedded) and the asyncpg pool every process uses."""

from __future__ import annotations

from typing import Any, Protocol

import asyncpg

from infra.settings import Settings


class Fetcher(Protocol):
    """An asyncpg pool or connection: anything that runs a query and returns its rows. Queries take it
    so that one function serves a request (the pool) and a transaction (its connection) alike."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...

    async def fetchrow(self, query: str, *args: Any) -> Any: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...


def database_url(settings: Settings) -> str:
    """`DATABASE_URL` when set, else the embedded server (started on first use)."""
    if settings.database_url:
        return settings.database_url
    from infra.embedded import start_embedded_postgres

    return start_embedded_postgres(settings.data_dir)


def server_settings(settings: Settings, search_path: str | None = None) -> dict[str, str]:
    # Timeouts on every connection: a stuck statement or a forgotten transaction must never hold
    # the append lock for long (issue 6; docs/architecture.md#2-serialised-appends).
    values = {
        "statement_timeout": str(settings.statement_timeout_ms),
        "lock_timeout": str(settings.statement_timeout_ms),
        "idle_in_transaction_session_timeout": "60000",
        "application_name": "beacon",
    }
    if search_path is not None:
        # A connection-start setting, not a SET: the pool's reset (RESET ALL) keeps it.
        values["search_path"] = search_path
    return values


def command_timeout(settings: Settings) -> float | None:
    """Seconds the client waits for any one operation on a connection (None: no limit). The server's
    statement and lock timeouts end a slow statement first, with their clearer errors; this ends a wait the
    server can no longer end: asyncpg's `executemany` stops sending while the socket is full and, without a
    timeout, is never woken if the server's end dies meanwhile (a projection storing rendered pages hung on
    it for good; tests/reliability/test_timeouts.py)."""
    if not settings.statement_timeout_ms:
        return None
    return settings.statement_timeout_ms / 1000 + 5.0


def worker_pool_size(projection_count: int) -> int:
    """The projection runner holds one connection per projection for as long as it is active (its
    advisory lock is a session lock), plus its listener; a few more serve the scheduler's commands, the
    build of a new projection version and the readers' heartbeat (projections/blue_green.py)."""
    return projection_count + 6


class StatelessConnection(asyncpg.Connection):  # type: ignore[misc]
    """A connection whose users keep no session state: only transaction-scoped settings and locks,
    and listeners removed by their owners. Its release then skips asyncpg's reset query (UNLISTEN,
    RESET ALL, advisory unlock), one round trip per request saved; transactions are still rolled
    back by the pool."""

    def get_reset_query(self) -> str:
        return ""


def connection_options(settings: Settings, search_path: str | None = None) -> dict[str, Any]:
    """What every connection Beacon opens carries, pooled or its own (`infra.follow.dedicated`)."""
    return {"command_timeout": command_timeout(settings), "server_settings": server_settings(settings, search_path)}


async def create_pool(
    url: str,
    settings: Settings,
    *,
    max_size: int | None = None,
    stateless: bool = False,
    search_path: str | None = None,
) -> asyncpg.Pool:
    """`stateless=True` for the API's pool (see `StatelessConnection`); the worker's pool, whose
    runner holds session advisory locks, keeps the full reset. `search_path` names the schemas of the
    projection versions this process's code reads (`projections.versions.search_path`)."""
    pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=max_size or settings.pool_size,
        **connection_options(settings, search_path),
        connection_class=StatelessConnection if stateless else asyncpg.Connection,
    )
    assert pool is not None
    return pool
