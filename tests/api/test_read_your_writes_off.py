"""`BEACON_READ_YOUR_WRITES_TIMEOUT=0` turns read-your-writes off (docs/architecture.md#6-read-your-writes):
a write answers once it is recorded, without waiting for the read models. Here no process runs the
projections, so the read models never reach the write: with the wait on, the write answers only when its
timeout runs out (and says so in the log); with it off, at once and without that warning on every write,
and the list does not show the page yet — the price the setting's documentation names."""

from __future__ import annotations

import dataclasses
import time

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from infra.settings import Settings
from tests.support.http import Keys

WAIT = 1.0
"""The timeout of the run that waits: long enough to tell apart from an answer that did not wait."""


async def timed_create(settings: Settings, keys: Keys, slug: str) -> tuple[float, int, list[str]]:
    """Create a page with no projection running; how long the write took, its status, and the slugs the
    list shows right after it."""
    async with AsyncTestClient(app=create_app(settings, run_worker=False)) as client:
        started = time.monotonic()
        response = await client.post(
            "/v2/status_pages", json={"name": slug.title(), "slug": slug}, headers=Keys.header(keys.admin)
        )
        took = time.monotonic() - started
        listed = await client.get("/v2/status_pages", headers=Keys.header(keys.admin))
        assert listed.status_code == 200, listed.text
        return took, response.status_code, [page["slug"] for page in listed.json()["status_pages"]]


async def test_with_the_wait_off_a_write_answers_once_recorded_and_reads_may_lag(
    settings: Settings, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    waiting = dataclasses.replace(settings, read_your_writes_timeout=WAIT)
    took, status, listed = await timed_create(waiting, keys, "waits")
    assert status == 201
    assert took >= WAIT, "the write did not wait for the read models"
    assert "did not reach position" in caplog.text  # a wait that runs out is logged...
    caplog.clear()

    off = dataclasses.replace(settings, read_your_writes_timeout=0)
    took, status, listed = await timed_create(off, keys, "answers")
    assert status == 201
    assert took < WAIT / 2, f"the write waited {took:.2f} s with the wait turned off"
    assert "answers" not in listed  # nothing has projected it: the documented price of turning the wait off
    assert "did not reach position" not in caplog.text  # ...a wait turned off is not a wait that ran out


@pytest.mark.parametrize("value", ["-1", "soon"])
def test_a_negative_or_unreadable_timeout_is_refused_naming_the_setting(value: str) -> None:
    with pytest.raises(ValueError, match="BEACON_READ_YOUR_WRITES_TIMEOUT"):
        Settings.from_env({"BEACON_READ_YOUR_WRITES_TIMEOUT": value})


def test_zero_is_read_as_off_and_unset_as_the_default() -> None:
    assert Settings.from_env({"BEACON_READ_YOUR_WRITES_TIMEOUT": "0"}).read_your_writes_timeout == 0
    assert Settings.from_env({}).read_your_writes_timeout == Settings().read_your_writes_timeout
