"""Issue 17's Conflicts and Devices pages in a real Chromium against a real central and
real devices: a conflict two offline gates made is resolved from the page; an enrol code
made on the page enrols a real device; revoking one asks first."""

from __future__ import annotations

import uuid
from importlib.metadata import version

import pytest
from playwright.async_api import expect

from central.console.pages import conflicts as conflicts_page
from edge.cli_sync import enrol_device
from sync.client import CentralRefused
from tests.console.pages_rig import (  # noqa: F401 - fixtures the rig needs
    MODULE,
    Rig,
    check_page,
    chromium_fixture,
    rig_fixture,
    site,
    site_dsn,
    tab,
)
from tests.console.test_security import HOSTILE
from tests.console.test_security import _scalar as scalar
from tests.integration.conftest import new_dir, open_node

pytestmark = MODULE


async def test_a_conflict_of_two_offline_gates_is_resolved_from_the_page(rig: Rig) -> None:
    fest = rig.fest
    north = await rig.device("gate", "north-gate")
    south = await rig.device("gate", "south-gate")
    # Both offline: each admits the same ticket, neither knowing of the other; then both push.
    code = fest.tickets[0].code
    assert (await north.device.scan(code)).verdict.code == "ok"
    assert (await south.device.scan(code)).verdict.code == "ok"
    await north.engine.sync_round()
    await south.engine.sync_round()
    guard = await rig.user("SECURITY")
    await rig.screen.login(guard, then=f"/ops/f/{fest.slug}/conflicts")
    page = rig.page
    card = page.locator(".conflict", has=page.locator(".kind", has_text="duplicate_entry"))
    await expect(card).to_have_count(1)
    # Both facts side by side: each gate by name, each with its verdict.
    await expect(card.locator(".sides td.device")).to_have_text(["north-gate", "south-gate"])
    await expect(card.locator(".sides td.verdict")).to_have_text(["ok", "ok"])
    await check_page(rig.screen, "conflicts")
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
        rig.dsn, "SELECT resolution_note FROM conflict WHERE festival_id = %s AND kind ="
        " 'duplicate_entry' AND resolved_at IS NOT NULL", fest.festival_id,
    )  # fmt: skip
    assert note == "same person, re-scanned <b>twice</b>"
    # Open ones only again: none left.
    await page.goto(rig.url("conflicts?state=open"))
    await expect(page.locator("#conflicts")).to_contain_text("No conflicts match.")


async def test_an_enrol_code_made_on_the_page_enrols_a_real_device(rig: Rig) -> None:
    fest = rig.fest
    tech = await rig.user("STAFF")
    await rig.screen.login(tech, then=f"/ops/f/{fest.slug}/devices")
    page = rig.page
    assert await page.get_by_role("link", name="Revoke…").count() == 0  # staff may not
    await page.get_by_label("Role").select_option("gate")
    await page.get_by_label("Zone (gate)").select_option("Main gate")
    await page.get_by_role("button", name="Make an enrol code").click()
    code = await page.locator("#enrol-code").inner_text()
    await expect(page.locator("#new-code svg.qr")).to_be_visible()
    await expect(page.locator("#enrol-command")).to_contain_text(f"--code {code}")
    await check_page(rig.screen, "devices-enrol-code")
    # The site tech types it on a real device, which enrols and admits at that gate.
    data = new_dir(rig.tmp)
    await enrol_device(rig.site.url, code, name="east-gate", data_dir=data)
    node = await open_node(data)
    rig.devices.append(node)
    assert node.creds.zone_id == str(fest.zone_id)
    assert (await node.device.scan(fest.tickets[1].code)).verdict.code == "ok"
    await node.device.record_log({"message": HOSTILE, "level": "warning"})
    node.client.readers = {"nfc": False, "camera": True}  # as its daemon's supervisor says
    await node.engine.sync_round()
    await page.goto(rig.url("devices"))
    row = page.locator("#devices tbody tr", has_text="east-gate")
    await expect(row.locator(".status-cell")).to_have_text("● online")
    await expect(row).to_contain_text("Main gate")
    # What it runs: its version, and each reader by name with a mark and a word (not colour).
    await expect(row.locator(".software")).to_have_text(version("festgate"))
    await expect(row.locator(".readers-cell")).to_have_text("camera ✓ working nfc ✗ down")
    await check_page(rig.screen, "devices")
    # Its own page: health and log lines, every one shown as text.
    await row.get_by_role("link", name="east-gate").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("east-gate")
    await expect(page.locator("dd.readers-cell")).to_have_text("camera ✓ working nfc ✗ down")
    await expect(page.locator("#log .message")).to_have_text([HOSTILE])  # text, not markup
    assert await page.evaluate("window.pwned") is None
    assert await page.locator("main img, main script").count() == 0
    await check_page(rig.screen, "device")
    # Staff may not revoke: no link, and a revoke posted with their own token is refused.
    assert await page.get_by_role("link", name="Revoke…").count() == 0
    token = await page.locator("header input[name=csrf_token]").input_value()
    forged = await page.request.post(
        rig.url(f"devices/{node.creds.device_id}/revoke"), form={"csrf_token": token}
    )
    assert forged.status == 403 and "Your role may not do this." in await forged.text()
    revoked = "SELECT revoked_at IS NOT NULL FROM device WHERE id = %s"
    assert await scalar(rig.dsn, revoked, uuid.UUID(node.creds.device_id)) is False


async def test_revoking_a_device_asks_first_and_its_token_is_refused_after(rig: Rig) -> None:
    fest = rig.fest
    gate = await rig.device("gate", "west-gate")
    await gate.engine.sync_round()
    boss = await rig.user("ORGANIZER")
    await rig.screen.login(boss, then=f"/ops/f/{fest.slug}/devices")
    page = rig.page
    await page.get_by_role("link", name="Revoke west-gate…").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Revoke west-gate?")
    await check_page(rig.screen, "device-revoke")
    await page.get_by_role("button", name="Revoke the device").click()
    await expect(page.locator("#done")).to_have_text("✔ Device revoked.")
    row = page.locator("#devices tbody tr", has_text="west-gate")
    await expect(row.locator(".status-cell")).to_have_text("✕ revoked")
    revoked = await scalar(
        rig.dsn, "SELECT revoked_at IS NOT NULL FROM device WHERE id = %s",
        uuid.UUID(gate.creds.device_id),
    )  # fmt: skip
    assert revoked is True
    with pytest.raises(CentralRefused) as refused:
        await gate.client.changes(0)
    assert refused.value.error == "token_revoked"


async def test_conflicts_come_a_page_at_a_time_with_how_many_there_are(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conflicts_page, "SHOWN", 1)  # a page of one: two conflicts, two pages
    fest = rig.fest
    east = await rig.device("gate", "east-pair")
    west = await rig.device("gate", "west-pair")
    for ticket in fest.tickets[4:6]:  # each admitted at both gates, offline
        assert (await east.device.scan(ticket.code)).verdict.code == "ok"
        assert (await west.device.scan(ticket.code)).verdict.code == "ok"
    await east.engine.sync_round()
    await west.engine.sync_round()
    guard = await rig.user("SECURITY")
    await rig.screen.login(guard, then=f"/ops/f/{fest.slug}/conflicts?device=east-pair")
    page = rig.page
    cards = page.locator(".conflict")
    await expect(cards).to_have_count(1)
    await expect(page.locator("main")).to_contain_text("1 of 2 shown, newest first.")
    newest = await cards.get_attribute("data-conflict")
    await page.get_by_role("link", name="Older conflicts").click()
    await expect(page.locator("main")).to_contain_text("1 of 2 shown, newest first.")
    older = await page.locator(".conflict").get_attribute("data-conflict")
    assert older is not None and older != newest
    # The filter stays on the next page, and the last page links to none further.
    assert "device=east-pair" in page.url
    assert await page.get_by_role("link", name="Older conflicts").count() == 0
