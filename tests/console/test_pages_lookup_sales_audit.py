"""Issue 17's Lookup, Sales and Audit pages in a real Chromium against a real central and
real devices: a ticket cancelled from Lookup is refused at an online gate within a second
and shows on Audit with its old and new value; a security user neither sees nor can post a
top-up; the Sales CSV nets a refunded sale out."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from decimal import Decimal

import pytest
from playwright.async_api import Browser, expect
from psycopg import AsyncConnection

from tests.console.conftest import ARTIFACTS
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
from tests.console.test_security import _scalar as scalar

pytestmark = MODULE
FEED_WITHIN_S = 1.0  # the bound: a cancelled ticket is refused within a second


async def test_a_ticket_cancelled_on_lookup_is_refused_at_an_online_gate_and_audited(
    rig: Rig,
) -> None:
    fest = rig.fest
    gate = await rig.device("gate", "main-gate")
    online = asyncio.create_task(gate.engine.run())  # pushes at once, long-polls the feed
    try:
        admin = await rig.user("ADMIN")
        await rig.screen.login(admin, then=f"/ops/f/{fest.slug}/lookup")
        page = rig.page
        ticket = fest.tickets[2]
        await page.get_by_label("Ticket: code, outside code, holder reference or id").fill(
            ticket.code
        )
        await page.get_by_role("button", name="Find the ticket").click()
        await expect(page.locator("#ticket .ticket-status")).to_have_text("SOLD")
        await check_page(rig.screen, "lookup-ticket")
        await page.get_by_role("button", name="Cancel the ticket").click()
        await expect(page.locator("#done")).to_have_text("✔ Ticket cancelled.")
        await expect(page.locator("#ticket .ticket-status")).to_have_text("CANCELLED")
        # Committed: the gate's long-poll wakes and it has the change within a second.
        head = await scalar(
            rig.dsn, "SELECT head FROM feed_head WHERE festival_id = %s", fest.festival_id
        )
        assert isinstance(head, int)
        async with asyncio.timeout(FEED_WITHIN_S):
            while gate.device.store.cursor < head:  # noqa: ASYNC110 - another task's state
                await asyncio.sleep(0.01)
        assert (await gate.device.scan(ticket.code)).verdict.code == "cancelled"
        # The cancel is in the ticket's history and on Audit, with its old and new value.
        await expect(
            page.locator("#ticket .audit .action", has_text="ticket.cancelled")
        ).to_have_count(1)
        await page.get_by_role("link", name="Audit").click()
        await page.get_by_label("Action (or its start)").fill("ticket.cancel")
        await page.get_by_role("button", name="Filter").click()
        entry = page.locator("#audit tr.audit-entry")
        await expect(entry).to_have_count(1)
        status = entry.locator(".changes li", has_text="status")
        await expect(status.locator(".old")).to_have_text("SOLD")
        await expect(status.locator(".new")).to_have_text("CANCELLED")
        await expect(entry.locator(".actor")).to_contain_text(admin.name)
        await check_page(rig.screen, "audit")
    finally:
        online.cancel()
        with pytest.raises(asyncio.CancelledError):
            await online


async def test_security_sees_no_top_up_and_a_forged_one_is_refused(rig: Rig) -> None:
    fest = rig.fest
    account = fest.account_ids[0]
    guard = await rig.user("SECURITY")
    await rig.screen.login(guard, then=f"/ops/f/{fest.slug}/lookup?wristband={fest.tag_uids[0]}")
    page = rig.page
    actions = page.locator("#wristband-actions")
    await expect(actions.get_by_role("button", name="Block the wristband")).to_be_visible()
    for hidden in ("Top up", "Pay back"):
        await expect(page.get_by_role("button", name=hidden)).to_have_count(0)
    await expect(page.locator("#balance, #ledger")).to_have_count(0)  # no money shown either
    await check_page(rig.screen, "lookup-wristband-security")
    ledger = "SELECT count(*) FROM cashless_transaction WHERE account_id = %s"
    audited = "SELECT count(*) FROM audit_log WHERE festival_id = %s"
    before = (
        await scalar(rig.dsn, ledger, account),
        await scalar(rig.dsn, audited, fest.festival_id),
    )
    # A top-up forged with this session's own valid CSRF token: refused, nothing stored.
    token = await page.locator("#wristband-actions input[name=csrf_token]").first.input_value()
    topup = rig.url(f"lookup/wristband/{account}/topup")
    refused = await page.request.post(topup, form={"csrf_token": token, "amount": "50"})
    assert refused.status == 403
    assert "Your role may not do this." in await refused.text()
    after = (
        await scalar(rig.dsn, ledger, account),
        await scalar(rig.dsn, audited, fest.festival_id),
    )
    assert after == before
    # A cashier may, from the page (an amount typed the French way too).
    cashier = await rig.user("CASHIER")
    await page.get_by_role("button", name="Log out").click()
    await rig.screen.login(cashier, then=f"/ops/f/{fest.slug}/lookup?wristband={fest.tag_uids[0]}")
    await expect(page.locator("#balance")).to_have_text("€50.00")
    await page.get_by_label("Top-up amount (EUR)").fill("12,50")
    await page.get_by_role("button", name="Top up").click()
    await expect(page.locator("#done")).to_have_text("✔ Topped up.")
    await expect(page.locator("#balance")).to_have_text("€62.50")
    await check_page(rig.screen, "lookup-wristband")


async def test_the_sales_csv_has_the_net_figures(
    rig: Rig,
    chromium: Browser,  # a second context on the module's browser
) -> None:
    fest = rig.fest
    bar = await rig.device("bar", "main-bar-till")
    beer = str(fest.product_id)
    kept = await bar.device.charge(fest.tag_uids[0], products=[(beer, 3)])
    undone = await bar.device.charge(fest.tag_uids[1], products=[(beer, 2)])
    by_amount = await bar.device.charge(fest.tag_uids[1], amount=75)
    for sale in (kept, undone, by_amount):
        assert sale.verdict.code == "approved"
    assert (await bar.device.refund(undone.event.event_id)).verdict.code == "approved"
    await bar.engine.sync_round()
    admin = await rig.user("ADMIN")
    await rig.screen.login(admin, then=f"/ops/f/{fest.slug}/sales")
    page = rig.page
    total = page.locator("#vendor-totals tbody tr", has_text="Main bar")
    await expect(total.locator(".amount")).to_have_text("€14.25")  # 3 beers at 4.50, and 0.75
    await check_page(rig.screen, "sales")
    answer = await page.request.get(await page.locator("#csv").evaluate("a => a.href"))
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(await answer.text())))
    # Summed over buckets (the sales may straddle an hour): the refunded sale is netted out.
    net: dict[str, tuple[int, Decimal]] = {}
    for r in rows:
        assert r["vendor"] == "Main bar" and r["currency"] == "EUR"
        q, a = net.get(r["product"], (0, Decimal(0)))
        net[r["product"]] = (q + int(r["quantity"]), a + Decimal(r["net_amount"]))
    assert net == {"Beer": (3, Decimal("13.50")), "": (0, Decimal("0.75"))}
    # The same page in French: its words, and euros the French way.
    french = await chromium.new_context(locale="fr-FR")
    try:
        fr = await french.new_page()
        await fr.goto(f"{rig.site.url}/ops/login?next=/ops/f/{fest.slug}/sales")
        await fr.get_by_label("Nom").fill(admin.name)
        await fr.get_by_label("Mot de passe").fill(admin.password)
        await fr.get_by_role("button", name="Se connecter").click()
        await expect(fr.get_by_role("heading", name="Par vendeur")).to_be_visible()
        cell = fr.locator("#vendor-totals tbody tr", has_text="Main bar").locator(".amount")
        await expect(cell).to_have_text("14,25\u00a0€")
        await expect(fr.get_by_role("link", name="Télécharger en CSV")).to_be_visible()
        await fr.screenshot(path=str(ARTIFACTS / "page-sales-fr.png"), full_page=True)
    finally:
        await french.close()


async def test_audit_pages_through_every_entry_once(rig: Rig) -> None:
    fest = rig.fest
    async with await AsyncConnection.connect(rig.dsn) as conn:
        # 120 entries, 60 of them at one same instant: the keyset must break the ties.
        await conn.execute(
            "INSERT INTO audit_log (actor, action, entity_type, entity_id, festival_id,"
            " old_value, new_value, at) SELECT 'test', 'paging.step', 'step', i::text, %s,"
            " '{}', jsonb_build_object('i', i), CASE WHEN i <= 60 THEN timestamptz"
            " '2026-07-01 12:00:00+00' ELSE timestamptz '2026-07-01 12:00:00+00' + i *"
            " interval '1 s' END FROM generate_series(1, 120) i",
            (fest.festival_id,),
        )
        await conn.commit()
    admin = await rig.user("ADMIN")
    await rig.screen.login(admin, then=f"/ops/f/{fest.slug}/audit?action=paging.")
    page = rig.page
    seen: list[str] = []
    while True:
        entities = page.locator("#audit tr.audit-entry .action .muted")
        await expect(entities.first).to_be_visible()
        seen += await entities.all_inner_texts()
        older = page.get_by_role("link", name="Older entries")
        if await older.count() == 0:
            break
        href = await older.get_attribute("href")
        assert href is not None
        await older.click()
        await expect(page).to_have_url(re.compile(re.escape(href) + "$"))  # the next page
    assert sorted(seen) == sorted(f"step {i}" for i in range(1, 121))
    assert seen[:2] == ["step 120", "step 119"]  # newest first


async def test_every_ticket_and_wristband_action_answers_on_the_page(rig: Rig) -> None:
    fest = rig.fest
    admin = await rig.user("ADMIN")
    ticket = fest.tickets[3]
    await rig.screen.login(admin, then=f"/ops/f/{fest.slug}/lookup?ticket={ticket.ticket_id}")
    page = rig.page
    status = page.locator("#ticket .ticket-status")
    # Block with a reason (shown as text), unblock, transfer (the new code shown once).
    await page.get_by_label("Reason").fill("<i>lost</i>")
    await page.get_by_role("button", name="Block the ticket").click()
    await expect(status).to_have_text("SOLD · ✕ blocked (<i>lost</i>)")
    await page.get_by_role("button", name="Unblock the ticket").click()
    await expect(page.locator("#done")).to_have_text("✔ Unblocked.")
    await page.get_by_label("New holder reference").fill("order-42")
    await page.get_by_role("button", name="Transfer").click()
    new_code = await page.locator("#new-ticket-code").inner_text()
    assert new_code and new_code != ticket.code
    # The holder reference finds it now; cancel, then refund.
    await page.goto(rig.url("lookup?ticket=order-42"))
    await page.get_by_role("button", name="Cancel the ticket").click()
    await page.get_by_role("button", name="Mark refunded").click()
    await expect(status).to_have_text("REFUNDED")
    assert await page.get_by_role("button", name="Cancel the ticket").count() == 0
    # A refused write says why and stores nothing: paying back more than the balance.
    await page.goto(rig.url(f"lookup?wristband={fest.tag_uids[1]}"))
    await page.get_by_label("Refund amount (EUR)").fill("999")
    await page.get_by_role("button", name="Pay back").click()
    await expect(page.locator("#refused")).to_contain_text("Refused:")
    await expect(page.locator("#balance")).to_have_text("€50.00")
    await page.get_by_label("Refund amount (EUR)").fill("0.5")
    await page.get_by_role("button", name="Pay back").click()
    await expect(page.locator("#balance")).to_have_text("€49.50")
    await page.get_by_label("Reason").fill("stolen")
    await page.get_by_role("button", name="Block the wristband").click()
    await expect(page.locator("#wristband .tag-status")).to_have_text("✕ blocked (stolen)")
    await page.get_by_role("button", name="Unblock the wristband").click()
    await expect(page.locator("#wristband .tag-status")).to_have_text("● usable")
    # Not found is said, not failed.
    await page.goto(rig.url("lookup?ticket=no-such-ticket"))
    await expect(page.locator("#refused")).to_contain_text("no-such-ticket")
    await check_page(rig.screen, "lookup-not-found")
