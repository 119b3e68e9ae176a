"""API tests go through HTTP only, as a client would: the real app (with its projection runner) on a
fresh database, driven by an httpx client over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from infra.api_keys import ADMIN, PUBLISH, create_key
from infra.clock import SystemClock
from infra.settings import Settings


@dataclass(frozen=True)
class Keys:
    admin: str
    publish: str
    read: str

    @staticmethod
    def header(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def keys(database_url: str) -> Keys:
    conn = await asyncpg.connect(database_url)
    try:
        now = SystemClock().now()
        tokens = [
            (await create_key(conn, name=name, scopes=scopes, now=now))[1]
            for name, scopes in (("admin", (ADMIN,)), ("publisher", (PUBLISH,)), ("reader", ()))
        ]
    finally:
        await conn.close()
    return Keys(*tokens)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as client:
        yield client
