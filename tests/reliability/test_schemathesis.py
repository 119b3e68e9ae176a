"""Issue 6 §5: Schemathesis generates requests from Beacon's own OpenAPI (`/schema/openapi.json`) and
runs them against a live server with an admin key. Zero 5xx is a hard requirement; the run prints how
many cases it generated."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import Beacon

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")

KNOWN_DOC_GAPS = "status_code_conformance,response_schema_conformance,positive_data_acceptance,allow_header_conformance"
"""Checks that fail because of the generated OpenAPI document, not the responses: Litestar documents only
200/400 per operation and documents its own `{status_code, detail}` 400 body instead of the SPEC §1
envelope, and the schemas do not carry Beacon's field rules (slug pattern, ids that must exist), so a
correct 404/409/415/422 reads as "undocumented" or "valid request rejected"."""


def run_schemathesis(beacon: Beacon, tmp_path: Path, *, examples: int, exclude_checks: str = "") -> tuple[int, str]:
    args = [
        SCHEMATHESIS, "run", beacon.url + "/schema/openapi.json",
        "-H", f"Authorization: Bearer {beacon.keys.admin}",
        "--checks", "all",
        "--max-examples", str(examples),
        "--seed", "6",
        # Revoking API keys is a legitimate operation, but the stateful phase would revoke its own key.
        "--exclude-path", "/v2/api_keys/{api_key_id}",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    if exclude_checks:
        args += ["--exclude-checks", exclude_checks]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    generated = re.search(r"(\d+) generated", output)
    print(f"schemathesis: {generated.group(1) if generated else '?'} cases, exit {done.returncode}")
    print(output[-6000:])
    return done.returncode, output


def _assert_no_server_error(output: str) -> None:
    assert "Server error" not in output and "not_a_server_error" not in output, output[-6000:]


async def test_schemathesis_finds_no_server_error(beacon: Beacon, tmp_path: Path) -> None:
    code, output = run_schemathesis(beacon, tmp_path, examples=25, exclude_checks=KNOWN_DOC_GAPS)
    _assert_no_server_error(output)
    assert code == 0, output[-6000:]


@pytest.mark.xfail(reason="OpenAPI documents only 200/400 (Litestar's 400 body, not the envelope)", strict=False)
async def test_schemathesis_all_checks(beacon: Beacon, tmp_path: Path) -> None:
    code, output = run_schemathesis(beacon, tmp_path, examples=10)
    _assert_no_server_error(output)
    assert code == 0, output[-6000:]


@pytest.mark.slow
async def test_schemathesis_long_run_finds_no_server_error(beacon: Beacon, tmp_path: Path) -> None:
    code, output = run_schemathesis(beacon, tmp_path, examples=300, exclude_checks=KNOWN_DOC_GAPS)
    _assert_no_server_error(output)
    assert code == 0, output[-6000:]
