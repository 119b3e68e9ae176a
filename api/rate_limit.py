"""Per-key token buckets: 1,200 requests/minute by default, and retrospective incidents at 5/s with a
burst of 300 (see the README). Buckets live in process memory, so with N API processes a key can get up
to N times the limit; the README says so."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from api.errors import ApiError, RateLimit


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class TokenBuckets:
    """`rate` tokens per second up to `burst`; one request takes one token."""

    rate: float
    burst: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, key: str, now: float | None = None) -> float:
        """Take a token for `key`; return 0 if allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def remaining(self, key: str) -> int:
        bucket = self._buckets.get(key)
        return self.burst if bucket is None else int(bucket.tokens)

    def check(self, key: str, wall_now: datetime, *, name: str) -> None:
        """Raise the 429 envelope when `key` is over its limit; `name` says which limit it is
        (`api_key`, `retrospective_incidents`), as incident.io's SDK expects in `rate_limit.name`."""
        wait = self.take(key)
        if wait <= 0:
            return
        # Whole seconds, rounded up: `Retry-After` carries a number of seconds, and `retry_after` names
        # the same instant, so a client honouring either never retries too early.
        seconds = max(1, math.ceil(wait))
        retry_at = (wall_now.astimezone(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
        retry_after = retry_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        raise ApiError(
            429,
            f"Rate limit exceeded: {self.burst} requests, refilled at {self.rate:g}/s; retry after {retry_after}",
            code="rate_limited",
            headers={"Retry-After": str(seconds)},
            rate_limit=RateLimit(limit=self.burst, name=name, remaining=0, retry_after=retry_after),
        )
