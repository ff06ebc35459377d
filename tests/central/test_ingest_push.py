"""Pushing events: stored once, applied once, acked through the highest contiguous seq."""

from __future__ import annotations

from typing import Any

import pytest

from tests.central.sync_helpers import Rig


@pytest.fixture
def rig_festival() -> dict[str, Any]:
    return {"signed_tickets": 4, "wristbands": 2}


async def test_push_stores_applies_and_acks(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    t = rig.fest.tickets[0].ticket_id
    events = [rig.entry(gate, t, at_ms=10), rig.exit(gate, t, at_ms=20)]
    resp = await rig.push(gate, events)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["acked_through"] == 2
    assert body["head_seq"] > 0
    assert await rig.scalar("SELECT count(*) FROM device_event WHERE status = 'applied'") == 2
    assert await rig.scalar("SELECT count(*) FROM zone_access_log WHERE ticket_id = %s", t) == 2
    assert await rig.scalar("SELECT inside FROM ticket_presence WHERE ticket_id = %s", t) is False
    assert await rig.scalar("SELECT occupancy FROM zone WHERE id = %s", rig.fest.zone_id) == 0


async def _state(rig: Rig) -> tuple[object, ...]:
    """Everything a push may change, to compare before/after a replay."""
    q = [
        "SELECT count(*) FROM device_event",
        "SELECT count(*) FROM zone_access_log",
        "SELECT count(*) FROM cashless_ledger",
        "SELECT count(*) FROM conflict",
        "SELECT coalesce(sum(balance), 0) FROM cashless_account",
        "SELECT coalesce(max(head), 0) FROM feed_head",
        "SELECT coalesce(sum(occupancy), 0) FROM zone",
    ]
    return tuple([await rig.scalar(x) for x in q])


async def test_a_replayed_batch_changes_nothing(rig: Rig) -> None:
    gate, bar = await rig.enrol("gate"), await rig.enrol("bar")
    t = rig.fest.tickets[0].ticket_id
    a = rig.fest.account_ids[0]
    gate_events = [rig.entry(gate, t, at_ms=10)]
    bar_events = [rig.sale(bar, a, 450, at_ms=20), rig.sale(bar, a, 450, at_ms=30)]
    assert (await rig.push(gate, gate_events)).json()["acked_through"] == 1
    assert (await rig.push(bar, bar_events)).json()["acked_through"] == 2
    before = await _state(rig)
    for _ in range(2):
        assert (await rig.push(gate, gate_events)).json()["acked_through"] == 1
        assert (await rig.push(bar, bar_events[1:])).json()["acked_through"] == 2
    assert await _state(rig) == before
    balance = rig.fest.opening_balance - 900
    assert await rig.scalar("SELECT balance FROM cashless_account WHERE id = %s", a) == balance
    ledger = await rig.scalar(
        "SELECT array_agg(ARRAY[balance_before, balance_after] ORDER BY ord_hlc)"
        " FROM cashless_ledger WHERE account_id = %s AND event_id IS NOT NULL",
        a,
    )
    start = rig.fest.opening_balance
    assert ledger == [[start, start - 450], [start - 450, start - 900]]


async def test_out_of_order_batches_gap_then_fill(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    tickets = [t.ticket_id for t in rig.fest.tickets]
    events = [rig.entry(gate, tickets[i], at_ms=10 * i) for i in range(4)]
    resp = await rig.push(gate, events[2:])
    assert resp.json()["acked_through"] == 0
    gap = await rig.scalar(
        "SELECT facts FROM conflict WHERE kind = 'sequence_gap' AND resolved_at IS NULL"
    )
    assert gap == {"missing_from": 1, "missing_to": 2, "next_held": 3}
    resp = await rig.push(gate, events[:2])
    assert resp.json()["acked_through"] == 4
    assert (
        await rig.scalar(
            "SELECT count(*) FROM conflict WHERE kind = 'sequence_gap' AND resolved_at IS NULL"
        )
        == 0
    )
    assert (
        await rig.scalar("SELECT resolved_by FROM conflict WHERE kind = 'sequence_gap'") == "system"
    )
    assert await rig.scalar("SELECT occupancy FROM zone WHERE id = %s", rig.fest.zone_id) == 4


async def test_a_bad_event_is_stored_rejected_and_never_blocks_the_queue(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    t = rig.fest.tickets[0].ticket_id
    events = [
        rig.event(gate, "entry", "approved", {"ticket_id": str(t)}),  # a bar verdict at a gate
        rig.event(gate, "sale", "approved", {"amount": 5}),  # a gate does not sell
        rig.event(gate, "entry", "ok", {"ticket_id": "00000000-0000-0000-0000-000000000001"}),
        rig.event(gate, "entry", "ok", {"ticket_id": 12}),
        rig.event(gate, "log", "info", {"message": "x" * 9000}),
        rig.entry(gate, t, at_ms=50),
    ]
    resp = await rig.push(gate, events)
    assert resp.status_code == 200
    assert resp.json()["acked_through"] == 6
    async with rig.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT device_seq, status, reason FROM device_event ORDER BY device_seq"
        )
        rows = await cur.fetchall()
    assert rows == [
        (1, "rejected", "verdict_not_allowed"),
        (2, "rejected", "kind_not_allowed"),
        (3, "rejected", "unknown_ticket"),
        (4, "rejected", "bad_payload"),
        (5, "rejected", "payload_too_large"),
        (6, "applied", None),
    ]
    assert await rig.scalar("SELECT count(*) FROM zone_access_log") == 1


async def test_a_reused_event_id_is_kept_rejected_under_a_derived_id(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    first = rig.entry(gate, rig.fest.tickets[0].ticket_id)
    again = rig.entry(gate, rig.fest.tickets[1].ticket_id) | {"event_id": first["event_id"]}
    assert (await rig.push(gate, [first, again])).json()["acked_through"] == 2
    reason, payload = (
        await rig.scalar("SELECT reason FROM device_event WHERE device_seq = 2"),
        await rig.scalar("SELECT payload FROM device_event WHERE device_seq = 2"),
    )
    assert reason == "duplicate_event_id"
    assert payload["duplicate_event_id"] == first["event_id"]


async def test_log_lines_and_pending_count_reach_ops(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    lines = [rig.event(gate, "log", "warning", {"message": "camera slow"})]
    resp = await rig.client.post(
        "/v1/sync/events",
        json={"events": lines},
        headers={**gate.headers, "Festgate-Pending": "7"},
    )
    assert resp.status_code == 200
    fid = rig.fest.festival_id
    log = await rig.client.get(
        f"/v1/ops/festivals/{fid}/devices/{gate.device_id}/log", headers=await rig.ops("STAFF")
    )
    assert log.status_code == 200
    assert [(x["level"], x["message"]) for x in log.json()] == [("warning", "camera slow")]
    devices = await rig.client.get(
        f"/v1/ops/festivals/{fid}/devices", headers=await rig.ops("STAFF")
    )
    (dev,) = devices.json()
    assert dev["pending_events"] == 6  # it held 7 before the push, which central now holds
    assert dev["acked_through"] == 1
    assert dev["revoked_at"] is None


async def test_a_seq_repeated_within_a_batch_counts_once(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    first = rig.entry(gate, rig.fest.tickets[0].ticket_id, seq=1)
    clash = rig.entry(gate, rig.fest.tickets[1].ticket_id, seq=1)
    assert (await rig.push(gate, [first, clash])).json()["acked_through"] == 1
    assert await rig.scalar("SELECT event_id::text FROM device_event") == first["event_id"]
    assert await rig.scalar("SELECT count(*) FROM zone_access_log") == 1
