"""Issue 17's Conflicts and Devices pages in a real Chromium against a real central and
real devices: a conflict two offline gates made is resolved from the page; an enrol code
made on the page enrols a real device; revoking one asks first."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.async_api import expect

from central.sample import SampleFestival
from edge.cli_sync import enrol_device
from sync.client import CentralRefused
from tests.console.conftest import Screen, make_user
from tests.console.pages_rig import (
    MODULE,
    check_page,
    chromium,  # noqa: F401 - fixtures
    device,
    devices_of_test,  # noqa: F401
    festival_of_test,  # noqa: F401
    scalar,
    site,  # noqa: F401
    site_dsn,  # noqa: F401
    tab,  # noqa: F401
)
from tests.console.test_security import HOSTILE
from tests.integration.conftest import CentralServer, Node, new_dir, open_node

pytestmark = MODULE


async def test_a_conflict_of_two_offline_gates_is_resolved_from_the_page(
    tab: Screen,  # noqa: F811
    site: CentralServer,  # noqa: F811
    site_dsn: str,  # noqa: F811
    festival_of_test: SampleFestival,  # noqa: F811
    devices_of_test: list[Node],  # noqa: F811
    tmp_path: Path,
) -> None:
    fest = festival_of_test
    north = await device(site, site_dsn, fest, "gate", "north-gate", tmp_path)
    south = await device(site, site_dsn, fest, "gate", "south-gate", tmp_path)
    devices_of_test.extend([north, south])
    # Both offline: each admits the same ticket, neither knowing of the other; then both push.
    code = fest.tickets[0].code
    assert (await north.device.scan(code)).verdict.code == "ok"
    assert (await south.device.scan(code)).verdict.code == "ok"
    await north.engine.sync_round()
    await south.engine.sync_round()
    admin = await make_user(site_dsn, "SECURITY", festival_id=fest.festival_id)
    await tab.login(admin, then=f"/ops/f/{fest.slug}/conflicts")
    page = tab.page
    card = page.locator(".conflict", has=page.locator(".kind", has_text="duplicate_entry"))
    await expect(card).to_have_count(1)
    # Both facts side by side: each gate by name, each with its verdict.
    await expect(card.locator(".sides td.device")).to_have_text(["north-gate", "south-gate"])
    await expect(card.locator(".sides td.verdict")).to_have_text(["ok", "ok"])
    await check_page(tab, "conflicts")
    # Only open ones by default, filtered by a gate's name and by the ticket.
    await page.get_by_label("Device").select_option("south-gate")
    await page.get_by_role("button", name="Filter").click()
    await expect(card).to_have_count(1)
    await page.get_by_label("Resolution note").fill("same person, re-scanned <b>twice</b>")
    await page.get_by_role("button", name="Resolve").click()
    await expect(page.locator("#done")).to_have_text("✔ Conflict resolved.")
    await expect(card.locator(".resolution .note")).to_have_text(
        "same person, re-scanned <b>twice</b>"
    )
    note = await scalar(
        site_dsn, "SELECT resolution_note FROM conflict WHERE festival_id = %s AND kind ="
        " 'duplicate_entry' AND resolved_at IS NOT NULL", fest.festival_id,
    )  # fmt: skip
    assert note == "same person, re-scanned <b>twice</b>"
    # Open ones only again: none left.
    await page.goto(f"{site.url}/ops/f/{fest.slug}/conflicts?state=open")
    await expect(page.locator("#conflicts")).to_contain_text("No conflicts match.")


async def test_an_enrol_code_made_on_the_page_enrols_a_real_device(
    tab: Screen,  # noqa: F811
    site: CentralServer,  # noqa: F811
    site_dsn: str,  # noqa: F811
    festival_of_test: SampleFestival,  # noqa: F811
    devices_of_test: list[Node],  # noqa: F811
    tmp_path: Path,
) -> None:
    fest = festival_of_test
    tech = await make_user(site_dsn, "STAFF", festival_id=fest.festival_id)
    await tab.login(tech, then=f"/ops/f/{fest.slug}/devices")
    page = tab.page
    assert await page.get_by_role("link", name="Revoke…").count() == 0  # staff may not
    await page.get_by_label("Role").select_option("gate")
    await page.get_by_label("Zone (gate)").select_option("Main gate")
    await page.get_by_role("button", name="Make an enrol code").click()
    code = await page.locator("#enrol-code").inner_text()
    await expect(page.locator("#new-code svg.qr")).to_be_visible()
    await expect(page.locator("#enrol-command")).to_contain_text(f"--code {code}")
    await check_page(tab, "devices-enrol-code")
    # The site tech types it on a real device, which enrols and admits at that gate.
    data = new_dir(tmp_path)
    await enrol_device(site.url, code, name="east-gate", data_dir=data)
    node = await open_node(data)
    devices_of_test.append(node)
    assert node.creds.zone_id == str(fest.zone_id)
    assert (await node.device.scan(fest.tickets[1].code)).verdict.code == "ok"
    await node.device.record_log({"message": HOSTILE, "level": "warning"})
    await node.engine.sync_round()
    await page.goto(f"{site.url}/ops/f/{fest.slug}/devices")
    row = page.locator("#devices tbody tr", has_text="east-gate")
    await expect(row.locator(".status-cell")).to_have_text("● online")
    await expect(row).to_contain_text("Main gate")
    await check_page(tab, "devices")
    # Its own page: health and log lines, every one shown as text.
    await row.get_by_role("link", name="east-gate").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("east-gate")
    await expect(page.locator("#log .message")).to_have_text([HOSTILE])  # text, not markup
    assert await page.evaluate("window.pwned") is None
    assert await page.locator("main img, main script").count() == 0
    await check_page(tab, "device")


async def test_revoking_a_device_asks_first_and_its_token_is_refused_after(
    tab: Screen,  # noqa: F811
    site: CentralServer,  # noqa: F811
    site_dsn: str,  # noqa: F811
    festival_of_test: SampleFestival,  # noqa: F811
    devices_of_test: list[Node],  # noqa: F811
    tmp_path: Path,
) -> None:
    fest = festival_of_test
    gate = await device(site, site_dsn, fest, "gate", "west-gate", tmp_path)
    devices_of_test.append(gate)
    await gate.engine.sync_round()
    boss = await make_user(site_dsn, "ORGANIZER", festival_id=fest.festival_id)
    await tab.login(boss, then=f"/ops/f/{fest.slug}/devices")
    page = tab.page
    await page.get_by_role("link", name="Revoke west-gate…").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Revoke west-gate?")
    await check_page(tab, "device-revoke")
    await page.get_by_role("button", name="Revoke the device").click()
    await expect(page.locator("#done")).to_have_text("✔ Device revoked.")
    row = page.locator("#devices tbody tr", has_text="west-gate")
    await expect(row.locator(".status-cell")).to_have_text("✕ revoked")
    revoked = await scalar(
        site_dsn, "SELECT revoked_at IS NOT NULL FROM device WHERE id = %s",
        uuid.UUID(gate.creds.device_id),
    )  # fmt: skip
    assert revoked is True
    with pytest.raises(CentralRefused) as refused:
        await gate.client.changes(0)
    assert refused.value.error == "token_revoked"
