"""The README's commands work as pasted from the repository's root: the `beacon` command is spelled
`bin/beacon` wherever a checkout runs it (in the Docker and Kubernetes sections it is the image's own
`beacon`), and the SDK snippet defines everything it uses and runs against a live Beacon."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.live_server import create_key, live_server

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
SUBCOMMAND = r"beacon (?:serve|worker|migrate|keys|audit|projections)\b"
IN_CONTAINERS = ("## Deploying", "## Operations")
"""Sections about the image, where `beacon` is on `PATH` (they run up to the next section after them)."""


def checkout_sections() -> list[str]:
    """The README without the sections about containers."""
    parts = re.split(r"(?m)^(?=## )", README)
    return [part for part in parts if not part.startswith(IN_CONTAINERS)]


def code_blocks(text: str) -> list[str]:
    return re.findall(r"(?ms)^```(?:sh|console)\n(.*?)^```", text)


def test_every_cli_example_of_a_checkout_runs_bin_beacon() -> None:
    examples = [line for part in checkout_sections() for block in code_blocks(part) for line in block.splitlines()]
    table = [line for line in README.split("## The `beacon` command", 1)[1].split("\n## ", 1)[0].splitlines()]
    commands = [line for line in examples + table if re.search(SUBCOMMAND, line)]
    assert len(commands) >= 14  # the audit examples and every row of the command table
    bare = [line for line in commands if re.search(r"(?<![\w/])" + SUBCOMMAND, line)]
    assert bare == [], "the README's examples must say bin/beacon (or .venv/bin/beacon)"
    assert (ROOT / "bin" / "beacon").stat().st_mode & 0o111


def sdk_snippet() -> tuple[list[str], str]:
    """The shell lines before the heredoc and the Python inside it."""
    section = README.split("**With incident.io's Python SDK.**", 1)[1]
    block = code_blocks(section)[0]
    shell, rest = block.split(" - <<'EOF'\n", 1)
    python, after = rest.split("\nEOF\n", 1)
    assert after.strip() == ""
    return shell.splitlines(), python


def test_the_sdk_snippet_runs_as_pasted(database_url: str, tmp_path: Path) -> None:
    shell, python = sdk_snippet()
    assert shell == [".venv/bin/pip install --quiet 'incident-io>=2.29'", "export PAGE API", ".venv/bin/python"]
    address = 'BEACON = "http://127.0.0.1:8000"'
    assert python.count(address) == 1
    with live_server(database_url, tmp_path) as beacon:
        token = create_key(database_url, "admin", "admin")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=beacon.url, headers=headers) as client:
            api = client.post("/v2/status_page_components", json={"name": "Public API"}).json()
            page = client.post("/v2/status_pages", json={"name": "Acme", "slug": "acme"}).json()
            api_id, page_id = api["status_page_component"]["id"], page["status_page"]["id"]
            structure = {"items": [{"component": {"component_id": api_id}}]}
            assert client.put(f"/v2/status_page_structures/{page_id}", json=structure).is_success
        (tmp_path / ".beacon").mkdir()
        (tmp_path / ".beacon" / "bootstrap-admin-key").write_text(token + "\n")  # where `make run` leaves it
        code = python.replace(address, f'BEACON = "{beacon.url}"')  # the test's port instead of 8000
        env = {"PATH": "/usr/bin:/bin", "PAGE": page_id, "API": api_id}
        done = subprocess.run(
            [sys.executable, "-"], input=code, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr
    created, listed = done.stdout.splitlines()
    assert re.fullmatch(r"201 [0-9A-Z]{26}", created)
    assert listed == "['API slow']"
