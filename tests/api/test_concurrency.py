"""Many clients at once over HTTP: concurrent updates to one incident are each recorded exactly once
(or refused with 409, never lost), and concurrent identical creates make one resource."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from infra.ids import ulid_to_uuid
from tests.support.http import (
    Keys,
    create_incident,
    list_incident_ids,
    post_incident_update,
    setup_page,
    show_incident,
    statuses,
)

Client = AsyncTestClient[Litestar]


async def test_twenty_clients_posting_updates_at_once_lose_nothing(
    client: Client, keys: Keys, database_url: str
) -> None:
    page = await setup_page(client, keys)
    created = await create_incident(client, keys, page, "race")
    incident_id = created.json()["status_page_incident"]["id"]

    components = (page.api, page.db, page.web)
    responses = await asyncio.gather(
        *(
            post_incident_update(
                client,
                keys,
                incident_id,
                message=f"update {n}",
                component_statuses=statuses((components[n % 3], "degraded_performance")),
            )
            for n in range(20)
        )
    )
    assert {r.status_code for r in responses} <= {201, 409}, [r.text for r in responses if r.status_code >= 300]
    accepted = [r.json()["status_page_incident_update"] for r in responses if r.status_code == 201]
    assert accepted, "at least one of the racing writers must win"

    incident = await show_incident(client, keys, incident_id)
    counts = Counter(update["id"] for update in incident["updates"])
    assert all(counts[update["id"]] == 1 for update in accepted)
    assert len(incident["updates"]) == 1 + len(accepted)  # nothing beyond the 201s, nothing lost
    assert sorted(u["message"] for u in incident["updates"][1:]) == sorted(u["message"] for u in accepted)

    conn = await asyncpg.connect(database_url)
    try:
        versions = await conn.fetch(
            "SELECT originator_version FROM beacon_events WHERE originator_id = $1 ORDER BY notification_id",
            ulid_to_uuid(incident_id),
        )
    finally:
        await conn.close()
    assert [row["originator_version"] for row in versions] == list(range(1, len(accepted) + 2))


async def test_fifty_identical_creates_at_once_make_one_incident(client: Client, keys: Keys) -> None:
    page = await setup_page(client, keys)
    responses = await asyncio.gather(*(create_incident(client, keys, page, "storm") for _ in range(50)))
    assert [r.status_code for r in responses] == [201] * 50, [r.text for r in responses if r.status_code != 201]
    ids = {r.json()["status_page_incident"]["id"] for r in responses}
    assert len(ids) == 1
    replayed = [r.headers.get("idempotent-replayed") for r in responses]
    assert replayed.count("true") == 49 and replayed.count(None) == 1
    assert await list_incident_ids(client, keys, status_page_id=page.id) == list(ids)
