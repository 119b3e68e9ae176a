"""The scratch databases the benchmarks measure in: made on the configured server, dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

# Benchmarks run with DATABASE_URL, where Beacon requires BEACON_SECRET_KEY; a throwaway one unless set.
os.environ.setdefault("BEACON_SECRET_KEY", "beacon-benchmarks-secret-key-not-for-production")


def with_database(url: str, name: str) -> str:
    """`url` pointing at the database `name` on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextlib.asynccontextmanager
async def scratch_database(server: str) -> AsyncIterator[str]:
    """A new empty database on `server` (its URL), dropped on the way out, its sessions with it."""
    name = f"beacon_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_database(server, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
