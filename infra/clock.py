"""The one clock every server-side timestamp comes from (docs/architecture.md#clock-and-ids), injectable for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to, for scheduler and time-travel tests."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, instant: datetime) -> None:
        self._now = instant


def format_timestamp(instant: datetime) -> str:
    """RFC 3339 UTC with microseconds, as the wire format wants: `2026-01-28T10:00:00.000000Z`."""
    utc = instant if instant.tzinfo is UTC else instant.astimezone(UTC)
    if utc.year < 1000:  # strftime's %Y does not pad these; keep its output
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # isoformat is several times faster than strftime, and read models format timestamps by the 100k.
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"
