"""A real `beacon worker` for fault tests: one process at a time, in its own process group so SIGKILL takes
all of it, its output kept per start."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support.live_server import BEACON, stop_process_group


class Worker:
    """`beacon worker` on `database_url` with `BEACON_PROJECTION_POLL_INTERVAL=0.05` and the `env` given."""

    def __init__(self, database_url: str, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.log_dir = log_dir
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "BEACON_PROJECTION_POLL_INTERVAL": "0.05",
            **self.env,
        }
        with (self.log_dir / f"worker-{self.starts}.log").open("wb") as log:
            self.process = subprocess.Popen(
                [BEACON, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    async def running(self, timeout: float = 30.0) -> None:
        """Wait until this start's worker has printed its start line: its imports are done, and its migrations,
        tables and catch-up follow at once."""
        log = self.log_dir / f"worker-{self.starts}.log"
        deadline = time.monotonic() + timeout
        while b"projections running" not in log.read_bytes():
            assert self.process is not None and self.process.poll() is None, f"the worker died:\n{self.logs()[-3000:]}"
            assert time.monotonic() < deadline, f"the worker did not start:\n{self.logs()[-3000:]}"
            await asyncio.sleep(0.02)

    def kill(self) -> None:
        assert self.process is not None and self.process.poll() is None, f"the worker died:\n{self.logs()[-3000:]}"
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)

    def logs(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in sorted(self.log_dir.glob("worker-*.log")))
