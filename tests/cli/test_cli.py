"""The `beacon` command as an operator runs it: a real subprocess per call, against a fresh test database
named by `DATABASE_URL`, asserting exit statuses and what it prints. The functions behind each subcommand
have their own tests; these catch what only the command line can get wrong (a connection helper that
migrates before `beacon migrate` does, so it always said "nothing (up to date)")."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from infra.api_keys import ADMIN, PUBLISH, create_key, find_by_token
from infra.clock import SystemClock
from infra.settings import Settings
from projections.registry import all_projections
from tests.support.live_server import BEACON, TEST_SECRET_KEY, operator_env

MIGRATIONS = sorted(path.name for path in (Path(__file__).parents[2] / "infra" / "migrations").glob("*.sql"))


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def beacon(database_url: str, tmp_path: Path, *args: str) -> Run:
    """`beacon ARGS…` with only the environment an operator would set."""
    env = operator_env(database_url, tmp_path)
    done = subprocess.run([BEACON, *args], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    return Run(done.returncode, done.stdout, done.stderr)


async def test_migrate_names_what_it_applied_then_nothing(empty_database: str, tmp_path: Path) -> None:
    first = beacon(empty_database, tmp_path, "migrate")
    assert (first.code, first.lines) == (0, ["applied: " + ", ".join(MIGRATIONS)]), first.err

    again = beacon(empty_database, tmp_path, "migrate")
    assert (again.code, again.lines) == (0, ["applied: nothing (up to date)"]), again.err


async def test_keys_create_list_revoke(database_url: str, tmp_path: Path) -> None:
    created = beacon(database_url, tmp_path, "keys", "create", "--name", "ci bot", "--scope", PUBLISH)
    assert created.code == 0, created.err
    token = created.lines[-1]
    announced = r"created API key (\w{26}) \(ci bot\) with scopes (.+); the token is shown once:"
    match = re.fullmatch(announced, created.lines[0])
    assert match and match.group(2) == PUBLISH
    key_id = match.group(1)
    conn = await asyncpg.connect(database_url)
    try:
        key = await find_by_token(conn, token)  # the printed token is the one stored (as a hash)
    finally:
        await conn.close()
    assert key is not None and key.id == key_id and key.scopes == (PUBLISH,)

    listed = beacon(database_url, tmp_path, "keys", "list")
    assert (listed.code, listed.lines) == (0, [f"{key_id}\tci bot\t{PUBLISH}\tactive"]), listed.err

    revoked = beacon(database_url, tmp_path, "keys", "revoke", key_id)
    assert (revoked.code, revoked.lines) == (0, [f"revoked {key_id}"]), revoked.err
    assert beacon(database_url, tmp_path, "keys", "list").lines == [f"{key_id}\tci bot\t{PUBLISH}\trevoked"]

    twice = beacon(database_url, tmp_path, "keys", "revoke", key_id)
    assert (twice.code, twice.lines) == (1, [f"no active key {key_id}"])


async def _write_some_history(database_url: str) -> int:
    """A page with a component and an incident, written through the API as a client would; the number of
    events in the log. The app's runner has caught up when the last write answers (read-your-writes)."""
    conn = await asyncpg.connect(database_url)
    try:
        _, token = await create_key(conn, name="admin", scopes=(ADMIN,), now=SystemClock().now())
    finally:
        await conn.close()
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(Settings(database_url=database_url, projection_poll_interval=0.05, secret_key=TEST_SECRET_KEY))
    async with AsyncTestClient(app=app) as client:
        component = (await client.post("/v2/status_page_components", json={"name": "API"}, headers=headers)).json()
        component_id = component["status_page_component"]["id"]
        page = await client.post("/v2/status_pages", json={"name": "Acme", "slug": "acme"}, headers=headers)
        page_id = page.json()["status_page"]["id"]
        structure = {"items": [{"component": {"component_id": component_id}}]}
        assert (await client.put(f"/v2/status_page_structures/{page_id}", json=structure, headers=headers)).is_success
        incident = {
            "idempotency_key": "cli-1", "status_page_id": page_id, "name": "Slow", "message": "Looking.",
            "incident_status": "investigating", "notify_subscribers": False,
            "component_statuses": [{"component_id": component_id, "component_status": "degraded_performance"}],
        }  # fmt: skip
        assert (await client.post("/v2/status_page_incidents", json=incident, headers=headers)).status_code == 201
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM beacon_events")
    finally:
        await conn.close()
    return count


async def test_audit_verify_export_and_replay_check(database_url: str, tmp_path: Path) -> None:
    events = await _write_some_history(database_url)
    assert events >= 4

    verified = beacon(database_url, tmp_path, "audit", "verify")
    assert verified.code == 0, verified.err
    assert verified.lines[0] == f"ok: {events} events, hash chain intact up to position {events}"
    assert re.fullmatch(r"head hash: [0-9a-f]{64} \(record it elsewhere .*\)", verified.lines[1])

    exported = beacon(database_url, tmp_path, "audit", "export")
    assert exported.code == 0 and exported.err.strip().endswith(f"exported {events} events")
    assert [json.loads(line)["position"] for line in exported.lines] == list(range(1, events + 1))
    to_file = beacon(database_url, tmp_path, "audit", "export", "--after", "1", "--output", "log.ndjson")
    assert to_file.code == 0 and to_file.out == ""  # progress and the count on stderr, the log in the file
    written = (tmp_path / "log.ndjson").read_text().splitlines()
    assert [json.loads(line)["position"] for line in written] == list(range(2, events + 1))

    checked = beacon(database_url, tmp_path, "audit", "replay-check")
    assert checked.code == 0, checked.out + checked.err
    assert checked.lines[0].startswith(f"ok: {len(all_projections())} projection(s)")
    assert checked.lines[0].endswith("rebuilt from the log match the live tables")
    assert checked.lines[1].startswith(f"replayed {events} events in ")

    superuser = await asyncpg.connect(database_url)
    try:  # past the append-only trigger, as a malicious superuser would
        await superuser.execute("SET session_replication_role = replica")
        await superuser.execute("UPDATE beacon_events SET request_id = 'forged' WHERE notification_id = 3")
    finally:
        await superuser.close()
    broken = beacon(database_url, tmp_path, "audit", "verify")
    assert broken.code == 1
    assert broken.lines[0].startswith("BROKEN at position 3:")
    assert broken.lines[1] == "the chain is intact up to position 2 (2 events)"


async def test_projections_rebuild_all_one_and_unknown(database_url: str, tmp_path: Path) -> None:
    events = await _write_some_history(database_url)
    names = [p.name for p in all_projections()]

    everything = beacon(database_url, tmp_path, "projections", "rebuild")
    assert everything.code == 0, everything.err
    assert [line.split(":")[0] for line in everything.lines[:-1]] == [f"rebuilt {name}" for name in names]
    assert everything.lines[-1].startswith(f"rebuilt {len(names)} projection(s) from {events} events in ")

    one = beacon(database_url, tmp_path, "projections", "rebuild", "public_widget")
    assert one.code == 0, one.err
    assert one.lines[0].startswith("rebuilt public_widget: ") and one.lines[0].endswith(" events")
    assert one.lines[1].startswith(f"rebuilt 1 projection(s) from {events} events")

    unknown = beacon(database_url, tmp_path, "projections", "rebuild", "no_such_model")
    assert (unknown.code, unknown.out) == (2, "")
    assert "no_such_model" in unknown.err and "public_widget" in unknown.err

    # The rebuilt read models still agree with the log.
    assert beacon(database_url, tmp_path, "audit", "replay-check").code == 0


def test_no_runtime_dir_warning_on_the_embedded_postgres(tmp_path: Path) -> None:
    """Without `DATABASE_URL` and `XDG_RUNTIME_DIR` (root in a container, cron), every command used to print
    platformdirs' RuntimeDirWarning, asked for by pgserver on import (infra/embedded.py)."""
    env = {"PATH": "/usr/bin:/bin", "BEACON_DATA_DIR": str(tmp_path / "data")}
    bare = subprocess.run([sys.executable, "-c", "import pgserver"], env=env, capture_output=True, text=True)
    if "RuntimeDirWarning" not in bare.stderr:
        pytest.skip("this platformdirs does not warn without XDG_RUNTIME_DIR, so there is nothing to silence")
    done = subprocess.run([BEACON, "keys", "list"], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")  # an empty key list, nothing else
    assert (tmp_path / "data" / "pgdata").is_dir()  # the embedded server was used
