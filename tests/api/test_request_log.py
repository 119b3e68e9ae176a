"""Structured logs (README "Operations"): a real `beacon serve` writes one JSON line per request with the route
template, never a token, an email address from a body or a query string; and the text format for terminals."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.request_log import REQUEST_LOGGER
from infra.logs import TextFormatter
from tests.support.http import Keys
from tests.support.live_server import create_key, live_server, request

EMAIL = "oncall.lead@example.com"
QUERY_MARKER = "queryvalue7f3a"
METRICS_TOKEN = "metrics-token-5d1c"
WRONG_TOKEN = "bk_not-a-real-key-9e0b7c"
REQUEST_FIELDS = {
    *("time", "level", "logger", "message"),
    *("method", "route", "status", "duration_ms", "request_id", "key_id"),
}


def test_a_served_scenario_logs_one_json_line_per_request_without_secrets(database_url: str, tmp_path: Path) -> None:
    admin = create_key(database_url, "admin", "admin")
    env = {"BEACON_LOG_FORMAT": "json", "BEACON_METRICS_TOKEN": METRICS_TOKEN}
    expected: list[tuple[str, str, int, str]] = []  # method, route, status, request id

    with live_server(database_url, tmp_path, extra_env=env) as server:

        def send(
            method: str, path: str, route: str, status: int, token: str | None = None, body: object = None
        ) -> dict[str, Any]:
            answer = request(method, server.url + path, token, body)
            assert answer.status == status, answer
            expected.append((method, route, status, answer.request_id))
            return json.loads(answer.body) if answer.body.startswith(b"{") else {}

        page = send("POST", "/v2/status_pages", "/v2/status_pages", 201, admin, {"name": "Acme", "slug": "acme"})
        page_id = page["status_page"]["id"]
        incident = {
            "idempotency_key": "first",
            "status_page_id": page_id,
            "name": "Login failing",
            "message": f"Write to {EMAIL} if you are affected.",
            "incident_status": "investigating",
            "notify_subscribers": False,
        }
        send("POST", "/v2/status_page_incidents", "/v2/status_page_incidents", 201, admin, incident)
        # Refused bodies carrying the address: a malformed slug and a name far too long.
        send("POST", "/v2/status_pages", "/v2/status_pages", 422, admin, {"name": "Acme", "slug": EMAIL})
        send("POST", "/v2/status_pages", "/v2/status_pages", 422, admin, {"name": EMAIL * 20, "slug": "acme-2"})
        send("GET", f"/v2/status_pages?page_size=5&after={QUERY_MARKER}", "/v2/status_pages", 422, admin)
        send("GET", f"/v2/status_pages/{page_id}", "/v2/status_pages/{status_page_id}", 200, admin)
        send("GET", "/v2/status_pages", "/v2/status_pages", 401, WRONG_TOKEN)
        send("GET", f"/no/such/page?email={EMAIL}", "unmatched", 404)
        send("GET", "/metrics", "/metrics", 200, METRICS_TOKEN)
        send("GET", "/metrics", "/metrics", 401, WRONG_TOKEN)

    log = server.log()
    for secret in (admin, WRONG_TOKEN, METRICS_TOKEN, EMAIL, "oncall.lead", QUERY_MARKER, "page_size", page_id):
        assert secret not in log, f"{secret!r} is in the log"

    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    # Every other line is one the CLI prints for the operator (stdout), not a log record.
    others = [line for line in log.splitlines() if line and not line.startswith("{")]
    assert all(line.startswith(("Beacon is listening", "beacon worker:")) for line in others), others
    assert any(r["logger"] == "_granian" for r in records), "granian's own messages are JSON too"
    lines = [r for r in records if r["logger"] == REQUEST_LOGGER]
    assert all(REQUEST_FIELDS <= set(line) for line in lines), lines
    by_id = {line["request_id"]: line for line in lines}
    assert len(lines) == len(by_id)
    # Besides the scenario, only the test's readiness probes.
    assert {line["route"] for rid, line in by_id.items() if rid not in {e[3] for e in expected}} == {"/readyz"}
    for method, route, status, request_id in expected:
        line = by_id[request_id]
        assert (line["method"], line["route"], line["status"]) == (method, route, status)
        assert line["duration_ms"] > 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    keyed = {by_id[rid]["key_id"] for _, _, status, rid in expected if status in (200, 201) and rid in by_id}
    keyed.discard(None)  # /metrics has no API key
    assert len(keyed) == 1 and re.fullmatch(r"[0-9A-Z]{26}", keyed.pop())
    assert by_id[expected[6][3]]["key_id"] is None  # the unknown key


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger(REQUEST_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


async def test_the_text_format_is_one_readable_line(
    client: AsyncTestClient[Litestar], keys: Keys, text_log: io.StringIO
) -> None:
    response = await client.get("/v2/status_pages?page_size=3", headers=Keys.header(keys.read))
    assert response.status_code == 200
    [line] = text_log.getvalue().splitlines()
    request_id = response.headers["x-request-id"]
    fields = rf"duration_ms=[\d.]+ request_id={request_id} key_id=\w{{26}}"
    pattern = rf"\S+Z INFO beacon\.request GET /v2/status_pages 200 {fields}"
    assert re.fullmatch(pattern, line), line
