"""The public page in a real browser, on a running Beacon with an ongoing incident, a window in progress and
one scheduled (tests/support/public_site_scene.py): how it looks on a phone and a desktop in light and dark
(screenshots, written to build/screenshots/ or $BEACON_SCREENSHOT_DIR — the README shows two of them), that
axe-core finds nothing serious, that it works with JavaScript off, and that it asks no other host for anything."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.support.chromium import CHROMIUM, QUIET_FLAGS
from tests.support.live_server import Beacon
from tests.support.public_site_scene import (
    IN_PROGRESS_NAME,
    INCIDENT_NAME,
    RESOLVED_NAME,
    SCHEDULED_NAME,
    SLUG,
    Scene,
)

SCREENSHOTS = Path(os.environ.get("BEACON_SCREENSHOT_DIR", "build/screenshots"))
WIDTHS = (390, 1280)
SCHEMES: tuple[Literal["light", "dark"], ...] = ("light", "dark")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=QUIET_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


async def _open(
    browser: Browser, url: str, *, width: int = 1280, scheme: Literal["light", "dark"] = "light", script: bool = True
) -> tuple[BrowserContext, Page, list[str]]:
    """A fresh context (no cache, no cookies) on `url`, and every URL the page requested on the way."""
    context = await browser.new_context(
        viewport={"width": width, "height": 900}, color_scheme=scheme, java_script_enabled=script
    )
    page = await context.new_page()
    requested: list[str] = []
    page.on("request", lambda sent: requested.append(sent.url))
    response = await page.goto(url, wait_until="networkidle")
    assert response is not None and response.status == 200, url
    return context, page, requested


def _pages(beacon: Beacon, scene: Scene) -> list[str]:
    base = f"{beacon.url}/{SLUG}"
    return [
        base,
        f"{base}/incidents/{scene.incident_id}",
        f"{base}/maintenances/{scene.in_progress_id}",
        f"{base}/history",
    ]


@pytest.fixture(scope="module")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


async def test_screenshots_of_the_index_on_a_phone_and_a_desktop_in_light_and_dark(
    browser: Browser, scene: tuple[Beacon, Scene], screenshots: Path
) -> None:
    beacon, _ = scene
    for width in WIDTHS:
        for scheme in SCHEMES:
            context, page, _ = await _open(browser, f"{beacon.url}/{SLUG}", width=width, scheme=scheme)
            try:
                text = await page.inner_text("main")
                for shown in ("Partial System Outage", INCIDENT_NAME, IN_PROGRESS_NAME, SCHEDULED_NAME):
                    assert shown in text
                widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
                assert widths[0] <= widths[1], f"{width} px, {scheme}: the page scrolls sideways ({widths})"
                png = await page.screenshot(path=str(screenshots / f"index-{width}-{scheme}.png"), full_page=True)
                assert png.startswith(b"\x89PNG")
                background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
                assert (background == "rgb(246, 247, 249)") == (scheme == "light"), (scheme, background)
            finally:
                await context.close()


async def test_every_page_fits_a_320_px_screen(browser: Browser, scene: tuple[Beacon, Scene]) -> None:
    beacon, built = scene
    for url in _pages(beacon, built):
        context, page, _ = await _open(browser, url, width=320)
        try:
            widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            text_size = await page.evaluate("getComputedStyle(document.body).fontSize")
        finally:
            await context.close()
        assert widths[0] <= widths[1], f"{url} scrolls sideways at 320 px ({widths})"
        assert text_size == "16px"


async def test_axe_finds_no_serious_or_critical_violation(browser: Browser, scene: tuple[Beacon, Scene]) -> None:
    beacon, built = scene
    axe = Axe()
    found = []
    for url in _pages(beacon, built):
        for width in WIDTHS:
            for scheme in SCHEMES:
                context, page, _ = await _open(browser, url, width=width, scheme=scheme)
                try:
                    results = await axe.run(page)
                finally:
                    await context.close()
                found += [
                    (url, width, scheme, violation["id"], [node["target"] for node in violation["nodes"]])
                    for violation in results.response["violations"]
                    if violation["impact"] in ("serious", "critical")
                ]
    assert found == []


async def test_the_page_works_with_javascript_off(browser: Browser, scene: tuple[Beacon, Scene]) -> None:
    beacon, _ = scene
    context, page, _ = await _open(browser, f"{beacon.url}/{SLUG}", width=390, script=False)
    try:
        assert await page.evaluate("document.scripts.length") == 0
        group = page.locator("details.group").first
        child = group.get_by_text("Dashboard", exact=True)
        assert await group.get_attribute("open") is None and not await child.is_visible()
        await group.locator("summary").click()
        assert await child.is_visible()

        await page.get_by_role("link", name=RESOLVED_NAME).click()
        await page.wait_for_load_state()
        assert RESOLVED_NAME in await page.inner_text("h1")
        assert "We now alert 30 days before expiry." in await page.inner_text("main")

        await page.get_by_role("link", name="History").first.click()
        await page.wait_for_load_state()
        assert RESOLVED_NAME in await page.inner_text("main")
    finally:
        await context.close()


async def test_the_subscribe_form_posts_without_script(browser: Browser, scene: tuple[Beacon, Scene]) -> None:
    beacon, _ = scene
    context, page, _ = await _open(browser, f"{beacon.url}/{SLUG}", script=False)
    try:
        await page.get_by_label("Email address").fill("reader@example.com")
        await page.get_by_text("Only some components").click()
        await page.get_by_role("checkbox", name="API").check()
        async with page.expect_response(lambda answer: answer.request.method == "POST") as posted:
            await page.get_by_role("button", name="Subscribe").click()
        answer = await posted.value
        assert answer.url == f"{beacon.url}/{SLUG}/subscriptions"
        assert answer.status == 202
        assert answer.headers["content-type"].startswith("text/html")
        await page.wait_for_load_state()
        assert "Acme Cloud" in await page.inner_text("body")  # the answer is a page of the site, not JSON
    finally:
        await context.close()


async def test_the_page_asks_no_other_host_for_anything(browser: Browser, scene: tuple[Beacon, Scene]) -> None:
    beacon, built = scene
    own = urlsplit(beacon.url).netloc
    for url in _pages(beacon, built):
        context, _, requested = await _open(browser, url)  # after the network went quiet: fonts, icons included
        await context.close()
        assert requested == [url], requested
        assert {urlsplit(sent).netloc for sent in requested} == {own}
