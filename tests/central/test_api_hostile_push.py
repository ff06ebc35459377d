"""Hostile pushes (issue 14): never a 500, so never a device queue blocked on "retry later".

A push outside the wire model's bounds is malformed: 422, and nothing of it is stored. A
well-formed event that PostgreSQL cannot store as sent is stored as rejected with its
reason and acknowledged, and the events after it in the batch still take effect.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sync import hlc
from sync.hlc import MAX_WALL_MS
from sync.protocol import MAX_BIGINT
from tests.central.sync_helpers import Dev, Rig, expect_error


async def _count(rig: Rig) -> int:
    return int(await rig.scalar("SELECT count(*) FROM device_event"))


async def _stored(rig: Rig, dev: Dev, seq: int) -> tuple[Any, ...]:
    """Status, reason, verdict and payload of one stored event."""
    async with rig.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, reason, verdict, payload FROM device_event"
            " WHERE device_id = %s AND device_seq = %s",
            (dev.device_id, seq),
        )
        rec = await cur.fetchone()
    assert rec is not None, f"seq {seq} not stored"
    return tuple(rec)


# Each breaks one bound of `sync.protocol.Event`; on main each answered 500.
OUT_OF_BOUNDS = {
    "event_id of hyphens (the old pattern's)": {"event_id": "-" * 36},
    "event_id of 36 hex digits": {"event_id": "0" * 36},
    "device_seq 2**63": {"device_seq": 2**63},
    "hlc 2**63": {"hlc": 2**63},
    "catalog_seq 2**63": {"catalog_seq": 2**63},
    "wall_ms -2**63": {"wall_ms": -(2**63)},
    "wall_ms 10**20": {"wall_ms": 10**20},
}


@pytest.mark.parametrize("change", OUT_OF_BOUNDS.values(), ids=OUT_OF_BOUNDS.keys())
async def test_a_push_out_of_the_wire_bounds_is_a_422(rig: Rig, change: dict[str, Any]) -> None:
    gate = await rig.enrol("gate")
    t = rig.fest.tickets[0].ticket_id
    good = rig.entry(gate, t, seq=1)
    bad = rig.entry(gate, t, seq=2) | change
    resp = await rig.push(gate, [good, bad])
    expect_error(resp, 422, "invalid_request")
    assert f"events.1.{next(iter(change))}" in resp.json()["detail"]
    assert await _count(rig) == 0  # malformed: the whole batch is refused
    assert (await rig.push(gate, [good])).json()["acked_through"] == 1


async def test_the_bounds_themselves_are_stored(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    t = rig.fest.tickets[0].ticket_id
    top = hlc.pack(MAX_WALL_MS, 0xFFFF)
    assert top == MAX_BIGINT
    first = rig.entry(gate, t, seq=1, wall_ms=0)
    last = rig.exit(gate, t, seq=MAX_BIGINT, wall_ms=MAX_WALL_MS) | {
        "hlc": top,
        "catalog_seq": MAX_BIGINT,
    }
    resp = await rig.push(gate, [first, last])
    assert resp.status_code == 200, resp.text
    assert resp.json()["acked_through"] == 1  # the gap below MAX_BIGINT is held open
    assert await _count(rig) == 2


async def test_unstorable_payloads_and_verdicts_are_rejected_and_acked(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    t = rig.fest.tickets
    bad = [
        rig.entry(gate, t[0].ticket_id) | {"payload": {"ticket_id": "a\x00b"}},
        rig.entry(gate, t[0].ticket_id) | {"payload": {"ticket\x00id": str(t[0].ticket_id)}},
        rig.event(gate, "log", "info", {"message": "deep", "more": [{"x": ["\x00"]}]}),
        rig.entry(gate, t[0].ticket_id, verdict="ok\x00"),
        rig.event(gate, "log", "in\x00fo", {"message": "nul verdict"}),
    ]
    after = rig.entry(gate, t[1].ticket_id)  # the next event in the same batch
    resp = await rig.push(gate, [*bad, after])
    assert resp.status_code == 200, resp.text
    assert resp.json()["acked_through"] == len(bad) + 1
    for seq in (1, 2, 3):
        status, reason, _, payload = await _stored(rig, gate, seq)
        assert (status, reason) == ("rejected", "bad_payload")
        assert set(payload) == {"dropped_bytes"}  # the fact kept, the body not
    for seq, stored_verdict in ((4, "ok\ufffd"), (5, "in\ufffdfo")):
        status, reason, verdict, _ = await _stored(rig, gate, seq)
        assert (status, reason, verdict) == ("rejected", "verdict_not_allowed", stored_verdict)
    assert (await _stored(rig, gate, 6))[:2] == ("applied", None)


async def test_numbers_beyond_a_float_are_rejected_and_acked(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    for seq, number in ((1, "1e400"), (2, "NaN"), (3, "-Infinity")):
        push = json.dumps({"events": [rig.event(gate, "log", "info", {"message": "x"})]})
        body = push.replace('"x"', number)  # json.dumps would write 1e400 as Infinity
        resp = await rig.client.post("/v1/sync/events", content=body, headers=gate.headers)
        assert resp.status_code == 200, resp.text
        assert resp.json()["acked_through"] == seq
        assert (await _stored(rig, gate, seq))[:2] == ("rejected", "bad_payload")


async def test_a_payload_that_only_spells_a_nul_is_kept(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    words = {"message": "\\u0000 NaN Infinity", "k\\u0000": 1}  # backslashes, not NULs
    resp = await rig.push(gate, [rig.event(gate, "log", "info", words)])
    assert resp.status_code == 200, resp.text
    assert await _stored(rig, gate, 1) == ("applied", None, "info", words)


async def test_a_taken_event_id_with_a_nul_payload_is_still_stored(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    first = rig.event(gate, "log", "info", {"message": "first"})
    assert (await rig.push(gate, [first])).status_code == 200
    again = rig.event(gate, "log", "info", {"message": "a\x00b"}) | {"event_id": first["event_id"]}
    resp = await rig.push(gate, [again])
    assert resp.status_code == 200, resp.text
    assert resp.json()["acked_through"] == 2
    status, reason, _, payload = await _stored(rig, gate, 2)
    assert (status, reason) == ("rejected", "duplicate_event_id")
    assert set(payload) == {"dropped_bytes"}
