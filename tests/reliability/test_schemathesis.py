"""Issue 6 §5: Schemathesis generates requests from Beacon's own OpenAPI (`/schema/openapi.json`) and
runs them against a live server with an admin key, with every check: zero 5xx, every status documented,
every body (errors included: docs/architecture.md#error-envelope) valid against the document,
`OPTIONS`/`405` listing the right methods. The run prints how many cases it generated."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.live_server import Beacon, running_beacon

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")

CONFIG = """
[checks.positive_data_acceptance]
# 422 is Beacon's (and incident.io's) answer to a well-formed request that breaks a rule the document cannot
# state: a status page id that does not exist, start_at after end_at, an empty name. Everything else a
# schema-valid request gets must be a success, 401/403/404/409 or 429, as Schemathesis expects by default.
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
"""


@pytest.fixture(scope="module")
async def beacon(
    server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Beacon]:
    """A live server whose rate limit does not turn the run into a test of 429s."""
    env = {"BEACON_RATE_LIMIT_PER_MINUTE": "10000000", "BEACON_PUBLIC_SUBSCRIBE_PER_MINUTE": "10000000"}
    async with running_beacon(server_url, template_database, tmp_path_factory.mktemp("beacon"), env) as running:
        yield running


def run_schemathesis(beacon: Beacon, tmp_path: Path, *, examples: int) -> tuple[int, str]:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    args = [
        SCHEMATHESIS, "--config-file", str(config), "run", beacon.url + "/schema/openapi.json",
        "-H", f"Authorization: Bearer {beacon.keys.admin}",
        "--checks", "all",
        "--max-examples", str(examples),
        "--seed", "6",
        # Revoking API keys is a legitimate operation, but the stateful phase would revoke its own key.
        "--exclude-path", "/v2/api_keys/{api_key_id}",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    generated = re.search(r"(\d+) generated", output)
    print(f"schemathesis: {generated.group(1) if generated else '?'} cases, exit {done.returncode}")
    print(output[-6000:])
    return done.returncode, output


def _assert_no_server_error(output: str) -> None:
    assert "Server error" not in output and "not_a_server_error" not in output, output[-6000:]


async def test_schemathesis_all_checks(beacon: Beacon, tmp_path: Path) -> None:
    code, output = run_schemathesis(beacon, tmp_path, examples=25)
    _assert_no_server_error(output)
    assert code == 0, output[-6000:]
    assert "Rate limited" not in output, "the run measured 429s, not Beacon"


@pytest.mark.slow
async def test_schemathesis_long_run(beacon: Beacon, tmp_path: Path) -> None:
    code, output = run_schemathesis(beacon, tmp_path, examples=100)
    _assert_no_server_error(output)
    assert code == 0, output[-6000:]
