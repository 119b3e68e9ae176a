"""Per-key token buckets: 1,200 requests/minute by default, and retrospective incidents at 5/s with a
burst of 300 (docs/architecture.md#rate-limits).

The buckets live in process memory, so the request path never waits for the database. With several API
processes each one enforces only its share of a key's limit: its bucket refills at `rate × share` and
holds at most `burst × share`. The shares of a key's processes add up to one, so together they allow the
limit once, not once per process. `api/rate_share.py` computes the shares from a heartbeat table; until it
has (and whenever the database cannot be reached) a process's share is 1, the whole limit
(docs/adr/0005-rate-limits-across-processes.md)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from api.errors import ApiError, RateLimit

DEMAND_SMOOTHING = 0.5
"""Weight of the latest heartbeat interval in a key's demand (an exponential moving average), so that one
quiet interval does not take a process's share away from a key whose traffic it still receives."""

MIN_DEMAND = 0.01
"""Requests per second below which a key's demand is forgotten (and no longer reported)."""


@dataclass
class _Bucket:
    tokens: float
    updated: float
    share: float
    capacity: float
    rate: float
    attempts: int = 0
    """Requests (let through or not) since the last demand report."""


@dataclass
class TokenBuckets:
    """`rate` tokens per second up to `burst` for the whole limit; one request takes one token. This process
    holds `share` of it per key (`default_share` for a key it has no share for)."""

    rate: float
    burst: int
    default_share: float = 1.0
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _shares: dict[str, float] = field(default_factory=dict)
    _demand: dict[str, float] = field(default_factory=dict)

    def _capacity(self, share: float) -> float:
        # At least one token: a limit smaller than the number of processes must still let a request through.
        return max(1.0, self.burst * share)

    def take(self, key: str, now: float | None = None) -> float:
        """Take a token for `key`; return 0 if allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            share = self._shares.get(key, self.default_share)
            capacity = self._capacity(share)
            bucket = self._buckets[key] = _Bucket(capacity, now, share, capacity, self.rate * share)
        bucket.attempts += 1
        bucket.tokens = min(bucket.capacity, bucket.tokens + (now - bucket.updated) * bucket.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / bucket.rate

    def remaining(self, key: str) -> int:
        bucket = self._buckets.get(key)
        return int(self._capacity(self.share(key))) if bucket is None else int(bucket.tokens)

    def share(self, key: str) -> float:
        """This process's share of `key`'s limit."""
        return self._shares.get(key, self.default_share)

    def shares(self) -> tuple[dict[str, float], float]:
        """This process's shares: of each key it holds one for, and of any other key."""
        return dict(self._shares), self.default_share

    def demand(self, elapsed: float) -> dict[str, float]:
        """Each recently busy key's requests per second at this process, smoothed over heartbeats; `elapsed`
        is the time since the last call. Rejected requests count: they are demand the share did not meet."""
        seen: dict[str, float] = {}
        for key, bucket in self._buckets.items():
            if bucket.attempts:
                seen[key] = bucket.attempts / max(elapsed, 1e-3)
                bucket.attempts = 0
        demand: dict[str, float] = {}
        for key in seen.keys() | self._demand.keys():
            smoothed = DEMAND_SMOOTHING * seen.get(key, 0.0) + (1 - DEMAND_SMOOTHING) * self._demand.get(key, 0.0)
            if smoothed >= MIN_DEMAND:
                demand[key] = smoothed
        self._demand = demand
        return dict(demand)

    def apply_shares(self, shares: Mapping[str, float], default: float, now: float | None = None) -> None:
        """Enforce new shares. A bucket keeps how full it was (its tokens scale with its capacity), so moving
        shares between processes neither mints nor burns a key's tokens when its buckets are equally full.
        A bucket that has refilled completely is dropped: a new one would start the same."""
        now = time.monotonic() if now is None else now
        self._shares = dict(shares)
        self.default_share = default
        for key, bucket in list(self._buckets.items()):
            tokens = min(bucket.capacity, bucket.tokens + (now - bucket.updated) * bucket.rate)
            if tokens >= bucket.capacity:
                del self._buckets[key]
                continue
            share = self._shares.get(key, default)
            capacity = self._capacity(share)
            bucket.tokens = tokens * capacity / bucket.capacity
            bucket.updated = now
            bucket.share, bucket.capacity, bucket.rate = share, capacity, self.rate * share

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
