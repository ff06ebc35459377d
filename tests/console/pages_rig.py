"""One central and one Chromium per test module for the festival pages' tests (each test
gets its own festival, user and browser context): a module's tests share the start-up."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright
from psycopg import AsyncConnection

from central import pg
from central.sample import SampleFestival, create_sample_festival
from edge.cli_sync import enrol_device
from tests.console.conftest import OpsUser, Screen, make_user, open_screen
from tests.integration.conftest import CentralServer, Node, enrol_code, new_dir, open_node
from tests.integration.test_api_docs import CHROMIUM_ARGS, _chromium

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


@pytest_asyncio.fixture(name="chromium", scope="module", loop_scope="module")
async def chromium_fixture() -> AsyncIterator[Browser]:
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
    async with open_screen(chromium, site.url) as opened:
        yield opened


@dataclass
class Rig:
    """What one test works with: its tab, the module's central and database, a festival of
    its own, and the real devices it enrols (closed after it)."""

    screen: Screen
    site: CentralServer
    dsn: str
    fest: SampleFestival
    devices: list[Node]
    tmp: Path

    @property
    def page(self) -> Page:
        """The tab's page."""
        return self.screen.page

    def url(self, path: str) -> str:
        """A console path of the test's festival (``/ops/f/SLUG/<path>``), absolute."""
        return f"{self.site.url}/ops/f/{self.fest.slug}/{path}"

    async def device(self, role: str, name: str) -> Node:
        """A real device enrolled by name at the module's central (not syncing on its own)."""
        data = new_dir(self.tmp)
        code = await enrol_code(self.dsn, self.fest, role)
        await enrol_device(self.site.url, code, name=name, data_dir=data)
        node = await open_node(data)
        self.devices.append(node)
        return node

    async def user(self, role: str) -> OpsUser:
        """An ops user of the role, of this festival only (an ADMIN: of all)."""
        scope = None if role == "ADMIN" else self.fest.festival_id
        return await make_user(self.dsn, role, festival_id=scope)


@pytest_asyncio.fixture(name="rig", loop_scope="module")
async def rig_fixture(
    tab: Screen, site: CentralServer, site_dsn: str, tmp_path: Path
) -> AsyncIterator[Rig]:
    """The test's rig, on a festival of its own in the module's database."""
    async with await AsyncConnection.connect(site_dsn) as conn:
        fest = await create_sample_festival(conn, signed_tickets=6, opaque_tickets=1, wristbands=2)
    made = Rig(tab, site, site_dsn, fest, [], tmp_path)
    try:
        yield made
    finally:
        for node in made.devices:
            await node.close()


async def check_page(screen: Screen, name: str) -> None:
    """The page as it stands has no serious accessibility finding, nothing the CSP refused,
    and its screenshot is written."""
    assert await screen.axe_serious() == [], name
    assert screen.csp_violations == []
    assert (await screen.shot(f"page-{name}")).stat().st_size > 0
