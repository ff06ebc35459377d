"""One central and one Chromium per test module for the festival pages' tests (each test
gets its own festival, user and browser context): a module's tests share the start-up."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright, expect
from psycopg import AsyncConnection

from central import pg
from central.sample import SampleFestival, create_sample_festival
from edge.cli_sync import enrol_device
from tests.console.conftest import Screen
from tests.integration.conftest import CentralServer, Node, enrol_code, new_dir, open_node
from tests.integration.test_api_docs import CHROMIUM_ARGS, UI_TIMEOUT_MS, _chromium

MODULE = pytest.mark.asyncio(loop_scope="module")  # every test of a module on one loop


@pytest.fixture(scope="module")
def site_dsn(pg_admin_dsn: str, pg_template: str) -> Iterator[str]:
    """A fresh database for the module."""
    name = f"fgt_pages_{uuid.uuid4().hex[:10]}"
    with pg.scratch_database(pg_admin_dsn, name, template=pg_template) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def site(site_dsn: str) -> Iterator[CentralServer]:
    """Central on loopback for the module. Once its tests are done it stops at once: a
    long-poll a closed device left open would hold a graceful stop for its whole wait."""
    server = CentralServer(site_dsn)
    server.start()
    try:
        yield server
    finally:
        if server._server is not None:
            server._server.force_exit = True
        server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium for the module."""
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="module")
async def tab(chromium: Browser, site: CentralServer) -> AsyncIterator[Screen]:
    """A fresh browser context (no cookies) on the module's central."""
    context = await chromium.new_context(locale="en-GB")
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
        yield Screen(context, page, site.url, violations)
    finally:
        await context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def festival_of_test(site_dsn: str) -> SampleFestival:
    """A festival of the test's own in the module's database."""
    async with await AsyncConnection.connect(site_dsn) as conn:
        return await create_sample_festival(conn, signed_tickets=6, opaque_tickets=1, wristbands=2)


@pytest_asyncio.fixture(loop_scope="module")
async def devices_of_test() -> AsyncIterator[list[Node]]:
    """Devices a test opens, closed after it."""
    opened: list[Node] = []
    yield opened
    for node in opened:
        await node.close()


async def device(
    site: CentralServer, dsn: str, fest: SampleFestival, role: str, name: str, tmp: Path
) -> Node:
    """A real device enrolled by name at the module's central (not syncing on its own)."""
    data = new_dir(tmp)
    await enrol_device(site.url, await enrol_code(dsn, fest, role), name=name, data_dir=data)
    return await open_node(data)


async def scalar(dsn: str, query: str, *args: object) -> object:
    """One value from the database."""
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(query, args)
        rec = await cur.fetchone()
        assert rec is not None
        return rec[0]


async def check_page(screen: Screen, name: str) -> None:
    """The page as it stands has no serious accessibility finding, nothing the CSP refused,
    and its screenshot is written."""
    assert await screen.axe_serious() == [], name
    assert screen.csp_violations == []
    assert (await screen.shot(f"page-{name}")).stat().st_size > 0
