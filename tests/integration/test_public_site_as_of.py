"""A public-site `as_of` read folds only the page's events (docs/adr/0004-time-travel-index-and-snapshots.md):
its own stream, its components', its notices' (found through `site_history`) — the same bytes as the old
fold of the whole log, at a cost that other pages' events do not change."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from domain.base import Actor, CommandContext
from domain.incident import Incident
from domain.status_page import StatusPage
from infra.event_store import PostgresEventStore
from infra.ids import ulid_to_uuid
from projections.public_site import PublicSite
from projections.public_site_as_of import document_as_of, fold_page
from projections.runner import Projection, catch_up, ensure_tables
from projections.site_history import SiteHistory
from tests.support.builders import T0, at
from tests.support.widget_history import BY, PAGE, append_realistic_history, realistic_history, ulid

NOISE_INCIDENTS = 30


async def append_other_page(store: PostgresEventStore) -> int:
    """Another page with incidents of its own, appended after the realistic one; returns its event count."""
    context = CommandContext(now=T0, actor=Actor(type="system"))
    other = StatusPage.create(id=ulid_to_uuid(ulid(5000)), name="Other", slug="other", at=at(40), by=BY)
    events = list(other.collect_events())
    for i in range(NOISE_INCIDENTS):
        incident = Incident.declare(
            id=ulid_to_uuid(ulid(5001 + i)),
            status_page_id=ulid(5000),
            page_components=frozenset(),
            name=f"Other {i}",
            message="down",
            status="investigating",
            component_statuses={},
            notify_subscribers=False,
            update_id=ulid(6001 + i),
            at=at(41 + i),
            by=BY,
        )
        events.extend(incident.collect_events())
    for event in events:
        kind = StatusPage if isinstance(event, StatusPage.Event) else Incident
        await store.append(
            [event], stream_type=kind.STREAM_TYPE, expected_version=event.originator_version - 1, context=context
        )
    return len(events)


async def test_as_of_reads_only_the_pages_events(pool: asyncpg.Pool) -> None:
    store = await append_realistic_history(pool)
    noise = await append_other_page(store)
    projections: list[Projection] = [PublicSite(), SiteHistory()]
    later = T0 + timedelta(hours=2)
    async with pool.acquire() as conn:
        await ensure_tables(conn, projections)
        # Before the index caught up: the log past its checkpoint is searched for the page's notices.
        _, cost = await fold_page(conn, PAGE, later)
        assert cost.tail > 0
        for projection in projections:
            await catch_up(conn, store, projection)
        served = {
            r["path"]: bytes(r["body"])
            for r in await conn.fetch("SELECT path, body FROM site_documents WHERE status_page_id = $1", PAGE)
        }
        for path, body in served.items():
            indexed = await document_as_of(conn, store, path, later)
            full = await document_as_of(conn, store, path, later, full=True)
            assert indexed is not None and full is not None
            assert indexed.body == full.body == body, path

        _, cost = await fold_page(conn, PAGE, later)
        assert cost.tail == 0
        # Every realistic event is the page's (its stream, its six components, its notices); none of the other's.
        assert cost.folded == len(realistic_history().events)
        assert cost.position == len(realistic_history().events) + noise
        # Earlier, fewer: only what was recorded by then (everything was recorded at T0 here, so none before).
        _, before = await fold_page(conn, PAGE, T0 - timedelta(seconds=1))
        assert before.folded == 0
