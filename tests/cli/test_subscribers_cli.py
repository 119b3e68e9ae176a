"""`beacon subscribers …` and the secret key a database-backed `beacon` needs, as an operator runs them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.live_server import BEACON


def test_a_database_without_a_secret_key_is_a_clear_startup_error(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    done = subprocess.run([BEACON, "migrate"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("beacon: BEACON_SECRET_KEY is required when DATABASE_URL is set")
    assert "Traceback" not in done.stderr
