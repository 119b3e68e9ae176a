"""`make run` installs only what running needs, `make test` the test toolchain too, each once; and
`bin/beacon` runs the installed command from a checkout, so the README's CLI examples work as pasted.
The Makefile is read with `make --dry-run` against a scratch venv path: nothing is installed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]


def dry_run(target: str, venv: Path) -> list[str]:
    done = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "-C", str(ROOT), target, f"VENV={venv}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.splitlines()


def installs(lines: list[str]) -> list[str]:
    return [line.split("pip install --quiet ", 1)[1] for line in lines if "pip install --quiet -e" in line]


def test_make_run_installs_only_beacon_and_make_test_the_test_extra(tmp_path: Path) -> None:
    fresh = tmp_path / "venv"
    run = dry_run("run", fresh)
    assert run[0].endswith(f"-m venv {fresh}")
    assert installs(run) == ["-e ."]
    assert run[-1] == f"{fresh}/bin/beacon serve"
    assert installs(dry_run("test", fresh)) == ["-e '.[test]'"]


def test_each_target_installs_once(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / ".installed-run").touch()  # newer than pyproject.toml: `make run` installed already
    assert dry_run("run", venv) == [f"{venv}/bin/beacon serve"]
    assert installs(dry_run("test", venv)) == ["-e '.[test]'"]  # the test toolchain is not there yet
    (venv / ".installed-test").touch()
    assert installs(dry_run("test", venv)) == []
    assert installs(dry_run("run", venv)) == []
    os.utime(venv / ".installed-run", (0, 0))  # older than pyproject.toml: its dependencies may have changed
    assert installs(dry_run("run", venv)) == ["-e ."]


def test_bin_beacon_runs_the_installed_command_from_anywhere(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(ROOT / "bin" / "beacon"), "keys", "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: beacon keys")
