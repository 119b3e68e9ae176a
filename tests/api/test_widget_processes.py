"""Multi-process freshness (docs/architecture.md#widget): two `beacon serve` processes on one database, only one
running the projections; a write through one is on the other's widget within a second."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.live_server import create_key, live_server


def call(method: str, url: str, token: str | None = None, body: object = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


def test_a_write_through_one_process_reaches_the_other_within_a_second(database_url: str, tmp_path: Path) -> None:
    admin = create_key(database_url, "admin", "admin")
    with (
        live_server(database_url, tmp_path) as writer,
        live_server(database_url, tmp_path, worker=False) as reader,
    ):
        status, body = call("POST", f"{writer.url}/v2/status_pages", admin, {"name": "Acme", "slug": "acme"})
        assert status == 201
        page: dict[str, Any] = json.loads(body)["status_page"]
        widget = f"{reader.url}/acme/api/v1/summary"
        deadline = time.monotonic() + 5  # first document: the reader may still be starting its cache
        while time.monotonic() < deadline and b'"page_title":"Acme"' not in _get(widget):
            time.sleep(0.01)

        status, _ = call("PUT", f"{writer.url}/v2/status_pages/{page['id']}", admin, {"name": "Acme Corp"})
        assert status == 200
        answered = time.monotonic()
        seen = b""
        while time.monotonic() - answered < 1.0:
            seen = _get(widget)
            if b'"page_title":"Acme Corp"' in seen:
                break
        assert b'"page_title":"Acme Corp"' in seen, seen


def _get(url: str) -> bytes:
    try:
        return call("GET", url)[1]
    except urllib.error.HTTPError:
        return b""
