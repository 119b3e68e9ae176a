"""Real `beacon serve` processes for end-to-end tests (the SDK test, multi-process freshness, faults):
the installed CLI, granian, real sockets, on a fresh test database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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


def create_key(database_url: str, name: str, *scopes: str) -> str:
    """A key made with the CLI, as an operator would; the token is the last line of stdout."""
    args = [BEACON, "keys", "create", "--name", name]
    for scope in scopes:
        args += ["--scope", scope]
    out = subprocess.run(args, env=_env(database_url), check=True, capture_output=True, text=True, timeout=60)
    return out.stdout.strip().splitlines()[-1]


def _env(database_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, **extra}


@contextmanager
def live_server(
    database_url: str, tmp_path: Path, *, worker: bool = True, extra_env: dict[str, str] | None = None
) -> Iterator[LiveServer]:
    port = free_port()
    log_path = tmp_path / f"beacon-{port}.log"
    args = [BEACON, "serve", "--port", str(port)] + ([] if worker else ["--no-worker"])
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
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(5)
