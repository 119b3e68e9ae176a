"""Where the browser tests find Chromium, and how they start it."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("BEACON_CHROMIUM", "/usr/bin/chromium"))
"""Debian's package (`apt-get install chromium chromium-driver`): Playwright cannot download a browser here."""

QUIET_FLAGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
"""Chromium's own traffic (updates, sync, safe-browsing lists) off, so every request seen is the page's."""


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver, or set BEACON_CHROMIUM)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (make install)"
    return None
