"""One Beacon per port: `beacon serve` on a port something already listens on exits 1 with one line on
stderr, before any database work. Granian's workers bind with `SO_REUSEPORT`, so a second Beacon used to
start and the kernel split requests between the two; a port held by another program used to print
"listening", then a Python traceback and a Rust backtrace."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import urllib.request
from pathlib import Path

from tests.support.databases import table_names
from tests.support.live_server import BEACON, TEST_SECRET_KEY, live_server

Done = subprocess.CompletedProcess[str]


def serve(port: int, tmp_path: Path, *, database_url: str | None = None) -> Done:
    """`beacon serve --port PORT`; a Beacon that does start is stopped by the timeout, failing the test."""
    env = {"PATH": "/usr/bin:/bin", "BEACON_DATA_DIR": str(tmp_path / "second")}
    if database_url:
        env["DATABASE_URL"] = database_url
        env["BEACON_SECRET_KEY"] = TEST_SECRET_KEY  # required beside DATABASE_URL; not what this test is about
    command = [BEACON, "serve", "--port", str(port)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)


def assert_refused(done: Done, port: int, tmp_path: Path) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""  # no "listening", no bootstrap key
    assert done.stderr.splitlines() == [
        f"beacon serve: cannot listen on 127.0.0.1:{port}: another program (or another Beacon) listens there"
    ]
    assert not (tmp_path / "second").exists()  # no embedded Postgres started, no key file written


def test_a_port_held_by_another_program(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        # No DATABASE_URL: touching the database would start an embedded Postgres under BEACON_DATA_DIR.
        done = serve(port, tmp_path)
    assert_refused(done, port, tmp_path)


async def test_a_second_beacon_on_the_same_port(database_url: str, empty_database: str, tmp_path: Path) -> None:
    with live_server(database_url, tmp_path, worker=False) as first:
        port = int(first.url.rsplit(":", 1)[1])
        done = await asyncio.to_thread(serve, port, tmp_path, database_url=empty_database)
        assert_refused(done, port, tmp_path)
        assert await table_names(empty_database) == []  # the second one neither migrated nor made a key
        assert await asyncio.to_thread(status, first.url + "/healthz") == 200  # the first one still serves


def status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status)
