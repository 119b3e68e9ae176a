"""Fixtures for the reliability suite: besides the in-process app and client (tests/conftest.py), one live
`beacon serve` per module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.live_server import Beacon, running_beacon


@pytest.fixture(scope="module")
async def beacon(
    server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Beacon]:
    """One live server per module: real granian, real sockets (huge headers and raw bytes reach the real
    HTTP stack), shared by that module's tests, which must not depend on each other's data."""
    async with running_beacon(server_url, template_database, tmp_path_factory.mktemp("beacon")) as running:
        yield running
