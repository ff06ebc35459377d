"""Issue 17: the Now page, live: a scan at a real gate shows without a reload."""

from __future__ import annotations

from playwright.async_api import expect

from central.sample import SampleFestival
from tests.console.conftest import OpsUser, Screen
from tests.integration.conftest import Node, serving


async def test_a_scan_at_a_gate_appears_on_now_by_itself(
    screen: Screen, admin: OpsUser, fest: SampleFestival, gate: Node
) -> None:
    await screen.login(admin, then=f"/ops/f/{fest.slug}/now")
    page = screen.page
    zone = page.locator("#zones tbody tr", has_text="Main gate")
    await expect(zone.locator(".occupancy")).to_have_text("0")
    await expect(page.locator("#live-status")).to_have_attribute("data-live", "open")
    await expect(page.locator("#devices-online")).to_contain_text("1 online")
    # A real scan at the gate, pushed by its sync engine: the page shows it, no reload.
    assert (await gate.device.scan(fest.tickets[0].code)).verdict.code == "ok"
    await gate.engine.sync_round()
    await expect(zone.locator(".occupancy")).to_have_text("1")
    row = page.locator("#gates tbody tr", has_text="gate")
    await expect(row.locator(".entries")).to_have_text("1")
    for series in ("entries", "exits"):  # both charts, drawn from the panel's one data
        await expect(page.locator(f".chart[data-series={series}] canvas")).to_be_visible()
    await screen.shot("now")
    assert await screen.axe_serious() == []
    assert screen.csp_violations == []


async def test_logging_out_elsewhere_ends_the_live_page(
    screen: Screen, admin: OpsUser, fest: SampleFestival
) -> None:
    await screen.login(admin, then=f"/ops/f/{fest.slug}/now")
    status = screen.page.locator("#live-status")
    await expect(status).to_have_attribute("data-live", "open")
    other = await screen.context.new_page()  # a second tab of the same browser
    await other.goto(f"{screen.base}/ops/")
    await other.get_by_role("button", name="Log out").click()
    await expect(other.get_by_role("heading", name="Log in to the ops console")).to_be_visible()
    # The stream re-checks its session: it says so and stops, rather than showing old data.
    await expect(status).to_have_attribute("data-live", "ended")
    await expect(status).to_have_text("Session ended: reload the page to log in again.")


async def test_a_scan_pushed_to_another_central_process_shows_too(
    screen: Screen, admin: OpsUser, pg_dsn: str, fest: SampleFestival, gate: Node
) -> None:
    # The browser watches a second central process on the same database; the gate pushes to
    # the first. Each process has its own LISTEN: the NOTIFY reaches both.
    with serving(pg_dsn) as second:
        screen.base = second.url
        await screen.login(admin, then=f"/ops/f/{fest.slug}/now")
        page = screen.page
        await expect(page.locator("#live-status")).to_have_attribute("data-live", "open")
        zone = page.locator("#zones tbody tr", has_text="Main gate")
        await expect(zone.locator(".occupancy")).to_have_text("0")
        assert (await gate.device.scan(fest.tickets[2].code)).verdict.code == "ok"
        await gate.engine.sync_round()
        await expect(zone.locator(".occupancy")).to_have_text("1")
        await screen.page.close()  # before the second central stops (its stream would hold it)
