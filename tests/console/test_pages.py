"""Issue 17: every console page passes axe-core (nothing serious), is screenshotted, reads
in French, is keyboard-first, and its live stream comes back after central restarts."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from central.sample import SampleFestival
from tests.console.conftest import ARTIFACTS, OpsUser, Screen
from tests.integration.conftest import CentralServer, Node


async def test_each_page_has_no_serious_accessibility_finding(
    screen: Screen, admin: OpsUser, fest: SampleFestival
) -> None:
    page = screen.page
    await screen.goto("/ops/login")
    await expect(page.get_by_label("Name")).to_be_focused()  # type at once
    found = {"login": await screen.axe_serious()}
    await screen.shot("login")
    await screen.login(admin)
    # Keyboard first: the first Tab lands on the skip link, which leads to the content.
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    pages = {
        "home": "/ops/",
        "now": f"/ops/f/{fest.slug}/now",
        "sessions": "/ops/sessions",
        "error": "/ops/f/no-such-festival/now",
    }
    for name, path in pages.items():
        await screen.goto(path)
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        if name == "now":
            await expect(page.locator("#live-status")).to_have_attribute("data-live", "open")
        found[name] = await screen.axe_serious()
        await screen.shot(f"page-{name}")
    # A tablet held upright: the same page, its cards one under another.
    await page.set_viewport_size({"width": 768, "height": 1024})
    await screen.goto(pages["now"])
    await expect(page.locator("#zones")).to_be_visible()
    found["now-tablet"] = await screen.axe_serious()
    await screen.shot("page-now-tablet")
    assert found == {name: [] for name in found}
    assert screen.csp_violations == []
    assert (ARTIFACTS / "page-now.png").stat().st_size > 0


async def test_the_console_speaks_french_with_the_festival_s_money(
    browser: Browser, central: CentralServer, admin: OpsUser, fest: SampleFestival
) -> None:
    context = await browser.new_context(locale="fr-FR")
    try:
        page = await context.new_page()
        await page.goto(f"{central.url}/ops/login?next=/ops/f/{fest.slug}/now")
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            "Connexion à la console ops"
        )
        await page.get_by_label("Nom").fill(admin.name)
        await page.get_by_label("Mot de passe").fill(admin.password)
        await page.get_by_role("button", name="Se connecter").click()
        await expect(page.get_by_role("heading", name="Ventes par bar")).to_be_visible()
        # Euro cents in French: a comma and the sign after (a narrow no-break space first).
        amount = page.locator("#sales .amount").first
        await expect(amount).to_have_text("0,00\u00a0€")
        await expect(page.locator(".as-of")).to_contain_text("(Europe/Paris)")
        await page.screenshot(path=str(ARTIFACTS / "now-fr.png"), full_page=True)
        # The chosen language wins over the browser's.
        await page.get_by_role("link", name="English").click()
        await expect(page.get_by_role("heading", name="Sales per bar")).to_be_visible()
        await expect(amount).to_have_text("€0.00")
    finally:
        await context.close()


async def test_now_reconnects_after_central_restarts(
    screen: Screen, admin: OpsUser, central: CentralServer, fest: SampleFestival, gate: Node
) -> None:
    await screen.login(admin, then=f"/ops/f/{fest.slug}/now")
    page = screen.page
    status = page.locator("#live-status")
    await expect(status).to_have_attribute("data-live", "open")
    central.stop()
    await expect(status).to_have_attribute("data-live", "error")
    await expect(status).to_have_text("Connection lost: reconnecting…")
    central.start()
    await expect(status).to_have_attribute("data-live", "open")
    assert (await gate.device.scan(fest.tickets[1].code)).verdict.code == "ok"
    await gate.engine.sync_round()
    zone = page.locator("#zones tbody tr", has_text="Main gate")
    await expect(zone.locator(".occupancy")).to_have_text("1")
