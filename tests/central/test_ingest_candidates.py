"""Issue 3: ingest re-runs the rules only where a conflict can change, and misses none.

Each case pushes facts so that the cheap per-batch test (in order, late but safe, replay)
is the one deciding, and checks the outcome equals what replaying everything gives.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .sync_helpers import Dev, Rig


@pytest.fixture
def rig_festival() -> dict[str, Any]:
    return {"signed_tickets": 3, "wristbands": 2, "opening_balance": 1000}


def _money(rig: Rig, dev: Dev, kind: str, account: uuid.UUID, amount: int, at: int) -> Any:
    payload = {"account_id": str(account), "amount": amount}
    return rig.event(dev, kind, "approved", payload, at_ms=at)


async def _overdrafts(rig: Rig, account: uuid.UUID) -> list[tuple[str, bool]]:
    async with rig.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT facts->'crossing'->>'event_id', resolved_at IS NULL FROM conflict"
            " WHERE kind = 'overdraft' AND subject_id = %s ORDER BY id",
            (account,),
        )
        return [(str(r[0]), bool(r[1])) for r in await cur.fetchall()]


async def _account(rig: Rig, account: uuid.UUID) -> tuple[int, int, bool, bool]:
    async with rig.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT balance, debt, blocked, EXISTS (SELECT 1 FROM account_hold h"
            " WHERE h.account_id = a.id) FROM cashless_account a WHERE id = %s",
            (account,),
        )
        rec = await cur.fetchone()
    assert rec is not None
    return int(rec[0]), int(rec[1]), bool(rec[2]), bool(rec[3])


async def test_a_late_sale_that_makes_a_later_one_cross_is_found(rig: Rig) -> None:
    bar1, bar2 = await rig.enrol("bar"), await rig.enrol("bar")
    a = rig.fest.account_ids[0]
    first = _money(rig, bar1, "sale", a, 400, 100)
    second = _money(rig, bar1, "sale", a, 400, 300)
    assert (await rig.push(bar1, [first, second])).status_code == 200
    assert await _overdrafts(rig, a) == []  # 1000 -> 600 -> 200
    # Sold in between at another bar, pushed later: the stored second sale now crosses zero.
    between = _money(rig, bar2, "sale", a, 300, 200)
    assert (await rig.push(bar2, [between])).status_code == 200
    assert await _overdrafts(rig, a) == [(second["event_id"], True)]
    assert await _account(rig, a) == (-100, 100, True, True)


async def test_a_late_credit_clears_an_overdraft_and_its_hold(rig: Rig) -> None:
    bar, desk = await rig.enrol("bar"), await rig.enrol("topup")
    a = rig.fest.account_ids[0]
    sales = [_money(rig, bar, "sale", a, 600, 100), _money(rig, bar, "sale", a, 600, 300)]
    assert (await rig.push(bar, sales)).status_code == 200
    assert await _overdrafts(rig, a) == [(sales[1]["event_id"], True)]
    assert await _account(rig, a) == (-200, 200, True, True)
    # A top-up made before the second sale, synced late: no overdraft ever happened.
    topup = _money(rig, desk, "topup", a, 500, 200)
    assert (await rig.push(desk, [topup])).status_code == 200
    assert await _overdrafts(rig, a) == []
    assert await _account(rig, a) == (300, 0, False, False)


async def test_in_debt_a_credit_then_a_crossing_sale_is_a_new_overdraft(rig: Rig) -> None:
    bar = await rig.enrol("bar")
    a = rig.fest.account_ids[0]
    first = _money(rig, bar, "sale", a, 1200, 100)
    assert (await rig.push(bar, [first])).status_code == 200
    assert await _overdrafts(rig, a) == [(first["event_id"], True)]
    # In order, from a balance in debt: a refund lifts it above zero, a sale crosses again.
    refund = _money(rig, bar, "refund", a, 500, 200)
    again = _money(rig, bar, "sale", a, 400, 300)
    more = _money(rig, bar, "sale", a, 50, 400)  # still in the same episode: no new conflict
    assert (await rig.push(bar, [refund, again, more])).status_code == 200
    assert await _overdrafts(rig, a) == [(first["event_id"], True), (again["event_id"], True)]
    assert await _account(rig, a) == (-150, 150, True, True)


async def test_late_sales_on_a_rich_account_stay_clean_and_sum_up(rig: Rig) -> None:
    bar1, bar2 = await rig.enrol("bar"), await rig.enrol("bar")
    a = rig.fest.account_ids[0]
    late = [_money(rig, bar2, "sale", a, 100, 10 * i + 5) for i in range(3)]
    assert (await rig.push(bar1, [_money(rig, bar1, "sale", a, 100, 50)])).status_code == 200
    assert (await rig.push(bar2, late)).status_code == 200  # each sorts before the stored one
    assert await _overdrafts(rig, a) == []
    assert await _account(rig, a) == (600, 0, False, False)
    ledger = await rig.client.get(
        f"/v1/ops/festivals/{rig.fest.festival_id}/accounts/{a}/ledger",
        headers=await rig.ops("CASHIER"),
    )
    entries = ledger.json()["ledger"]
    # Replay order (HLC), whatever the arrival: opening, the three late sales, then bar1's.
    assert [e["balance_after"] for e in entries] == [1000, 900, 800, 700, 600]
    assert [e["type"] for e in entries] == ["TOPUP"] + ["PAYMENT"] * 4
    assert entries[-1]["event_id"] is not None and entries[0]["event_id"] is None


async def test_a_second_gate_admitting_the_ticket_makes_it_a_candidate(rig: Rig) -> None:
    g1, g2 = await rig.enrol("gate"), await rig.enrol("gate")
    t = rig.fest.tickets[0].ticket_id
    assert (await rig.push(g1, [rig.entry(g1, t, at_ms=100)])).status_code == 200
    multi = "SELECT multi FROM ticket_presence WHERE ticket_id = %s"
    assert await rig.scalar(multi, t) is False
    # Same device again: still one device, no duplicate possible.
    assert (await rig.push(g1, [rig.exit(g1, t, at_ms=200)])).status_code == 200
    assert await rig.scalar(multi, t) is False
    late = rig.entry(g2, t, at_ms=150)  # inside between g1's entry and exit: a duplicate
    assert (await rig.push(g2, [late])).status_code == 200
    assert await rig.scalar(multi, t) is True
    kind = await rig.scalar("SELECT kind FROM conflict WHERE subject_id = %s", t)
    assert kind == "duplicate_entry"
    assert await rig.scalar("SELECT suspicious FROM ticket WHERE id = %s", t) is True
    assert await rig.scalar("SELECT inside FROM ticket_presence WHERE ticket_id = %s", t) is False


async def test_ops_views_read_the_facts(rig: Rig) -> None:
    gate, bar = await rig.enrol("gate"), await rig.enrol("bar")
    t = rig.fest.tickets[0].ticket_id
    scans = [rig.entry(gate, t, at_ms=100), rig.exit(gate, t, at_ms=200)]
    scans.append(rig.entry(gate, t, verdict="already_inside", at_ms=250))  # refused: no effect
    assert (await rig.push(gate, scans)).status_code == 200
    a = rig.fest.account_ids[1]
    assert (await rig.push(bar, [_money(rig, bar, "sale", a, 250, 300)])).status_code == 200
    fid = rig.fest.festival_id
    history = (
        await rig.client.get(
            f"/v1/ops/festivals/{fid}/tickets/{t}", headers=await rig.ops("SECURITY")
        )
    ).json()
    assert [x["action"] for x in history["access_log"]] == ["ENTRY", "EXIT"]
    assert len(history["events"]) == 3 and history["ticket"]["used_at"] is not None
    sales = (
        await rig.client.get(f"/v1/ops/festivals/{fid}/sales", headers=await rig.ops("CASHIER"))
    ).json()
    assert [(s["sales"], s["amount"]) for s in sales] == [(1, 250)]
    entries = (
        await rig.client.get(f"/v1/ops/festivals/{fid}/entries", headers=await rig.ops("STAFF"))
    ).json()
    assert sum(e["entries"] for e in entries) == 1 and sum(e["exits"] for e in entries) == 1
