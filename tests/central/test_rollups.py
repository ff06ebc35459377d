"""The running totals (`central.rollups`) kept at ingest are what the stored facts say:
after pushes of every shape (baskets, sales by amount, refunds in the same and a later
batch, a replayed batch, gates at several minutes, a payment central booked with a vendor)
they equal a rebuild from scratch; migration 0014 holds the rebuild as it generates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from central import rollups
from central.cashless import ledger_entry
from central.console.pages import now as now_page
from central.migrations.versions import __name__ as versions
from sync.vocab import TransactionType
from tests.central.sync_helpers import Dev, Rig

_TABLES = {
    "gate_by_minute": "device_id, minute, zone_id, festival_id, entries, exits",
    "sales_by_quarter": "vendor_id, quarter, product_id, festival_id, quantity, amount, "
    "sales, gross",
}


@pytest.fixture
def rig_festival() -> dict[str, Any]:
    """Four wristbands."""
    return {"wristbands": 4}


def test_migration_0014_holds_the_rebuild_as_generated() -> None:
    module = __import__(f"{versions}.0014_rollups", fromlist=["REBUILD"])
    assert module.REBUILD.strip() == rollups.REBUILD.strip()


async def _rows(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table, cols in _TABLES.items():
        cur = await conn.execute(f"SELECT {cols} FROM {table} ORDER BY 1, 2, 3")
        out[table] = await cur.fetchall()
    return out


def _basket(rig: Rig, *lines: tuple[uuid.UUID, int, int]) -> list[dict[str, Any]]:
    return [{"product_id": str(p), "qty": q, "price": c} for p, q, c in lines]


async def _bar_day(rig: Rig, bar: Dev) -> None:
    """Sales with baskets and without, refunds of a sale in the batch and of an older one."""
    product, price = rig.fest.product_id, rig.fest.product_price
    accounts = rig.fest.account_ids
    other = uuid.uuid4()  # a product central does not know: still the basket's line

    def sale(account: uuid.UUID, amount: int, items: Any, at_ms: int) -> dict[str, Any]:
        event = rig.sale(bar, account, amount, at_ms=at_ms)
        event["payload"]["items"] = items
        return event

    def refund(of: dict[str, Any], at_ms: int) -> dict[str, Any]:
        payload = {"account_id": of["payload"]["account_id"], "amount": of["payload"]["amount"],
                   "refund_of": of["event_id"]}  # fmt: skip
        return rig.event(bar, "refund", "approved", payload, at_ms=at_ms)

    hour = -3_600_000  # in the past: central caps an HLC ahead of its arrival
    first = sale(accounts[0], 2 * price + 150, _basket(rig, (product, 2, price)), hour)
    by_amount = sale(accounts[1], 700, None, hour + 1_000)
    odd = sale(accounts[2], 900, [{"qty": "x"}, *_basket(rig, (other, 3, 300))], hour // 2)
    batch1 = [first, by_amount, odd, refund(by_amount, hour + 2_000)]
    assert (await rig.push(bar, batch1)).status_code == 200
    assert (await rig.push(bar, batch1)).status_code == 200  # replayed: changes nothing
    later = refund(first, -1_000)
    assert (await rig.push(bar, [later])).status_code == 200


async def _gate_day(rig: Rig, gate: Dev) -> None:
    tickets = [t.ticket_id for t in rig.fest.tickets[:3]]
    # The start of a minute five minutes ago (central caps an HLC ahead of its arrival).
    m = -(rig.now_ms % 60_000) - 5 * 60_000
    scans = [
        rig.entry(gate, tickets[0], at_ms=m + 10),
        rig.exit(gate, tickets[0], at_ms=m + 60_000),
        rig.entry(gate, tickets[1], at_ms=m + 60_500),
        rig.entry(gate, tickets[2], "refused", at_ms=m + 61_000),
        rig.entry(gate, tickets[0], "ok_reentry", at_ms=m + 180_000),
    ]
    assert (await rig.push(gate, scans)).status_code == 200


async def test_running_totals_equal_a_rebuild_from_the_stored_facts(rig: Rig) -> None:
    gate, bar = await rig.enrol("gate", "north-1"), await rig.enrol("bar", "bar-1")
    await _gate_day(rig, gate)
    await _bar_day(rig, bar)
    async with rig.pool.connection() as conn, conn.transaction():
        await ledger_entry(conn, rig.fest.account_ids[3], -250, TransactionType.PAYMENT,
                           vendor_id=rig.fest.vendor_id)  # fmt: skip
    async with rig.pool.connection() as conn:
        kept = await _rows(conn)
        async with conn.transaction(force_rollback=True):
            await conn.execute("TRUNCATE gate_by_minute, sales_by_quarter")
            await conn.execute(rollups.REBUILD)
            rebuilt = await _rows(conn)
    assert kept == rebuilt
    # And they say what happened: at one gate, an entry, a minute of an exit and an entry,
    # two quiet minutes, a re-entry (the refused entry is no entry);
    gates = kept["gate_by_minute"]
    assert [(r[4], r[5]) for r in gates] == [(1, 0), (1, 1), (1, 0)]
    # 3 sales and a payment at the vendor (gross 2 x price + 150 + 700 + 900 + 250); net:
    sales = {(r[2], r[1]): r[4:] for r in kept["sales_by_quarter"]}
    price = rig.fest.product_price
    assert sum(v[2] for v in sales.values()) == 4
    assert sum(v[3] for v in sales.values()) == 2 * price + 150 + 700 + 900 + 250
    # the first sale's 2 products, taken back by the later refund: 0 net over the day
    assert sum(v[0] for (p, _), v in sales.items() if p == rig.fest.product_id) == 0
    # net amount: the odd sale (900) and the payment (250), all else refunded
    assert sum(v[1] for v in sales.values()) == 900 + 250


async def test_nows_chart_reads_each_gates_minutes_zero_filled(rig: Rig) -> None:
    gate = await rig.enrol("gate", "north-1")
    await _gate_day(rig, gate)
    now = datetime.fromtimestamp(rig.now_ms / 1000, UTC)
    async with rig.pool.connection() as conn:
        chart, totals = await now_page.gate_chart(conn, rig.fest.festival_id, now, "UTC")
    assert len(chart["x"]) == 181 and chart["x"][-1] == rig.now_ms // 60_000 * 60
    (series,) = chart["gates"]
    # Five minutes before now's minute: an entry; then an exit and an entry; then a re-entry.
    entries, exits = [0] * 181, [0] * 181
    entries[175] = entries[176] = entries[178] = exits[176] = 1
    assert (series["label"], series["entries"], series["exits"]) == ("north-1", entries, exits)
    assert [(t.gate, t.zone, t.entries, t.exits) for t in totals] == [
        ("north-1", "Main gate", 3, 1)
    ]
