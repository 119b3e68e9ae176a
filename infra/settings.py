"""Every setting Beacon reads, from environment variables with documented defaults, in one place.
The README's configuration table lists the same variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    """`DATABASE_URL`: Postgres to use. Unset: an embedded Postgres under `data_dir`."""
    data_dir: Path = Path(".beacon")
    """`BEACON_DATA_DIR`: embedded Postgres data and the bootstrap admin key file."""
    host: str = "127.0.0.1"
    """`BEACON_HOST`."""
    port: int = 8000
    """`BEACON_PORT`."""
    rate_limit_per_minute: int = 1200
    """`BEACON_RATE_LIMIT_PER_MINUTE`: requests per minute per API key (docs/architecture.md#rate-limits)."""
    retrospective_rate_per_second: float = 5.0
    """`BEACON_RETROSPECTIVE_RATE_PER_SECOND`."""
    retrospective_burst: int = 300
    """`BEACON_RETROSPECTIVE_BURST`."""
    rate_limit_heartbeat_seconds: float = 1.0
    """`BEACON_RATE_LIMIT_HEARTBEAT_SECONDS`: how often each API process reports its keys' demand and takes its share
    of their limits (docs/adr/0005-rate-limits-across-processes.md)."""
    read_your_writes_timeout: float = 5.0
    """`BEACON_READ_YOUR_WRITES_TIMEOUT`: seconds a write waits for the read models to catch up
    (docs/architecture.md#6-read-your-writes)."""
    projection_poll_interval: float = 0.5
    """`BEACON_PROJECTION_POLL_INTERVAL`: seconds between safety-net polls when no NOTIFY arrives."""
    projection_batch_size: int = 500
    """`BEACON_PROJECTION_BATCH_SIZE`: events applied per projection transaction."""
    reader_heartbeat_seconds: float = 5.0
    """`BEACON_READER_HEARTBEAT_SECONDS`: how often each process records the projection versions it reads; a
    version unread for three heartbeats is dropped once a newer one serves (docs/adr/0006-projection-versions.md)."""
    statement_timeout_ms: int = 5000
    """`BEACON_STATEMENT_TIMEOUT_MS`: server-side statement timeout on every connection."""
    pool_size: int = 10
    """`BEACON_POOL_SIZE`: asyncpg pool size per process."""
    metrics_port: int | None = None
    """`BEACON_METRICS_PORT`: where `GET /metrics` is served. Unset (or the HTTP port): on the HTTP port, behind
    `metrics_token` if one is set; another port: there, with no token (README "Operations")."""
    metrics_token: str | None = None
    """`BEACON_METRICS_TOKEN`: when set, `/metrics` on the HTTP port needs `Authorization: Bearer <token>`."""
    log_format: str | None = None
    """`BEACON_LOG_FORMAT`: `json` or `text`. Unset: `text` when stderr is a terminal, `json` otherwise."""

    @property
    def metrics_on_http_port(self) -> bool:
        return self.metrics_port is None or self.metrics_port == self.port

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        defaults = cls()
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            data_dir=Path(env.get("BEACON_DATA_DIR", str(defaults.data_dir))),
            host=env.get("BEACON_HOST", defaults.host),
            port=int(env.get("BEACON_PORT", defaults.port)),
            rate_limit_per_minute=int(env.get("BEACON_RATE_LIMIT_PER_MINUTE", defaults.rate_limit_per_minute)),
            retrospective_rate_per_second=float(
                env.get("BEACON_RETROSPECTIVE_RATE_PER_SECOND", defaults.retrospective_rate_per_second)
            ),
            retrospective_burst=int(env.get("BEACON_RETROSPECTIVE_BURST", defaults.retrospective_burst)),
            rate_limit_heartbeat_seconds=float(
                env.get("BEACON_RATE_LIMIT_HEARTBEAT_SECONDS", defaults.rate_limit_heartbeat_seconds)
            ),
            read_your_writes_timeout=float(
                env.get("BEACON_READ_YOUR_WRITES_TIMEOUT", defaults.read_your_writes_timeout)
            ),
            projection_poll_interval=float(
                env.get("BEACON_PROJECTION_POLL_INTERVAL", defaults.projection_poll_interval)
            ),
            projection_batch_size=int(env.get("BEACON_PROJECTION_BATCH_SIZE", defaults.projection_batch_size)),
            reader_heartbeat_seconds=float(
                env.get("BEACON_READER_HEARTBEAT_SECONDS", defaults.reader_heartbeat_seconds)
            ),
            statement_timeout_ms=int(env.get("BEACON_STATEMENT_TIMEOUT_MS", defaults.statement_timeout_ms)),
            pool_size=int(env.get("BEACON_POOL_SIZE", defaults.pool_size)),
            metrics_port=int(env["BEACON_METRICS_PORT"]) if env.get("BEACON_METRICS_PORT") else None,
            metrics_token=env.get("BEACON_METRICS_TOKEN") or None,
            log_format=_log_format(env.get("BEACON_LOG_FORMAT")),
        )


def _log_format(value: str | None) -> str | None:
    if not value:
        return None
    if value not in ("json", "text"):
        raise ValueError(f"BEACON_LOG_FORMAT must be json or text, not {value!r}")
    return value
