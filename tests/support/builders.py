"""The clock and the actors the tests write with: one fixed instant and a few named API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.base import Actor, CommandContext

T0 = datetime(2026, 1, 28, 10, 0, tzinfo=UTC)
"""The instant most tests start at; `at(minutes)` counts from it."""

ALICE = Actor(type="api_key", id="01KEY", name="alice")
OPERATOR = Actor(type="api_key", id="01KEY", name="ops bot")
PUBLISHER = Actor(type="api_key", id="01KEYPUBLISHER", name="publisher")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def context_at(minutes: float, request_id: str | None = None, actor: Actor = OPERATOR) -> CommandContext:
    """The command context of a write `minutes` after `T0`."""
    return CommandContext(now=at(minutes), actor=actor, request_id=request_id)
