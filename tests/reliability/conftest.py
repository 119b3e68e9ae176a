"""Fixtures for the reliability suite: the real app over HTTP (in-process and as live `beacon serve`
processes) and one key of every kind a client can hold, a revoked one included."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from infra.api_keys import ADMIN, PUBLISH, create_key, revoke_key
from infra.clock import SystemClock
from infra.settings import Settings
from tests.conftest import with_database
from tests.live_server import LiveServer, live_server


@dataclass(frozen=True)
class Keys:
    """Bearer tokens for each kind of caller; `revoked` was valid once and is revoked now."""

    admin: str
    publish: str
    read: str
    revoked: str

    @staticmethod
    def header(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


async def make_keys(database_url: str) -> Keys:
    conn = await asyncpg.connect(database_url)
    try:
        now = SystemClock().now()
        tokens = [
            (await create_key(conn, name=name, scopes=scopes, now=now))[1]
            for name, scopes in (("admin", (ADMIN,)), ("publisher", (PUBLISH,)), ("reader", ()))
        ]
        revoked, revoked_token = await create_key(conn, name="revoked", scopes=(ADMIN,), now=now)
        assert await revoke_key(conn, revoked.id, now=now)
    finally:
        await conn.close()
    admin, publish, read = tokens
    return Keys(admin=admin, publish=publish, read=read, revoked=revoked_token)


@pytest.fixture
async def keys(database_url: str) -> Keys:
    return await make_keys(database_url)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as client:
        yield client


@dataclass(frozen=True)
class Beacon:
    """A running `beacon serve` on its own database, with keys of every kind."""

    server: LiveServer
    database_url: str
    keys: Keys

    @property
    def url(self) -> str:
        return self.server.url


@contextlib.asynccontextmanager
async def fresh_database(server_url: str, template_database: str) -> AsyncIterator[str]:
    """A migrated database of its own (copied from the template) for one live server; dropped afterwards."""
    name = f"beacon_r_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    finally:
        await admin.close()
    try:
        yield with_database(server_url, name)
    finally:
        admin = await asyncpg.connect(server_url)  # a new one: the test may have restarted Postgres
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def running_beacon(
    server_url: str, template_database: str, tmp_path: Path, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Beacon]:
    async with fresh_database(server_url, template_database) as url:
        keys = await make_keys(url)
        with live_server(url, tmp_path, extra_env=extra_env) as server:
            yield Beacon(server, url, keys)


@pytest.fixture(scope="module")
async def beacon(
    server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Beacon]:
    """One live server per module: real granian, real sockets (huge headers and raw bytes reach the real
    HTTP stack), shared by that module's tests, which must not depend on each other's data."""
    async with running_beacon(server_url, template_database, tmp_path_factory.mktemp("beacon")) as running:
        yield running
