"""Rebuilding the widget projection from zero gives byte-identical documents and ETags
(docs/architecture.md#4-projections-and-checkpoints, docs/architecture.md#5-the-widget-is-bytes),
whatever the batch size: a batch of one event and one batch of everything agree."""

from __future__ import annotations

import asyncpg

from projections.public_widget import PublicWidget
from projections.runner import catch_up, ensure_tables
from tests.support.widget_history import append_realistic_history


async def documents(conn: asyncpg.Connection, schema: str) -> list[tuple[str, str, bytes, str]]:
    rows = await conn.fetch(f"SELECT page_slug, sub_page_slug, body, etag FROM {schema}.widget_documents ORDER BY 1, 2")
    return [(r["page_slug"], r["sub_page_slug"], bytes(r["body"]), r["etag"]) for r in rows]


async def test_rebuild_from_zero_is_byte_identical(pool: asyncpg.Pool) -> None:
    store = await append_realistic_history(pool)
    projection = PublicWidget()
    async with pool.acquire() as conn:
        await ensure_tables(conn, [projection])
        await catch_up(conn, store, projection, batch_size=500)
        live = await documents(conn, "public")

        await ensure_tables(conn, [projection], schema="widget_rebuild")
        await catch_up(conn, store, projection, batch_size=1, schema="widget_rebuild")
        rebuilt = await documents(conn, "widget_rebuild")

    assert [(page, sub) for page, sub, _, _ in live] == [("acme", ""), ("acme", "eu")]
    assert rebuilt == live
    assert b"EU storage move" in live[1][2]  # the documents are the real ones, not two empty pages
