"""Issue 3: set-based ingest keeps its guarantees (one feed row per subject, final state)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from central import feed
from sync.catalog import PresenceRow, ZoneRow

from .sync_helpers import Rig


@pytest.fixture
def rig_festival() -> dict[str, Any]:
    return {"signed_tickets": 4, "wristbands": 2}


async def _changes(rig: Rig, table: str, key: str) -> list[dict[str, Any]]:
    async with rig.pool.connection() as conn:
        changes = await feed.read_after(conn, rig.fest.festival_id, 0, 10_000)
    return [c.row for c in changes if c.table == table and feed.row_key(table, c.row) == key]


async def test_one_presence_and_account_change_per_subject_per_batch(rig: Rig) -> None:
    gate, bar = await rig.enrol("gate"), await rig.enrol("bar")
    t = rig.fest.tickets[0].ticket_id
    scans = [rig.entry(gate, t, at_ms=10), rig.exit(gate, t, at_ms=20)]
    scans.append(rig.entry(gate, t, verdict="ok_reentry", at_ms=30))
    assert (await rig.push(gate, scans)).status_code == 200
    account = str(rig.fest.account_ids[0])
    sales = [rig.sale(bar, rig.fest.account_ids[0], 100, at_ms=40 + i) for i in range(3)]
    assert (await rig.push(bar, sales)).status_code == 200

    presence = await _changes(rig, "presence", f"{t}:{rig.fest.zone_id}")
    assert len(presence) == 1  # three scans, one change: the final state
    assert presence[0]["inside"] is True
    assert presence[0]["hlc"] == scans[-1]["hlc"]
    balance = await rig.scalar("SELECT balance FROM cashless_account WHERE id = %s", account)
    accounts = await _changes(rig, "account", account)
    assert accounts[-1]["balance"] == balance  # what a device applies last is the ledger's
    assert len([r for r in accounts if r["seq"] > presence[0]["seq"]]) == 1  # once per batch
    # The ledger still has one entry per sale with its balance before and after.
    assert await rig.scalar(
        "SELECT count(*) FROM cashless_ledger WHERE account_id = %s AND event_id IS NOT NULL",
        account,
    ) == 3  # fmt: skip


async def test_publish_rows_takes_models_and_mappings_in_one_statement(rig: Rig) -> None:
    fid = rig.fest.festival_id
    zone = ZoneRow(id=str(uuid.uuid4()), festival_id=str(fid), name="extra")
    t = str(rig.fest.tickets[0].ticket_id)
    inside = PresenceRow(ticket_id=t, zone_id=zone.id, inside=True, hlc=5)
    outside = inside.model_dump(mode="json") | {"inside": False, "hlc": 6}
    async with rig.pool.connection() as conn:
        head = await feed.head(conn, fid)
        assert await feed.publish_rows(conn, fid, "zone", [zone]) == [head + 1]
        seqs = await feed.publish_rows(conn, fid, "presence", [inside, outside])
        assert seqs == [head + 2, head + 3]
        with pytest.raises(ValueError, match="key field"):
            await feed.publish_rows(conn, fid, "presence", [{"ticket_id": t}])
        with pytest.raises(ValueError, match="not a replicated table"):
            await feed.publish_rows(conn, fid, "device_event", [{"id": "x"}])
        await conn.commit()
        renamed = zone.model_dump(mode="json") | {"name": "renamed"}
        assert await feed.publish_rows(conn, fid, "zone", [zone, renamed]) == [head + 4, head + 5]
        await conn.commit()
        cur = await conn.execute(
            "SELECT seq, row FROM replica_row WHERE festival_id = %s AND table_name = 'zone'"
            " AND key = %s",
            (fid, zone.id),
        )
        rec = await cur.fetchone()
        # Two changes of one key in one publish: both in the feed, the later one replicated.
        assert rec is not None and rec[0] == head + 5 and rec[1]["name"] == "renamed"
        changes = await feed.read_after(conn, fid, head, 10)
        assert [c.seq for c in changes] == [head + i for i in range(1, 6)]
        assert changes[1].row == inside.model_dump(mode="json") | {"seq": head + 2}
        # Presence is snapshotted from ticket_presence (feed.OWN_ROWS): no replica copy.
        cur = await conn.execute(
            "SELECT count(*) FROM replica_row WHERE festival_id = %s AND table_name = 'presence'",
            (fid,),
        )
        assert await cur.fetchone() == (0,)


async def test_reused_event_id_is_stored_rejected_in_a_batch_of_new_events(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    tickets = [t.ticket_id for t in rig.fest.tickets]
    first = rig.entry(gate, tickets[0], at_ms=10)
    again = rig.entry(gate, tickets[1], at_ms=20) | {"event_id": first["event_id"]}
    resp = await rig.push(gate, [first, again, rig.exit(gate, tickets[0], at_ms=30)])
    assert resp.status_code == 200 and resp.json()["acked_through"] == 3
    assert await rig.scalar("SELECT count(*) FROM device_event") == 3
    assert await rig.scalar("SELECT reason FROM device_event WHERE device_seq = 2") == (
        "duplicate_event_id"
    )
    replay = await rig.push(gate, [first, again])  # a replay changes nothing
    assert replay.status_code == 200 and replay.json()["acked_through"] == 3
    assert await rig.scalar("SELECT count(*) FROM device_event") == 3
