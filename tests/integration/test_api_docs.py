"""Issue 15: the interactive API docs load in a real Chromium from central alone (a festival
LAN has no internet) and send the protocol header, so "Try it out" gets real answers."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Request, Route, async_playwright

from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from tests.integration.conftest import CentralServer

CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by scripts/system-deps
# Headless, and nothing that phones home: the test fails on any request leaving loopback.
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
UI_TIMEOUT_MS = 30_000  # a bound on what must happen, not a measure


def _chromium() -> str:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/system-deps", pytrace=False)
    return CHROMIUM


async def test_docs_load_from_central_alone_and_send_the_protocol_header(
    central: CentralServer,
) -> None:
    chromium = _chromium()
    outside: list[str] = []
    sent: dict[str, dict[str, str]] = {}

    async def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    def note(request: Request) -> None:
        sent[urlsplit(request.url).path] = request.headers

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            await page.route("**/*", loopback_only)
            page.on("request", note)
            await page.goto(f"{central.url}/v1/docs")  # returns once the page has loaded
            assert outside == [], "the docs page asked for files from outside central"
            changes = page.locator(".opblock", has_text="/v1/sync/changes")
            await changes.locator(".opblock-summary").click()  # the operations list rendered
            await changes.locator("button.try-out__btn").click()
            await changes.locator("button.execute").click()
            status = changes.locator(".live-responses-table tbody .response-col_status")
            answered = (await status.inner_text()).strip()
            stamped = await page.evaluate("ui.getConfigs().requestInterceptor({headers: {}})")
        finally:
            await browser.close()
    assert outside == []
    assert "/v1/docs/static/swagger-ui-bundle.js" in sent
    # No bearer token, so 401: past the protocol gate, which would have answered 400.
    assert answered == "401"
    assert {k.lower(): v for k, v in sent["/v1/sync/changes"].items()}[
        PROTOCOL_HEADER.lower()
    ] == str(PROTOCOL_VERSION)
    assert stamped["headers"] == {PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
