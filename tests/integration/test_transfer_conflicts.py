"""Issue 15: a ticket transferred at central makes its old code a stale or violating admission."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from central import tickets
from central.sample import SampleFestival
from central.tickets import IssuedTicket
from sync.hlc import pack
from sync.ids import uuid7_text
from sync.protocol import Event
from sync.vocab import EventKind
from tests.integration.conftest import CentralServer, Node, enrolled_dir, open_node


async def _gate(central: CentralServer, dsn: str, fest: SampleFestival, tmp: Path) -> Node:
    return await open_node(await enrolled_dir(central, dsn, fest, "gate", tmp))


async def _transfer(dsn: str, ticket: IssuedTicket) -> IssuedTicket:
    async with await AsyncConnection.connect(dsn) as conn:
        return await tickets.transfer_ticket(conn, ticket.ticket_id, actor="ops")


async def _conflicts(dsn: str) -> list[dict[str, Any]]:
    async with await AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        cur = await conn.execute(
            "SELECT kind, subject_id, event_ids, facts FROM conflict"
            " WHERE resolved_at IS NULL ORDER BY kind, id"
        )
        return await cur.fetchall()


async def test_an_offline_gate_admitting_a_transferred_code_is_stale_catalog(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    offline = await _gate(central, pg_dsn, fest, tmp_path)
    online = await _gate(central, pg_dsn, fest, tmp_path)
    nodes += [offline, online]
    signed, outside = fest.tickets[0], fest.opaque_tickets[0]
    new_signed, new_outside = await _transfer(pg_dsn, signed), await _transfer(pg_dsn, outside)
    # The offline gate has not heard: both old codes get in.
    admitted = [await offline.device.scan(t.code) for t in (signed, outside)]
    assert [a.verdict.code for a in admitted] == ["ok", "ok"]
    # An online gate has heard: the old signed code is revoked, the old outside one unknown.
    await online.engine.sync_round()
    assert (await online.device.scan(signed.code)).verdict.code == "revoked"
    assert (await online.device.scan(outside.code)).verdict.code == "unknown"
    assert await _conflicts(pg_dsn) == []
    await offline.engine.sync_round()
    found = await _conflicts(pg_dsn)
    assert sorted((c["kind"], c["subject_id"]) for c in found) == sorted(
        [("stale_catalog", signed.ticket_id), ("stale_catalog", outside.ticket_id)]
    )
    by_ticket = {c["subject_id"]: c for c in found}
    olds, news = (signed, outside), (new_signed, new_outside)
    for old, new, result in zip(olds, news, admitted, strict=True):
        conflict = by_ticket[old.ticket_id]
        assert [str(e) for e in conflict["event_ids"]] == [result.event.event_id]
        catalog = conflict["facts"]["catalog"]
        assert (catalog["seq"], catalog["state"]) == (new.row.seq, "transferred")
        assert conflict["facts"]["event"]["catalog_seq"] < new.row.seq
    signed_facts = by_ticket[signed.ticket_id]["facts"]
    assert signed_facts["event"]["code_version"] == 0
    assert signed_facts["catalog"]["code_version"] == 1
    outside_facts = by_ticket[outside.ticket_id]["facts"]
    assert outside_facts["catalog"]["code_hash"] == new_outside.row.code_hash
    assert outside_facts["event"]["code_hash"] != new_outside.row.code_hash


async def test_a_gate_that_had_seen_the_transfer_and_admitted_is_a_policy_violation(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    gate = await _gate(central, pg_dsn, fest, tmp_path)
    nodes.append(gate)
    old = fest.tickets[1]
    new = await _transfer(pg_dsn, old)
    await gate.engine.sync_round()
    assert gate.device.store.cursor >= new.row.seq
    # What a gate that ignored its own replica would journal: the old code, admitted anyway.
    now = time.time_ns() // 1_000_000
    payload = {"ticket_id": str(old.ticket_id), "zone_id": str(fest.zone_id),
               "code_kind": "signed", "key_id": fest.key_id, "code_version": 0}  # fmt: skip
    crafted = Event(
        event_id=uuid7_text(now), device_id=gate.creds.device_id, device_seq=1, hlc=pack(now, 0),
        wall_ms=now, catalog_seq=gate.device.store.cursor, kind=EventKind.ENTRY, verdict="ok",
        payload=payload,
    )  # fmt: skip
    assert (await gate.client.push([crafted])).acked_through == 1
    found = await _conflicts(pg_dsn)
    assert [(c["kind"], c["subject_id"]) for c in found] == [("policy_violation", old.ticket_id)]
    assert found[0]["event_ids"] == [uuid.UUID(crafted.event_id)]
    assert found[0]["facts"]["catalog"]["seq"] == new.row.seq
