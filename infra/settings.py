"""Every setting Beacon reads, from environment variables with documented defaults, in one place.
The README's configuration table lists the same variables."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from domain.public_base_url import check_base_url


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
    (docs/architecture.md#6-read-your-writes). `0` turns the wait off: a write answers once it is recorded,
    and reads may not reflect it for a few milliseconds (a bulk import; `bench/commands.py` measures what
    the wait costs with it)."""
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
    public_url: str | None = None
    """`BEACON_PUBLIC_URL`: the public base URL pages without a `public_url` or custom domain are reached under
    (`{public_url}/{slug}`). Recorded in the log by `beacon serve`/`worker` when it changes
    (docs/architecture.md#canonical-urls-and-custom-domains); no page may take its host as a custom domain."""
    public_cache_mb: int = 256
    """`BEACON_PUBLIC_CACHE_MB`: memory per process for public documents read on demand (history months,
    past notices); the hot set is held besides (docs/architecture.md#public-site)."""
    public_subscribe_per_minute: int = 10
    """`BEACON_PUBLIC_SUBSCRIBE_PER_MINUTE`: subscribe requests a client (an IPv4 address or an IPv6 /64) may make
    per minute, per HTTP process (README "Subscribers")."""
    log_format: str | None = None
    """`BEACON_LOG_FORMAT`: `json` or `text`. Unset: `text` when stderr is a terminal, `json` otherwise."""
    smtp_url: str | None = None
    """`BEACON_SMTP_URL`: where notification mail goes: `smtp://user:pass@host:587` (STARTTLS), `smtps://…`
    (implicit TLS) or `file://DIR` (`.eml` files). Unset: `.eml` files under `data_dir/mail` on the embedded
    database; with `DATABASE_URL` set the email channel stays paused (README "Notifications")."""
    mail_from: str | None = None
    """`BEACON_MAIL_FROM`: the sender of notification mail. Unset: `status@{the page's canonical host}`."""
    notify_retry_schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    """`BEACON_NOTIFY_RETRY_SCHEDULE`: seconds before each retry of a failed delivery, comma-separated; one
    attempt more than delays (README "Notifications")."""
    notify_concurrency: int = 16
    """`BEACON_NOTIFY_CONCURRENCY`: deliveries in flight at once per channel (the SMTP pool opens at most 4)."""
    notify_claim_seconds: float = 120.0
    """`BEACON_NOTIFY_CLAIM_SECONDS`: how long a claimed delivery is reserved for the worker sending it; a
    worker that dies mid-send leaves it to be tried again after this."""

    secret_key: str | None = None
    """`BEACON_SECRET_KEY`: signs subscriber links and keys the contacts' blind index
    (docs/architecture.md#subscribers). Required with `DATABASE_URL`; on the embedded default, generated once
    into `$BEACON_DATA_DIR/secret_key`."""
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    """`BEACON_TRUSTED_PROXIES`: comma-separated addresses or networks of reverse proxies whose
    `X-Forwarded-For` (and `X-Forwarded-Host`) Beacon believes. Unset: none, the peer is the client."""
    webhook_allow_private: bool = False
    """`BEACON_WEBHOOK_ALLOW_PRIVATE`: `1` lets webhooks target `http://` URLs and loopback, private,
    link-local and metadata addresses (tests, and operators who mean it)."""

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
            read_your_writes_timeout=_read_your_writes_timeout(
                env.get("BEACON_READ_YOUR_WRITES_TIMEOUT"), defaults.read_your_writes_timeout
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
            metrics_port=metrics_port_from_env(env),
            metrics_token=env.get("BEACON_METRICS_TOKEN") or None,
            public_url=check_base_url(env.get("BEACON_PUBLIC_URL")),  # a typo stops the start, with the reason
            public_cache_mb=int(env.get("BEACON_PUBLIC_CACHE_MB", defaults.public_cache_mb)),
            public_subscribe_per_minute=int(
                env.get("BEACON_PUBLIC_SUBSCRIBE_PER_MINUTE", defaults.public_subscribe_per_minute)
            ),
            log_format=_log_format(env.get("BEACON_LOG_FORMAT")),
            smtp_url=env.get("BEACON_SMTP_URL") or None,
            mail_from=env.get("BEACON_MAIL_FROM") or None,
            notify_retry_schedule=_schedule(env.get("BEACON_NOTIFY_RETRY_SCHEDULE"), defaults.notify_retry_schedule),
            notify_concurrency=int(env.get("BEACON_NOTIFY_CONCURRENCY", defaults.notify_concurrency)),
            notify_claim_seconds=float(env.get("BEACON_NOTIFY_CLAIM_SECONDS", defaults.notify_claim_seconds)),
            secret_key=_secret_key(env),
            trusted_proxies=_networks(env.get("BEACON_TRUSTED_PROXIES", ""), "BEACON_TRUSTED_PROXIES"),
            webhook_allow_private=env.get("BEACON_WEBHOOK_ALLOW_PRIVATE", "") in ("1", "true", "yes"),
        )


def _log_format(value: str | None) -> str | None:
    if not value:
        return None
    if value not in ("json", "text"):
        raise ValueError(f"BEACON_LOG_FORMAT must be json or text, not {value!r}")
    return value


def _read_your_writes_timeout(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"BEACON_READ_YOUR_WRITES_TIMEOUT must be a number of seconds, not {value!r}") from None
    if seconds < 0:
        raise ValueError("BEACON_READ_YOUR_WRITES_TIMEOUT cannot be negative (0 turns the wait off)")
    return seconds


def _schedule(value: str | None, default: tuple[float, ...]) -> tuple[float, ...]:
    if not value:
        return default
    try:
        delays = tuple(float(part) for part in value.split(","))
    except ValueError:
        raise ValueError(f"BEACON_NOTIFY_RETRY_SCHEDULE must be seconds separated by commas, not {value!r}") from None
    if any(delay < 0 for delay in delays):
        raise ValueError("BEACON_NOTIFY_RETRY_SCHEDULE's delays cannot be negative")
    return delays


def metrics_port_from_env(environ: dict[str, str] | None = None) -> int | None:
    """`BEACON_METRICS_PORT` alone: the CLI's parser reads it as a default before the other settings are
    checked, so `beacon --help` works in an incomplete environment."""
    value = (os.environ if environ is None else environ).get("BEACON_METRICS_PORT")
    return int(value) if value else None


MIN_SECRET_KEY_LENGTH = 32


class MissingSecretKey(ValueError):
    """Raised at start when `DATABASE_URL` is set and `BEACON_SECRET_KEY` is not, or a key is too short."""


def _secret_key(env: dict[str, str]) -> str | None:
    value = env.get("BEACON_SECRET_KEY") or None
    if value is not None and len(value) < MIN_SECRET_KEY_LENGTH:
        raise MissingSecretKey(
            f"BEACON_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters; generate one with"
            " `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    if value is None and env.get("DATABASE_URL"):
        raise MissingSecretKey(
            "BEACON_SECRET_KEY is required when DATABASE_URL is set (it signs subscriber links and must be the"
            " same on every process); generate one with `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return value


def secret_key_bytes(settings: Settings) -> bytes:
    """The secret key as bytes: `BEACON_SECRET_KEY`, or on the embedded default the one generated into
    `$BEACON_DATA_DIR/secret_key` the first time any process needed it (created exclusively, so processes
    starting together agree on one key)."""
    if settings.secret_key:
        return settings.secret_key.encode()
    if settings.database_url:
        raise MissingSecretKey("BEACON_SECRET_KEY is required when DATABASE_URL is set")
    path = settings.data_dir / "secret_key"
    if not path.exists():
        # Written whole under a temporary name, then linked into place: a process starting at the same
        # moment either wins the link or reads the winner's complete file, never a half-written one.
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    value = path.read_text().strip()
    if len(value) < MIN_SECRET_KEY_LENGTH:
        raise MissingSecretKey(f"{path} holds no usable secret key; delete it to have a new one generated")
    return value.encode()


def _networks(value: str, name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for part in value.split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{name}: {part.strip()!r} is not an IP address or network") from None
    return tuple(networks)
