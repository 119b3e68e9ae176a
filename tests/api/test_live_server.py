"""`beacon serve` as an operator runs it: a real process, real HTTP, a key made with the CLI."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.live_server import create_key, live_server


def test_serve_answers_health_and_a_cli_key_works(database_url: str, tmp_path: Path) -> None:
    token = create_key(database_url, "operator", "admin")
    with live_server(database_url, tmp_path) as server:
        with urllib.request.urlopen(server.url + "/healthz") as response:
            assert json.load(response) == {"status": "ok"}
        request = urllib.request.Request(server.url + "/v2/api_keys", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request) as response:
            names = [key["name"] for key in json.load(response)["api_keys"]]
        assert names == ["operator"]
        try:
            urllib.request.urlopen(server.url + "/v2/api_keys")
        except urllib.error.HTTPError as error:
            assert error.code == 401
            assert json.load(error)["type"] == "authentication_error"
            assert error.headers["X-Request-Id"]
        else:
            raise AssertionError("an unauthenticated request was served")
