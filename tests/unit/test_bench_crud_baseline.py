"""bench/crud_baseline.py, the CRUD API `bench/commands.py` measures Beacon against, through Litestar's test
client on a fresh database: it must keep answering the bench's commands with Beacon's shapes, or the
bench would measure failures. And the bench's reading of /proc, which says whose CPU a Postgres backend
spends: a wrong attribution would put the cost of one process on another."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from bench.commands import postgres_roles
from bench.crud_baseline import create_app
from infra.api_keys import ADMIN, create_key
from infra.clock import SystemClock
from infra.settings import Settings
from tests.support.live_server import TEST_SECRET_KEY


async def test_an_incident_goes_from_declared_to_resolved(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        _, token = await create_key(conn, name="bench", scopes=(ADMIN,), now=SystemClock().now())
    finally:
        await conn.close()
    app = create_app(Settings(database_url=database_url, secret_key=TEST_SECRET_KEY))
    async with AsyncTestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {token}"

        async def ok(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = await client.request(method, path, json=body)
            assert response.status_code in (200, 201), response.text
            answer: dict[str, Any] = response.json()
            return answer

        page = (await ok("POST", "/v2/status_pages", {"name": "Bench", "slug": "bench"}))["status_page"]
        component = (await ok("POST", "/v2/status_page_components", {"name": "API"}))["status_page_component"]
        items = [{"component": {"component_id": component["id"]}}]
        structure = await ok("PUT", f"/v2/status_page_structures/{page['id']}", {"items": items})
        assert structure["current_structure"]["items"][0]["component"]["name"] == "API"

        declared = await ok("POST", "/v2/status_page_incidents", {
            "idempotency_key": "k1",
            "status_page_id": page["id"],
            "name": "Elevated errors",
            "message": "Investigating.",
            "incident_status": "investigating",
            "notify_subscribers": False,
            "component_statuses": [{"component_id": component["id"], "component_status": "partial_outage"}],
        })
        incident = declared["status_page_incident"]
        assert incident["incident_status"] == "investigating"
        assert [(i["component_status"], "end_at" in i) for i in incident["component_impacts"]] == [
            ("partial_outage", False)
        ]

        resolved = await ok("POST", "/v2/status_page_incident_updates", {
            "status_page_incident_id": incident["id"],
            "message": "Resolved.",
            "incident_status": "resolved",
            "notify_subscribers": False,
        })
        update = resolved["status_page_incident_update"]
        assert update["incident_status"] == "resolved"
        assert update["component_statuses"] == [{"component_id": component["id"], "component_status": "operational"}]

        # The idempotency key answers with the incident as it is now: resolved, its impact closed.
        replay = await client.post("/v2/status_page_incidents", json={
            "idempotency_key": "k1",
            "status_page_id": page["id"],
            "name": "Elevated errors",
            "message": "Investigating.",
            "incident_status": "investigating",
            "notify_subscribers": False,
        })
        assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
        replayed = replay.json()["status_page_incident"]
        assert replayed["id"] == incident["id"] and replayed["incident_status"] == "resolved"
        assert len(replayed["updates"]) == 2
        assert replayed["component_impacts"][0]["end_at"] == update["published_at"]

        refused = await client.post("/v2/status_page_incident_updates", json={
            "status_page_incident_id": incident["id"], "message": "Again.", "notify_subscribers": False
        })
        assert refused.status_code == 422
        assert "resolved" in refused.json()["errors"][0]["message"]


async def test_a_postgres_backend_is_counted_for_the_process_holding_its_connection(
    database_url: str, server_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        backend, port = await conn.fetchrow(
            "SELECT pid, client_port FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        )
        if port is None or port < 0:
            pytest.skip("the test server listens on a Unix socket; the bench attributes TCP connections only")
        database = urlsplit(database_url).path.lstrip("/")
        roles = await postgres_roles(server_url, database, {"bench": [os.getpid()], "nobody": []})
        assert roles["Postgres for the bench"] == [backend]
        assert roles["Postgres for the nobody"] == [] and roles["Postgres, other backends"] == []
        assert backend not in roles["Postgres background"]
        elsewhere = await postgres_roles(server_url, "no_such_database", {"bench": [os.getpid()]})
        assert elsewhere["Postgres for the bench"] == []
    finally:
        await conn.close()
