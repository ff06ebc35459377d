"""Issue 17: the Now page, live: a scan at a real gate shows without a reload."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect

from central.sample import SampleFestival
from tests.console.conftest import OpsUser, Screen
from tests.integration.conftest import CentralServer, Node, enrolled_dir, open_node


async def test_a_scan_at_a_gate_appears_on_now_by_itself(
    screen: Screen,
    admin: OpsUser,
    central: CentralServer,
    pg_dsn: str,
    fest: SampleFestival,
    tmp_path: Path,
    nodes: list[Node],
) -> None:
    node = await open_node(await enrolled_dir(central, pg_dsn, fest, "gate", tmp_path))
    nodes.append(node)
    await screen.login(admin, then=f"/ops/f/{fest.slug}/now")
    page = screen.page
    zone = page.locator("#zones tbody tr", has_text="Main gate")
    await expect(zone.locator(".occupancy")).to_have_text("0")
    await expect(page.locator("#live-status")).to_have_attribute("data-live", "open")
    await expect(page.locator("#devices-online")).to_contain_text("1 online")
    # A real scan at the gate, pushed by its sync engine: the page shows it, no reload.
    assert (await node.device.scan(fest.tickets[0].code)).verdict.code == "ok"
    await node.engine.sync_round()
    await expect(zone.locator(".occupancy")).to_have_text("1")
    gate = page.locator("#gates tbody tr", has_text="gate")
    await expect(gate.locator(".entries")).to_have_text("1")
    await expect(page.locator(".chart canvas").first).to_be_visible()
    await screen.shot("now")
    assert await screen.axe_serious() == []
    assert screen.csp_violations == []
