"""A real browser on a running Beacon: Debian's headless Chromium (`apt-get install chromium chromium-driver`,
which .ci/run does) driven by Playwright, which here cannot download a browser of its own. Without Chromium
these tests are skipped, saying why."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chromium import missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = missing()
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.skip(reason=reason))
