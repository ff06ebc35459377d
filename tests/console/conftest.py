"""The ops console in a real Chromium against a real central (uvicorn on loopback) on real
PostgreSQL. Chromium is Debian's (`CHROMIUM`), never a downloaded one; screenshots go to
``test-artifacts/console/`` under the repository (gitignored)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from psycopg import AsyncConnection

from central import users
from central.sample import SampleFestival
from tests.integration.conftest import (  # noqa: F401 - fixtures
    CentralServer,
    Node,
    central,
    enrolled_dir,
    fest,
    nodes,
    open_node,
)
from tests.integration.test_api_docs import CHROMIUM_ARGS, UI_TIMEOUT_MS, _chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class OpsUser:
    """A console user a test logs in as."""

    name: str
    password: str
    role: str


async def make_user(
    dsn: str, role: str = "ADMIN", *, festival_id: uuid.UUID | None = None, name: str = ""
) -> OpsUser:
    """An ops user with a console password (committed)."""
    name = name or f"{role.lower()}-{uuid.uuid4().hex[:6]}"
    async with await AsyncConnection.connect(dsn) as conn:
        await users.add_ops_user(conn, name=name, role=role, actor="test", festival_id=festival_id)  # type: ignore[arg-type]
        await users.set_password(conn, name, PASSWORD, actor="test")
        await conn.commit()
    return OpsUser(name, PASSWORD, role)


@pytest.fixture
async def admin(pg_dsn: str) -> OpsUser:
    return await make_user(pg_dsn, "ADMIN")


@pytest.fixture
async def gate(
    central: CentralServer,  # noqa: F811
    pg_dsn: str,
    fest: SampleFestival,  # noqa: F811
    tmp_path: Path,
    nodes: list[Node],  # noqa: F811
) -> Node:
    """A real gate device of the sample festival's zone, enrolled at `central`."""
    node = await open_node(await enrolled_dir(central, pg_dsn, fest, "gate", tmp_path))
    nodes.append(node)
    return node


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Screen:
    """A browser tab on the console, noting what Content-Security-Policy refused."""

    context: BrowserContext
    page: Page
    base: str
    csp_violations: list[str]

    async def goto(self, path: str) -> Any:
        return await self.page.goto(self.base + path)

    async def try_login(self, user: OpsUser, then: str = "/ops/") -> None:
        """Fill in the login form and send it."""
        await self.goto("/ops/login?next=" + then)
        await self.page.get_by_label("Name").fill(user.name)
        await self.page.get_by_label("Password").fill(user.password)
        await self.page.get_by_role("button", name="Log in").click()

    async def login(self, user: OpsUser, then: str = "/ops/") -> None:
        """Log in, and wait for the page it leads to."""
        await self.try_login(user, then)
        await expect(self.page.get_by_role("button", name="Log out")).to_be_visible()

    async def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    async def axe_serious(self) -> list[str]:
        """axe-core's serious and critical findings on the page (run through DevTools, which
        the page's CSP does not govern)."""
        await self.page.evaluate(AXE.read_text())
        found = await self.page.evaluate(
            "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations"
            ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
            ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', ')))"
        )
        return list(found)


@asynccontextmanager
async def open_screen(browser: Browser, url: str) -> AsyncIterator[Screen]:
    """A fresh browser context (no cookies) on central at `url`, collecting CSP reports."""
    context = await browser.new_context(locale="en-GB")
    page = await context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: (
            violations.append(msg.text) if re.search("Content.Security.Policy", msg.text) else None
        ),
    )
    try:
        yield Screen(context, page, url, violations)
    finally:
        await context.close()


@pytest.fixture
async def screen(browser: Browser, central: CentralServer) -> AsyncIterator[Screen]:  # noqa: F811
    async with open_screen(browser, central.url) as opened:
        yield opened
