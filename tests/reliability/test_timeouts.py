"""Issue 6 §7: no statement, lock or forgotten transaction can hold Postgres for long. Every connection of
the app's pool carries statement, lock and idle-in-transaction timeouts, the server enforces them, and the
projection runner carries on after the server kills its connection."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from infra.db import create_pool, server_settings
from infra.follow import CONNECTION_ERRORS
from infra.settings import Settings
from tests.support.http import Keys
from tests.support.live_server import TEST_SECRET_KEY
from tests.support.polling import wait_until, wait_until_blocked_on_a_lock


async def test_every_pooled_connection_carries_the_timeouts(database_url: str) -> None:
    settings = Settings(database_url=database_url, statement_timeout_ms=1234, pool_size=4)
    pool = await create_pool(database_url, settings)
    try:
        connections = [await pool.acquire() for _ in range(4)]  # each one its own backend
        try:
            for conn in connections:
                shown = {
                    name: await conn.fetchval(f"SHOW {name}")
                    for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
                }
                assert shown == {
                    "statement_timeout": "1234ms",
                    "lock_timeout": "1234ms",
                    "idle_in_transaction_session_timeout": "1min",
                }
                assert await conn.fetchval("SHOW application_name") == "beacon"
            assert len({conn.get_server_pid() for conn in connections}) == 4
        finally:
            for conn in connections:
                await pool.release(conn)
    finally:
        await pool.close()


async def test_a_slow_statement_and_a_lock_wait_are_cut_off(database_url: str) -> None:
    settings = Settings(database_url=database_url, statement_timeout_ms=300)
    pool = await create_pool(database_url, settings)
    try:
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.QueryCanceledError):
                await conn.execute("SELECT pg_sleep(30)")
            assert await conn.fetchval("SELECT 1") == 1  # the connection itself survives
        async with pool.acquire() as holder, pool.acquire() as waiter:
            async with holder.transaction():
                await holder.execute("LOCK TABLE beacon_events IN ACCESS EXCLUSIVE MODE")
                # lock_timeout equals statement_timeout, so either may fire first; both end the wait.
                with pytest.raises((asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError)):
                    await waiter.fetchval("SELECT count(*) FROM beacon_events")
    finally:
        await pool.close()


async def test_a_batch_write_on_a_connection_killed_mid_send_fails_instead_of_hanging(database_url: str) -> None:
    """A batch bigger than the socket's buffers (rendered pages are) stops asyncpg's `executemany` until the
    server reads on; if the server's end dies meanwhile, asyncpg never wakes it without a timeout. The pool's
    command timeout turns that into a connection error the follower recovers from (it hung a projection)."""
    settings = Settings(database_url=database_url, statement_timeout_ms=1000)
    pool = await create_pool(database_url, settings)
    observer = await asyncpg.connect(database_url)
    try:
        await observer.execute("CREATE TABLE pages_sent (body text)")
        async with pool.acquire() as holder, pool.acquire() as writer:
            insert = "INSERT INTO pages_sent VALUES ($1)"
            await writer.executemany(insert, [("prepared",)])  # so the batch below starts sending at once
            async with holder.transaction():
                await holder.execute("LOCK TABLE pages_sent IN ACCESS EXCLUSIVE MODE")
                rows = [("x" * 100_000,)] * 200  # 20 MB: the writer blocks on the lock, the socket fills up
                batch = asyncio.create_task(writer.executemany(insert, rows))
                await wait_until_blocked_on_a_lock(observer, writer.get_server_pid())
                await observer.execute("SELECT pg_terminate_backend($1)", writer.get_server_pid())
                done, _ = await asyncio.wait({batch}, timeout=15)
                assert batch in done, "executemany still waits on a connection whose server end is gone"
                assert isinstance(batch.exception(), CONNECTION_ERRORS), repr(batch.exception())
    finally:
        await observer.close()
        await pool.close()


async def test_the_server_kills_a_session_idle_in_a_transaction(database_url: str) -> None:
    settings = Settings(database_url=database_url)
    lowered = {**server_settings(settings), "idle_in_transaction_session_timeout": "200"}
    conn = await asyncpg.connect(database_url, server_settings=lowered)
    try:
        pid = conn.get_server_pid()
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("SELECT count(*) FROM beacon_events")
        await asyncio.sleep(1.0)  # forgotten: the server ends the session, releasing what it held
        with pytest.raises(
            (
                asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
                asyncpg.ConnectionDoesNotExistError,
                asyncpg.InterfaceError,  # asyncpg already saw the server close the connection
            )
        ):
            await conn.fetchval("SELECT 1")
    finally:
        await conn.close()
    other = await asyncpg.connect(database_url)
    try:
        assert await other.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid) == 0
    finally:
        await other.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        projection_poll_interval=0.05,
        read_your_writes_timeout=5.0,
        secret_key=TEST_SECRET_KEY,
    )


async def test_the_projection_runner_recovers_when_its_connections_are_killed(
    app: Litestar, client: AsyncTestClient[Litestar], keys: Keys, database_url: str
) -> None:
    admin = Keys.header(keys.admin)
    first = await client.post("/v2/status_pages", json={"name": "Before", "slug": "before"}, headers=admin)
    assert first.status_code == 201, first.text
    runner = app.state.services.runner
    killer = await asyncpg.connect(database_url)
    try:
        # The runner's connections are the ones holding projection advisory locks (and its listener).
        killed = await killer.fetch(
            """SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a
               WHERE a.datname = current_database() AND a.application_name = 'beacon'
                 AND a.pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')"""
        )
        assert killed and all(row[0] for row in killed)
        second = await client.post("/v2/status_pages", json={"name": "After", "slug": "after"}, headers=admin)
        assert second.status_code == 201, second.text
        listed = await client.get("/v2/status_pages", headers=admin)
        assert {p["slug"] for p in listed.json()["status_pages"]} == {"before", "after"}
        assert (await client.get("/after/api/v1/summary")).status_code == 200
        assert [s.error for s in runner.statuses.values()] == [None] * len(runner.statuses)
        # The passes writes do not wait for come back on their own schedule (spaced, after a reconnect delay).
        await wait_until(lambda: all(s.active for s in runner.statuses.values()), timeout=10)
    finally:
        await killer.close()
