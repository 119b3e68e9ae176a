"""The embedded default (docs/architecture.md#9-embedded-postgres-by-default): with no DATABASE_URL, Beacon
runs Postgres 16 from the `pgserver` pip package in a local data folder. Same SQL, same code path; only
the URL differs."""

from __future__ import annotations

from pathlib import Path

import pgserver


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or attach to) the embedded server in `data_dir/pgdata` and return its URL.

    pgserver shares one server between processes using the same folder and stops it when the
    last of them exits, so `beacon serve` and `beacon worker` can both call this."""
    pgdata = (data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    return str(server.get_uri())
