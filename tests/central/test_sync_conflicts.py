"""Conflicts end to end: found at ingest, both facts kept, outcomes pushed down the feed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from central import feed
from central.sample import SampleFestival
from config.central import CentralConfig
from sync.catalog import TABLES
from tests.central.sync_helpers import Rig, open_rig


@pytest.fixture
def rig_festival() -> dict[str, Any]:
    return {"signed_tickets": 3, "wristbands": 2, "opening_balance": 1000}


async def _conflicts(rig: Rig, **params: Any) -> list[dict[str, Any]]:
    resp = await rig.client.get(
        f"/v1/ops/festivals/{rig.fest.festival_id}/conflicts",
        params=params,
        headers=await rig.ops("SECURITY"),
    )
    assert resp.status_code == 200, resp.text
    result: list[dict[str, Any]] = resp.json()
    return result


async def _last_row(rig: Rig, table: str, key: str) -> dict[str, Any]:
    async with rig.pool.connection() as conn:
        changes = await feed.read_after(conn, rig.fest.festival_id, 0, 100_000)
    for c in changes:  # every row ingest publishes is a valid replicated row
        TABLES[c.table].model_validate(c.row)
    rows = [c.row for c in changes if c.table == table and feed.row_key(table, c.row) == key]
    assert rows, f"no {table} {key} in the feed"
    return rows[-1]


async def test_duplicate_entry_flags_the_later_and_marks_the_ticket(rig: Rig) -> None:
    g1, g2 = await rig.enrol("gate"), await rig.enrol("gate")
    t = rig.fest.tickets[0].ticket_id
    late = rig.entry(g2, t, at_ms=2000)
    early = rig.entry(g1, t, at_ms=1000)
    assert (await rig.push(g2, [late])).status_code == 200
    assert await _conflicts(rig) == []
    assert (await rig.push(g1, [early])).status_code == 200
    (c,) = await _conflicts(rig)
    assert c["kind"] == "duplicate_entry"
    assert c["event_ids"] == [early["event_id"], late["event_id"]]
    assert c["facts"]["stands"]["device_id"] == g1.device_id
    assert c["facts"]["flagged"]["device_id"] == g2.device_id
    assert (await _last_row(rig, "ticket", str(t)))["suspicious"] is True
    assert await rig.scalar("SELECT occupancy FROM zone") == 1  # one person, counted once
    # Ops resolve it: the conflict stays visible as resolved and the ticket is cleared.
    fid = rig.fest.festival_id
    resp = await rig.client.post(
        f"/v1/ops/festivals/{fid}/conflicts/{c['id']}/resolve",
        json={"note": "two gates, same person, checked CCTV"},
        headers=await rig.ops("SECURITY"),
    )
    assert resp.status_code == 200
    assert resp.json()["resolution_note"].startswith("two gates")
    assert await _conflicts(rig) == []
    assert len(await _conflicts(rig, open_only=False)) == 1
    assert (await _last_row(rig, "ticket", str(t)))["suspicious"] is False


async def test_an_exit_arriving_late_withdraws_a_duplicate(rig: Rig) -> None:
    g1, g2 = await rig.enrol("gate"), await rig.enrol("gate")
    t = rig.fest.tickets[1].ticket_id
    await rig.push(g1, [rig.entry(g1, t, at_ms=1000)])
    await rig.push(g2, [rig.entry(g2, t, at_ms=3000, verdict="ok_reentry")])
    assert [c["kind"] for c in await _conflicts(rig)] == ["duplicate_entry"]
    await rig.push(g1, [rig.exit(g1, t, at_ms=2000)])
    assert await _conflicts(rig, open_only=False) == []
    assert (await _last_row(rig, "ticket", str(t)))["suspicious"] is False
    assert (await _last_row(rig, "presence", f"{t}:{rig.fest.zone_id}"))["inside"] is True


async def test_overdraft_blocks_until_an_ops_topup_clears_the_debt(rig: Rig) -> None:
    b1, b2 = await rig.enrol("bar"), await rig.enrol("bar")
    a = rig.fest.account_ids[0]
    s1 = rig.sale(b1, a, 700, at_ms=1000)
    s2 = rig.sale(b2, a, 600, at_ms=2000)
    await rig.push(b2, [s2])
    await rig.push(b1, [s1])
    (c,) = await _conflicts(rig)
    assert c["kind"] == "overdraft"
    assert c["facts"]["crossing"]["event_id"] == s2["event_id"]
    assert [p["event_id"] for p in c["facts"]["prior"]] == [s1["event_id"]]
    assert await rig.scalar("SELECT debt FROM cashless_account WHERE id = %s", a) == 300
    row = await _last_row(rig, "account", str(a))
    assert (row["balance"], row["blocked"]) == (-300, True)
    fid = rig.fest.festival_id
    part = await rig.client.post(
        f"/v1/ops/festivals/{fid}/accounts/{a}/topup", json={"amount": 100},
        headers=await rig.ops("CASHIER"),
    )  # fmt: skip
    assert part.status_code == 200, part.text
    assert (part.json()["debt"], part.json()["blocked"]) == (200, True)
    full = await rig.client.post(
        f"/v1/ops/festivals/{fid}/accounts/{a}/topup", json={"amount": 500},
        headers=await rig.ops("CASHIER"),
    )  # fmt: skip
    assert (full.json()["balance"], full.json()["debt"], full.json()["blocked"]) == (300, 0, False)
    assert (await _last_row(rig, "account", str(a)))["blocked"] is False
    ledger = await rig.client.get(
        f"/v1/ops/festivals/{fid}/accounts/{a}/ledger", headers=await rig.ops("CASHIER")
    )
    entries = ledger.json()["ledger"]
    assert sum(e["amount"] for e in entries) == 300
    assert all(e["balance_after"] == e["balance_before"] + e["amount"] for e in entries)


async def test_stale_catalog_versus_policy_violation(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    t1, t2 = rig.fest.tickets[0].ticket_id, rig.fest.tickets[1].ticket_id
    fid = rig.fest.festival_id
    cancel_seqs = []
    for t in (t1, t2):
        resp = await rig.client.post(
            f"/v1/ops/festivals/{fid}/tickets/{t}/cancel", headers=await rig.ops("ORGANIZER")
        )
        assert resp.status_code == 200, resp.text
        cancel_seqs.append(resp.json()["seq"])
    events = [
        rig.entry(gate, t1, at_ms=5000, catalog_seq=cancel_seqs[0] - 1),  # had not seen it
        rig.entry(gate, t2, at_ms=5000, catalog_seq=cancel_seqs[1]),  # had seen it
    ]
    assert (await rig.push(gate, events)).status_code == 200
    found = {c["kind"]: c for c in await _conflicts(rig)}
    assert set(found) == {"stale_catalog", "policy_violation"}
    stale = found["stale_catalog"]
    assert stale["subject_id"] == str(t1)
    assert stale["facts"]["catalog"]["seq"] == cancel_seqs[0]
    assert stale["facts"]["event"]["event_id"] == events[0]["event_id"]
    assert found["policy_violation"]["detail"] == {"device_had_seen_change": True}


async def test_clock_skew_flags_the_device_once(
    pg_pool: AsyncConnectionPool, festival: Callable[..., Awaitable[SampleFestival]]
) -> None:
    settings = CentralConfig(clock_skew_bound_ms=5000)
    async with open_rig(pg_pool, festival, settings=settings) as rig:
        gate = await rig.enrol("gate")
        ahead = rig.now_ms + 600_000
        batch = [
            rig.event(gate, "log", "info", {"message": str(i)}, wall_ms=ahead) for i in range(3)
        ]
        await rig.push(gate, batch[:2])
        await rig.push(gate, batch[2:])
        (c,) = await _conflicts(rig)
        assert c["kind"] == "clock_skew"
        assert c["subject_id"] == gate.device_id
        assert c["facts"]["device"]["event_id"] == batch[0]["event_id"]
        assert c["detail"]["skewed_events"] == 3
        assert c["detail"]["skew_ms"] > 500_000
        fid = rig.fest.festival_id
        devices = await rig.client.get(
            f"/v1/ops/festivals/{fid}/devices", headers=await rig.ops("STAFF")
        )
        assert devices.json()[0]["clock_offset_ms"] > 500_000
        await rig.client.post(
            f"/v1/ops/festivals/{fid}/conflicts/{c['id']}/resolve", json={"note": "ntp fixed"},
            headers=await rig.ops("SECURITY"),
        )  # fmt: skip
        await rig.push(gate, [rig.event(gate, "log", "info", {"message": "ok"})])
        assert await _conflicts(rig) == []
        await rig.push(gate, [rig.event(gate, "log", "info", wall_ms=ahead)])
        assert [c["kind"] for c in await _conflicts(rig)] == ["clock_skew"]
