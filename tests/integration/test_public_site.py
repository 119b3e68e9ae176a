"""The public site projection against the real Postgres (docs/architecture.md#public-site): the realistic
page (groups, a sub-page, hidden components, every notice state) gives the reviewed JSON documents and
feeds, byte-identical whatever the batch size (a rebuild from zero equals the live table), and the clock's
tick moves only the indexes."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import asyncpg
import feedparser
import pytest

from infra.event_store import PostgresEventStore
from projections import public_site
from projections.public_site import PublicSite, tick
from projections.public_site_as_of import document_as_of
from projections.rebuild import replay_check
from projections.runner import catch_up, ensure_tables
from projections.site_history import SiteHistory
from tests.support.builders import T0
from tests.support.widget_history import (
    API,
    BILLING,
    SSO,
    append_history,
    append_realistic_history,
    realistic_history,
    schedule,
    ulid,
)


async def documents(conn: asyncpg.Connection, schema: str) -> dict[str, tuple[bytes, str, int]]:
    rows = await conn.fetch(f"SELECT path, body, etag, position FROM {schema}.site_documents ORDER BY path")
    return {r["path"]: (bytes(r["body"]), r["etag"], r["position"]) for r in rows}


async def built(
    conn: asyncpg.Connection, store: PostgresEventStore, *, batch_size: int, schema: str = "public"
) -> dict[str, tuple[bytes, str, int]]:
    """The documents of the public site built from the log in `schema`, `batch_size` events at a time."""
    projection = PublicSite()
    await ensure_tables(conn, [projection], schema=schema)
    await catch_up(conn, store, projection, batch_size=batch_size, schema=schema)
    return await documents(conn, schema)


GOLDEN = Path(__file__).parent.parent / "golden" / "public_site"
"""The realistic page's JSON documents and feeds, as reviewed. `BEACON_UPDATE_GOLDEN=1` rewrites them (then
read the diff: it is the change a Statuspage client would see)."""


def golden_name(path: str) -> str:
    return path.strip("/").replace("/", "__")


def is_golden(path: str) -> bool:
    return "/api/v2/" in path or path.endswith(("history.atom", "history.rss"))


async def test_realistic_page_renders_the_golden_documents(pool: asyncpg.Pool) -> None:
    store = await append_realistic_history(pool)
    projection = PublicSite()
    async with pool.acquire() as conn:
        await ensure_tables(conn, [projection])
        await catch_up(conn, store, projection, batch_size=500)
        live = await documents(conn, "public")

    golden = {path: body for path, (body, _, _) in live.items() if is_golden(path)}
    assert len(golden) == 2 * (8 + 2)  # the page and its sub-page: eight JSON documents and two feeds each
    if os.environ.get("BEACON_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for path, body in golden.items():
            (GOLDEN / golden_name(path)).write_bytes(body)
    expected = {golden_name(path): (GOLDEN / golden_name(path)).read_bytes() for path in golden}
    assert {golden_name(path): body for path, body in golden.items()} == expected

    # What the golden files say, in words.
    summary = json.loads(live["/acme/api/v2/summary.json"][0])
    assert summary["status"] == {"indicator": "critical", "description": "Major System Outage"}
    assert SSO not in json.dumps(summary) and BILLING not in json.dumps(summary)  # hidden, never named
    assert [c["name"] for c in summary["components"]] == ["API", "Auth", "Login", "EU API", "EU Storage", "EU S3"]
    impacts = {i["name"]: i["impact"] for i in json.loads(live["/acme/api/v2/incidents.json"][0])["incidents"]}
    assert impacts == {
        "Billing delays": "minor",  # only a hidden component: no impact shown
        "API errors": "critical",
        "Blip": "critical",  # stays after resolution
        "EU API slow": "minor",
        "Login failing": "major",  # the hidden SSO's full outage does not count
        "Last week": "critical",
    }
    windows = json.loads(live["/acme/api/v2/scheduled-maintenances.json"][0])["scheduled_maintenances"]
    assert [(w["name"], w["status"]) for w in windows] == [
        ("Done already", "completed"),
        ("EU storage move", "in_progress"),
        ("Network work", "scheduled"),
        ("DB upgrade", "scheduled"),
    ]  # "Cancelled" was deleted
    # A window's `started_at` is when it went in progress; one still scheduled keeps its creation.
    started = {w["name"]: (w["created_at"], w["started_at"]) for w in windows}
    assert started["EU storage move"] == ("2026-01-28T10:14:00.000Z", "2026-01-28T10:20:00.000Z")
    assert started["Done already"] == ("2026-01-28T10:15:00.000Z", "2026-01-28T10:25:00.000Z")
    assert started["DB upgrade"] == ("2026-01-28T10:11:00.000Z", "2026-01-28T10:11:00.000Z")
    sub = json.loads(live["/acme/eu/api/v2/summary.json"][0])
    assert sub["page"]["name"] == "Acme — Europe" and sub["page"]["url"] == "https://status.acme.test/eu"
    assert [i["name"] for i in sub["incidents"]] == ["EU API slow"]
    for feed in ("/acme/history.atom", "/acme/history.rss"):
        parsed = feedparser.parse(live[feed][0])
        assert parsed.bozo == 0
        assert len(parsed.entries) == 10 and parsed.entries[0].id == f"urn:beacon:maintenance:{ulid(203)}"
    assert live["/acme/feed.atom"][0] == live["/acme/history.atom"][0]


async def test_rebuild_from_zero_is_byte_identical(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    """One event per batch, batches of 500 and deferred batches agree, documents and positions alike; so do
    both after the clock's tick."""
    store = await append_realistic_history(pool)
    async with pool.acquire() as conn:
        live = await built(conn, store, batch_size=500)
        assert await built(conn, store, batch_size=1, schema="site_rebuild") == live

        # A catch-up's big batches defer their rendering to the end of the pass (PublicSite.settle): same bytes.
        monkeypatch.setattr(public_site, "DEFER_FROM", 3)
        assert await built(conn, store, batch_size=7, schema="site_deferred") == live
        assert await conn.fetchval("SELECT count(*) FROM site_deferred.site_dirty") == 0

        next_day = T0 + timedelta(days=1, hours=1)
        assert await tick(conn, next_day) == 1
        assert await tick(conn, next_day) == 0  # nothing more is due that day
        ticked = await documents(conn, "public")
        assert await tick(conn, next_day, schema="site_rebuild") == 1
        assert await documents(conn, "site_rebuild") == ticked

    changed = {path for path in live if ticked[path][0] != live[path][0]}
    assert changed == {"/acme", "/acme/eu"}  # only the indexes depend on the clock
    assert all(ticked[path][2] == live[path][2] for path in live)  # and no position moved


async def test_replay_check_follows_the_live_clock(pool: asyncpg.Pool) -> None:
    """The live site ticked past midnight; replay-check's rebuild is given that clock and finds no
    difference, and would find one in a document."""
    await append_realistic_history(pool)
    projection = PublicSite()
    async with pool.acquire() as conn:
        await ensure_tables(conn, [projection])
        await catch_up(conn, PostgresEventStore(pool), projection)
        assert await tick(conn, T0 + timedelta(days=2)) == 1

    _, differences = await replay_check(pool, [projection], "site_replay_check")
    assert differences == []

    async with pool.acquire() as conn:
        await conn.execute("UPDATE site_documents SET body = 'tampered' WHERE path = '/acme/api/v2/status.json'")
    _, differences = await replay_check(pool, [projection], "site_replay_check")
    assert [(d.projection, d.table) for d in differences] == [("public_site", "site_documents")]


async def test_as_of_renders_what_was_served(pool: asyncpg.Pool) -> None:
    """Every stored document, rendered again from the log up to an instant after its last event, is the same
    bytes; before the page existed there is nothing."""
    store = await append_realistic_history(pool)
    projection = PublicSite()
    async with pool.acquire() as conn:
        await ensure_tables(conn, [projection, SiteHistory()])  # as_of reads its notices index
        await catch_up(conn, store, projection)
        served = await documents(conn, "public")
        later = T0 + timedelta(minutes=1)
        for path, (body, _, _) in served.items():
            document = await document_as_of(conn, store, path, later)
            assert document is not None and document.body == body, path
        assert await document_as_of(conn, store, "/acme/api/v2/summary.json", T0 - timedelta(days=1)) is None



async def test_month_pages_list_every_month_whatever_the_batches(pool: asyncpg.Pool) -> None:
    """A month page links every month (not their counts): when a month appears, every month page is rendered
    again, so one event per batch and one batch of everything give the same bytes."""
    h = realistic_history()
    day = 24 * 60
    schedule(h, 300, "March work", 40, 35 * day, 35 * day + 60, [API])
    schedule(h, 301, "April work", 41, 70 * day, 70 * day + 60, [API])  # January's page must now link April
    store = await append_history(pool, h)
    async with pool.acquire() as conn:
        live = await built(conn, store, batch_size=1)
        assert await built(conn, store, batch_size=500, schema="site_whole") == live

    months = [f"/acme/history/2026-0{m}" for m in (1, 3, 4)]
    for path in months:
        body = live[path][0].decode()
        assert all(f'href="{other}"' in body for other in months if other != path), path
        assert '<span aria-current="page">' in body and 'class="count"' not in body
    assert 'class="count"' in live["/acme/history"][0].decode()
