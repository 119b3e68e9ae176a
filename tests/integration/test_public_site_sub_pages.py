"""A sub-page is a page of its own (docs/architecture.md#public-site): its `incidents.json`, its feeds and
its history's months come from its own notices (those naming one of its visible components), not from the
parent's 50 newest or the parent's months — in the projection and in an `as_of` read alike."""

from __future__ import annotations

import json
from datetime import timedelta

import asyncpg

from domain.base import Actor, CommandContext
from domain.component import Component
from domain.incident import Incident
from domain.maintenance import Maintenance
from domain.status_page import StatusPage
from infra.event_store import PostgresEventStore
from projections.public_site import PublicSite
from projections.public_site_as_of import document_as_of
from projections.runner import catch_up, ensure_tables
from projections.site_history import SiteHistory
from tests.support.builders import T0
from tests.support.widget_history import API, EU_API, History, declare, incident_update, realistic_history

MARCH = 40 * 24 * 60
"""Minutes after `T0` (28 January) that fall in March."""
MAY = 100 * 24 * 60


def history() -> History:
    """The realistic page, then an EU incident resolved long ago, then 50 newer incidents of the parent's
    API alone; a parent-only incident in March and an EU one in May."""
    h = realistic_history()
    old_eu = declare(h, 3000, "EU outage long ago", 40, {EU_API: "partial_outage"})
    incident_update(h, old_eu, 41, "Fixed", "resolved")
    for i in range(50):
        api = declare(h, 3100 + i, f"API blip {i}", 50 + 2 * i, {API: "degraded_performance"})
        incident_update(h, api, 51 + 2 * i, "Fixed", "resolved")
    march = declare(h, 3200, "API in March", MARCH, {API: "degraded_performance"})
    incident_update(h, march, MARCH + 1, "Fixed", "resolved")
    may = declare(h, 3201, "EU in May", MAY, {EU_API: "degraded_performance"})
    incident_update(h, may, MAY + 1, "Fixed", "resolved")
    return h


async def append(pool: asyncpg.Pool) -> PostgresEventStore:
    """Each event recorded at its own instant, so the page's instant is May's and January is past its
    91 days."""
    store = PostgresEventStore(pool)
    for event in history().events:
        context = CommandContext(now=max(event.timestamp, T0), actor=Actor(type="system"))
        [kind] = [cls for cls in (StatusPage, Component, Incident, Maintenance) if isinstance(event, cls.Event)]
        await store.append(
            [event], stream_type=kind.STREAM_TYPE, expected_version=event.originator_version - 1, context=context
        )
    return store


async def test_sub_page_lists_and_months_are_its_own(pool: asyncpg.Pool) -> None:
    store = await append(pool)
    projection = PublicSite()
    async with pool.acquire() as conn:
        await ensure_tables(conn, [projection, SiteHistory()])
        await catch_up(conn, store, projection, batch_size=500)
        served = {
            r["path"]: bytes(r["body"]) for r in await conn.fetch("SELECT path, body FROM site_documents ORDER BY path")
        }

        parent = json.loads(served["/acme/api/v2/incidents.json"])["incidents"]
        assert len(parent) == 50 and "EU outage long ago" not in [i["name"] for i in parent]
        sub = [i["name"] for i in json.loads(served["/acme/eu/api/v2/incidents.json"])["incidents"]]
        assert sub == ["EU in May", "EU outage long ago", "EU API slow"]  # not only those among the parent's 50
        assert b"EU outage long ago" in served["/acme/eu/history.atom"]

        # The parent has January, March and May; the sub-page only January and May.
        assert {p for p in served if p.startswith("/acme/history/")} == {
            "/acme/history/2026-01",
            "/acme/history/2026-03",
            "/acme/history/2026-05",
        }
        assert {p for p in served if p.startswith("/acme/eu/history/")} == {
            "/acme/eu/history/2026-01",
            "/acme/eu/history/2026-05",
        }
        january = served["/acme/eu/history/2026-01"]
        assert b"/acme/eu/history/2026-05" in january and b"/acme/eu/history/2026-03" not in january
        assert b"/acme/eu/history/2026-03" not in served["/acme/eu/history"]

        # Event by event, the same documents at the same positions (a sub-page's months' links included).
        await ensure_tables(conn, [projection], schema="site_one_by_one")
        await catch_up(conn, store, projection, batch_size=1, schema="site_one_by_one")
        query = "SELECT path, body, position FROM {}.site_documents ORDER BY path"
        one = {r["path"]: (r["body"], r["position"]) for r in await conn.fetch(query.format("site_one_by_one"))}
        batched = {r["path"]: (r["body"], r["position"]) for r in await conn.fetch(query.format("public"))}
        assert {p: v[1] for p, v in one.items()} == {p: v[1] for p, v in batched.items()}
        assert one == batched

        # An `as_of` read renders the same documents from the log.
        later = T0 + timedelta(minutes=MAY + 2)
        for path in ("/acme/eu/api/v2/incidents.json", "/acme/eu/history/2026-01", "/acme/eu/history"):
            document = await document_as_of(conn, store, path, later)
            assert document is not None and document.body == served[path], path
        assert await document_as_of(conn, store, "/acme/eu/history/2026-03", later) is None
