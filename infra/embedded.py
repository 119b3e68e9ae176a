"""The embedded default (docs/architecture.md#9-embedded-postgres-by-default): with no DATABASE_URL, Beacon
runs Postgres 16 from the `pgserver` pip package in a local data folder. Same SQL, same code path; only
the URL differs."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # pgserver asks platformdirs for a user runtime directory when it is imported (for its inter-process
    # lock and, when the data path is too long for a socket, the socket). Without XDG_RUNTIME_DIR, as for
    # root in a container, under cron or over a plain ssh session, platformdirs falls back to
    # /tmp/runtime-<uid> (made 0700, owned by this user) and says so with a RuntimeDirWarning on every
    # `beacon` command: noise about a directory that only pgserver uses and that works. Only that case
    # is silenced; an XDG_RUNTIME_DIR that is set but unsafe (wrong owner or mode) still warns.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set", category=UserWarning)
    import pgserver


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or attach to) the embedded server in `data_dir/pgdata` and return its URL.

    pgserver shares one server between processes using the same folder and stops it when the
    last of them exits, so `beacon serve` and `beacon worker` can both call this."""
    pgdata = (data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _let_root_add_the_server_user()
    server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    return str(server.get_uri())


def embedded_binary(name: str) -> Path:
    """The path of one of the embedded server's programs (`pg_dump`, `psql`, …): Postgres 16 tools that
    work against the embedded server and a system one alike, on a machine that may have no others."""
    return Path(pgserver.__file__).parent / "pginstall" / "bin" / name


SYSTEM_BINARIES = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def _let_root_add_the_server_user() -> None:
    """Postgres refuses to run as root, so under root pgserver runs it as a system user `pgserver`, which it
    creates with `useradd` the first time. `useradd` lives in /usr/sbin, which root's PATH lacks under cron
    and in bare containers (`/usr/bin:/bin`): the first start on such a machine failed with
    `FileNotFoundError: 'useradd'`. The system directories go after whatever PATH already names."""
    if os.name != "posix" or os.geteuid() != 0:
        return
    path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry]
    missing = [directory for directory in SYSTEM_BINARIES if directory not in path]
    if missing:
        os.environ["PATH"] = os.pathsep.join([*path, *missing])
