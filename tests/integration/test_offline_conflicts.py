"""Devices decide offline, reconnect, and central surfaces every conflict with both facts."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from central import cashless, tickets
from central.sample import SampleFestival
from edge.cli_sync import enrol_device
from tests.integration.conftest import CentralServer, Node, enrol_code, new_dir, open_node


async def _node(
    central: CentralServer, dsn: str, fest: SampleFestival, role: str, tmp: Path, **kw: Any
) -> Node:
    data = new_dir(tmp)
    await enrol_device(central.url, await enrol_code(dsn, fest, role), name=role, data_dir=data)
    node = await open_node(data)
    if "clock" in kw:
        node.device.time.wall = kw["clock"]  # the engine reads the device's wall clock
    return node


async def _conflicts(dsn: str, kind: str) -> list[dict[str, Any]]:
    async with await AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        cur = await conn.execute(
            "SELECT kind, subject_id, event_ids, facts FROM conflict"
            " WHERE kind = %s AND resolved_at IS NULL ORDER BY id",
            (kind,),
        )
        return await cur.fetchall()


async def test_two_offline_gates_admit_one_ticket(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    a = await _node(central, pg_dsn, fest, "gate", tmp_path)
    b = await _node(central, pg_dsn, fest, "gate", tmp_path)
    nodes += [a, b]
    code = fest.tickets[0].code
    first = await a.device.scan(code)  # both offline: neither knows of the other
    time.sleep(0.005)  # noqa: ASYNC251 - a later wall clock for the second admission
    second = await b.device.scan(code)
    assert (first.verdict.code, second.verdict.code) == ("ok", "ok")
    await b.engine.sync_round()  # the later admission reaches central first
    await a.engine.sync_round()
    found = await _conflicts(pg_dsn, "duplicate_entry")
    assert len(found) == 1
    conflict = found[0]
    assert conflict["subject_id"] == fest.tickets[0].ticket_id
    assert set(map(str, conflict["event_ids"])) == {first.event.event_id, second.event.event_id}
    assert str(conflict["event_ids"][-1]) == second.event.event_id  # the later one is flagged
    for node in (a, b):
        await node.engine.sync_round()
        assert (await node.device.scan(code)).verdict.code == "already_inside"


async def test_two_offline_bars_overspend_one_wristband(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    uid = "04c0ffee" + uuid.uuid4().hex[:6]
    async with await AsyncConnection.connect(pg_dsn) as conn:
        await cashless.create_account(
            conn, fest.festival_id, tag_uid=uid, opening_balance=1000, actor="ops"
        )
        await conn.commit()
    bar1 = await _node(central, pg_dsn, fest, "bar", tmp_path)
    bar2 = await _node(central, pg_dsn, fest, "bar", tmp_path)
    nodes += [bar1, bar2]
    # Offline, each bar sees 10.00 and spends 9.00 within the offline allowance.
    assert (await bar1.device.charge(uid, amount=900)).verdict.code == "approved"
    assert (await bar2.device.charge(uid, amount=900)).verdict.code == "approved"
    await bar1.engine.sync_round()
    await bar2.engine.sync_round()
    found = await _conflicts(pg_dsn, "overdraft")
    assert len(found) == 1 and len(found[0]["event_ids"]) >= 2
    async with await AsyncConnection.connect(pg_dsn) as conn:
        cur = await conn.execute(
            "SELECT balance, blocked FROM cashless_account WHERE tag_hash = %s",
            (bytes.fromhex(_tag_hash(fest, uid)),),
        )
        assert await cur.fetchone() == (-800, True)
        account_id = found[0]["subject_id"]
        assert await cashless.balance_from_ledger(conn, account_id) == -800
    for bar in (bar1, bar2):
        await bar.engine.sync_round()
        assert (await bar.device.charge(uid, amount=100)).verdict.code == "tag_blocked"


async def test_gate_offline_admits_a_ticket_cancelled_meanwhile(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    gate = await _node(central, pg_dsn, fest, "gate", tmp_path)
    nodes.append(gate)
    async with await AsyncConnection.connect(pg_dsn) as conn:
        await tickets.cancel_ticket(conn, fest.tickets[1].ticket_id, actor="ops")
        await conn.commit()
    admitted = await gate.device.scan(fest.tickets[1].code)  # it has not heard yet
    assert admitted.verdict.code == "ok"
    await gate.engine.sync_round()
    found = await _conflicts(pg_dsn, "stale_catalog")
    assert [str(e) for f in found for e in f["event_ids"]] == [admitted.event.event_id]
    assert (await gate.device.scan(fest.tickets[2].code)).verdict.code == "ok"
    assert await _conflicts(pg_dsn, "policy_violation") == []


@pytest.mark.parametrize("offset_s", [600, -600])
async def test_a_device_clock_ten_minutes_off_is_flagged(
    central: CentralServer,
    pg_dsn: str,
    fest: SampleFestival,
    tmp_path: Path,
    nodes: list[Node],
    offset_s: int,
) -> None:
    def skewed() -> int:
        return time.time_ns() // 1_000_000 + offset_s * 1000

    gate = await _node(central, pg_dsn, fest, "gate", tmp_path, clock=skewed)
    nodes.append(gate)
    results = [await gate.device.scan(t.code) for t in fest.tickets[:3]]
    await gate.engine.sync_round()
    found = await _conflicts(pg_dsn, "clock_skew")
    assert [f["subject_id"] for f in found] == [uuid.UUID(gate.creds.device_id)]
    assert gate.engine.status.clock_offset_ms is not None
    assert abs(gate.engine.status.clock_offset_ms + offset_s * 1000) < 5000
    async with await AsyncConnection.connect(pg_dsn) as conn:
        cur = await conn.execute(
            "SELECT device_seq, hlc FROM device_event WHERE device_id = %s ORDER BY hlc",
            (uuid.UUID(gate.creds.device_id),),
        )
        rows = await cur.fetchall()
    assert [r[0] for r in rows] == [r.event.device_seq for r in results]  # HLC order = seq order
    later = await gate.device.scan(fest.tickets[0].code, exit=True)
    assert later.event.hlc > max(r[1] for r in rows)


def _tag_hash(fest: SampleFestival, uid: str) -> str:
    from sync.hashing import tag_hash

    return tag_hash(fest.hash_key, uid).hex()
