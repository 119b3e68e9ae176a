"""Shared fixtures. Each test that needs a database gets a fresh one, created from a migrated template
(tests/support/databases.py says which server), so tests never see each other's events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from infra.migrate import migrate
from infra.settings import Settings
from tests.support import databases
from tests.support.http import Keys, make_keys
from tests.support.live_server import TEST_SECRET_KEY, Beacon, running_beacon
from tests.support.public_site_scene import Scene, build_scene


@pytest.fixture(scope="session")
def server_url() -> str:
    return databases.server_url()


@pytest.fixture(scope="session")
async def template_database(server_url: str) -> AsyncIterator[str]:
    """A migrated database that every per-test database is copied from (fast: a file copy)."""
    name = f"beacon_tpl_{uuid.uuid4().hex[:12]}"
    url = await databases.create_database(server_url, name)
    try:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield name
    finally:
        await databases.drop_database(server_url, name)


@pytest.fixture
async def database_url(server_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test only; dropped afterwards."""
    async with databases.fresh_database(server_url, template_database, prefix="beacon_t_") as url:
        yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, projection_poll_interval=0.05, secret_key=TEST_SECRET_KEY)


@pytest.fixture
async def pool(database_url: str, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    from infra.db import create_pool

    pool = await create_pool(database_url, settings)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def keys(database_url: str) -> Keys:
    """One key of every kind a client can hold, a revoked one included."""
    return await make_keys(database_url)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    """The real app (with its projection runner) on the test's fresh database."""
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An httpx client over ASGI, as a client would drive the app."""
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture(scope="module")
async def scene(
    server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Beacon, Scene]]:
    """A running Beacon with the bad day of tests/support/public_site_scene.py, shared by a module's tests
    (the browser and the real consumers of the public documents)."""
    async with running_beacon(server_url, template_database, tmp_path_factory.mktemp("scene")) as beacon:
        yield beacon, await asyncio.to_thread(build_scene, beacon)
