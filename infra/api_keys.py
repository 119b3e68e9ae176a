"""API keys (docs/architecture.md#api-keys): shown once at creation, stored only as a SHA-256 hash, revocable.

Tokens carry 256 random bits, so a plain SHA-256 is enough (no password stretching needed) and lets
authentication be one indexed lookup."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from infra.ids import new_ulid

PUBLISH = "status_pages.publish_updates"
ADMIN = "admin"
MANAGE_SUBSCRIBERS = "status_pages.manage_subscribers"
"""Subscribers' personal data: list, create, unsubscribe, erase (README "Subscribers")."""
SCOPES = (PUBLISH, MANAGE_SUBSCRIBERS, ADMIN)
TOKEN_PREFIX = "bk_"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None

    def grants(self, scope: str | None) -> bool:
        """Any valid key reads; writes need the scope, and `admin` grants everything."""
        return scope is None or ADMIN in self.scopes or scope in self.scopes


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(row["id"], row["name"], tuple(row["scopes"]), row["created_at"], row["revoked_at"])


async def create_key(
    conn: asyncpg.Connection, *, name: str, scopes: tuple[str, ...], now: datetime
) -> tuple[ApiKey, str]:
    """Create a key; return it with its token, which is never retrievable again."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(id=new_ulid(now), name=name, scopes=scopes, created_at=now)
    await conn.execute(
        "INSERT INTO beacon_api_keys (id, name, scopes, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        key.id,
        key.name,
        list(key.scopes),
        hash_token(token),
        key.created_at,
    )
    return key, token


async def find_by_token(conn: asyncpg.Connection | asyncpg.Pool, token: str) -> ApiKey | None:
    row = await conn.fetchrow(
        "SELECT id, name, scopes, created_at, revoked_at FROM beacon_api_keys"
        " WHERE token_hash = $1 AND revoked_at IS NULL",
        hash_token(token),
    )
    return _key(row) if row else None


async def list_keys(conn: asyncpg.Connection | asyncpg.Pool) -> list[ApiKey]:
    rows = await conn.fetch("SELECT id, name, scopes, created_at, revoked_at FROM beacon_api_keys ORDER BY id")
    return [_key(row) for row in rows]


async def revoke_key(conn: asyncpg.Connection | asyncpg.Pool, key_id: str, *, now: datetime) -> bool:
    """Revoke a key; False if there is no such (unrevoked) key."""
    result = await conn.execute(
        "UPDATE beacon_api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", key_id, now
    )
    return bool(result.endswith(" 1"))


async def has_any_key(conn: asyncpg.Connection | asyncpg.Pool) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM beacon_api_keys)"))
