"""Real `beacon serve` processes for end-to-end tests (the SDK test, multi-process freshness, faults):
the installed CLI, granian, real sockets, on a fresh test database."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.databases import fresh_database
from tests.support.http import Keys, make_keys

BEACON = str(Path(sys.executable).parent / "beacon")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    request_id: str


def request(method: str, url: str, token: str | None = None, body: object = None) -> Answer:
    """One request on a new connection, as a client sends it: a JSON body, a bearer token; errors are answers."""
    sent = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method=method)
    sent.add_header("Content-Type", "application/json")
    if token:
        sent.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(sent, timeout=10) as response:
            return Answer(response.status, response.read(), response.headers["X-Request-Id"])
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read(), error.headers["X-Request-Id"])


def create_key(database_url: str, name: str, *scopes: str) -> str:
    """A key made with the CLI, as an operator would; the token is the last line of stdout."""
    args = [BEACON, "keys", "create", "--name", name]
    for scope in scopes:
        args += ["--scope", scope]
    out = subprocess.run(args, env=_env(database_url), check=True, capture_output=True, text=True, timeout=60)
    return out.stdout.strip().splitlines()[-1]


TEST_SECRET_KEY = "beacon-tests-secret-key-not-for-production-use"
"""`BEACON_SECRET_KEY` for tests and benchmarks, which run with `DATABASE_URL` (where the key is required)."""
os.environ.setdefault("BEACON_SECRET_KEY", TEST_SECRET_KEY)


def operator_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Only the environment an operator would set for `beacon …` on a database of its own (no test settings)."""
    return {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": database_url,
        "BEACON_SECRET_KEY": TEST_SECRET_KEY,
        "BEACON_DATA_DIR": str(tmp_path / "data"),
    }


def _env(database_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, **extra}


@contextmanager
def live_server(
    database_url: str,
    tmp_path: Path,
    *,
    worker: bool = True,
    extra_env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[LiveServer]:
    port = free_port()
    log_path = tmp_path / f"beacon-{port}.log"
    args = [BEACON, "serve", "--port", str(port), *extra_args] + ([] if worker else ["--no-worker"])
    env = _env(database_url, BEACON_DATA_DIR=str(tmp_path / "data"), **(extra_env or {}))
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_ready(server)
        yield server
    finally:
        stop(server)


def _wait_ready(server: LiveServer, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"beacon serve exited with {server.process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(server.url + "/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"beacon serve did not become ready:\n{server.log()}")


def stop(server: LiveServer) -> None:
    stop_process_group(server.process)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's session (it was started with `start_new_session`), SIGKILL after 15 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@dataclass(frozen=True)
class Beacon:
    """A running `beacon serve` on its own database, with keys of every kind."""

    server: LiveServer
    database_url: str
    keys: Keys

    @property
    def url(self) -> str:
        return self.server.url


@asynccontextmanager
async def running_beacon(
    server_url: str, template_database: str, tmp_path: Path, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Beacon]:
    async with fresh_database(server_url, template_database) as url:
        keys = await make_keys(url)
        with live_server(url, tmp_path, extra_env=extra_env) as server:
            yield Beacon(server, url, keys)
