"""Down the feed: long-poll wakes at a commit, snapshot streams then changes continue."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from central import cashless, feed, tickets
from sync.catalog import TABLES, Change
from sync.protocol import ChangesResponse
from tests.central.sync_helpers import Rig


async def test_changes_page_and_cursor(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    resp = await rig.client.get("/v1/sync/changes", params={"after": 0, "limit": 3},
                                headers=gate.headers)  # fmt: skip
    assert resp.status_code == 200
    page = ChangesResponse.model_validate(resp.json())
    assert [c.seq for c in page.changes] == [1, 2, 3]
    assert page.next_cursor == 3
    assert page.head_seq >= 3
    rest = await rig.client.get("/v1/sync/changes", params={"after": 3}, headers=gate.headers)
    assert rest.json()["next_cursor"] == page.head_seq
    assert await rig.scalar("SELECT cursor FROM device") == 3


async def test_long_poll_returns_as_soon_as_a_change_commits(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    head = (await rig.client.get("/v1/sync/changes", headers=gate.headers)).json()["head_seq"]
    started = time.monotonic()
    poll = asyncio.create_task(
        rig.client.get("/v1/sync/changes", params={"after": head, "wait": 20}, headers=gate.headers)
    )
    await asyncio.sleep(0.3)
    assert not poll.done()
    async with rig.pool.connection() as conn:
        await tickets.cancel_ticket(conn, rig.fest.tickets[0].ticket_id, actor="test")
    resp = await asyncio.wait_for(poll, 10)
    assert time.monotonic() - started < 10  # woke well before its 20 s wait
    changes = [Change.model_validate(c) for c in resp.json()["changes"]]
    assert [(c.table, c.row["status"]) for c in changes] == [("ticket", "CANCELLED")]


async def test_a_long_poll_without_changes_returns_empty_at_its_deadline(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    head = (await rig.client.get("/v1/sync/changes", headers=gate.headers)).json()["head_seq"]
    resp = await rig.client.get(
        "/v1/sync/changes", params={"after": head, "wait": 0.5}, headers=gate.headers
    )
    assert resp.json()["changes"] == []
    assert resp.json()["next_cursor"] == head


async def test_snapshot_streams_ndjson_and_changes_continue_from_its_seq(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    async with rig.client.stream("GET", "/v1/sync/snapshot", headers=gate.headers) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) async for line in resp.aiter_lines() if line]
    header, *chunks, end = lines
    assert header["type"] == "header"
    assert header["format"] == "festgate-snapshot/1"
    assert end == {"type": "end", "seq": header["seq"], "rows": sum(len(c["rows"]) for c in chunks)}
    tables = [c["table"] for c in chunks]
    assert tables[0] == "festival"
    assert "ticket" in tables
    assert all("private_key" not in r for c in chunks for r in c["rows"])
    async with rig.pool.connection() as conn:
        await tickets.cancel_ticket(conn, rig.fest.tickets[1].ticket_id, actor="test")
    after = await rig.client.get(
        "/v1/sync/changes", params={"after": end["seq"]}, headers=gate.headers
    )
    assert [c["seq"] for c in after.json()["changes"]] == [end["seq"] + 1]


async def _snapshot(
    rig: Rig, headers: dict[str, str]
) -> tuple[int, dict[str, list[dict[str, Any]]]]:
    """The snapshot's seq and its rows per table, through the HTTP stream."""
    async with rig.client.stream("GET", "/v1/sync/snapshot", headers=headers) as resp:
        lines = [json.loads(line) async for line in resp.aiter_lines() if line]
    tables: dict[str, list[dict[str, Any]]] = {}
    for chunk in lines[1:-1]:
        tables.setdefault(chunk["table"], []).extend(chunk["rows"])
    return lines[0]["seq"], tables


async def test_snapshot_presence_and_accounts_are_the_feed_replayed(rig: Rig) -> None:
    # Presence and accounts come from central's own tables (feed.OWN_ROWS), not from copies
    # kept at publish time: what a device bootstraps must still be what the feed left.
    gate, bar = await rig.enrol("gate"), await rig.enrol("bar")
    t0, t1 = rig.fest.tickets[0].ticket_id, rig.fest.tickets[1].ticket_id
    scans = [rig.entry(gate, t0, at_ms=10), rig.entry(gate, t1, at_ms=11)]
    scans.append(rig.exit(gate, t1, at_ms=12))
    assert (await rig.push(gate, scans)).status_code == 200
    a0 = rig.fest.account_ids[0]
    opening = await rig.scalar("SELECT balance FROM cashless_account WHERE id = %s", a0)
    sales = [rig.sale(bar, a0, 300, at_ms=20), rig.sale(bar, a0, 100, at_ms=21)]
    assert (await rig.push(bar, sales)).status_code == 200
    async with rig.pool.connection() as conn:
        await cashless.topup(conn, a0, 1000, actor="test")
        await cashless.set_blocked(conn, a0, True, actor="test")
    seq, tables = await _snapshot(rig, gate.headers)

    async with rig.pool.connection() as conn:
        replayed: dict[tuple[str, str], dict[str, Any]] = {}
        for change in await feed.read_after(conn, rig.fest.festival_id, 0, 100_000):
            if change.table in feed.OWN_ROWS:
                replayed[(change.table, feed.row_key(change.table, change.row))] = change.row
    for table in feed.OWN_ROWS:
        got = {feed.row_key(table, r): r for r in tables.get(table, [])}
        want = {k: r for (t, k), r in replayed.items() if t == table}
        assert sorted(got) == sorted(want) and got  # every key the feed holds, no other
        for key, row in got.items():
            TABLES[table].model_validate(row, strict=True)
            assert row["seq"] == seq >= want[key]["seq"]  # as of the snapshot's seq
            assert {**row, "seq": 0} == {**want[key], "seq": 0}
    balance = {r["id"]: r["balance"] for r in tables["account"]}
    assert balance[str(a0)] == opening - 300 - 100 + 1000
    assert [r["blocked"] for r in tables["account"]] == [True]
    inside = {r["ticket_id"]: r["inside"] for r in tables["presence"]}
    assert inside == {str(t0): True, str(t1): False}
    # Each row names the movement behind it, its place in sync.hlc.fact_order, so a device
    # breaks an HLC tie with its own movement as central did.
    places = {r["ticket_id"]: (r["device_id"], r["device_seq"]) for r in tables["presence"]}
    assert places == {
        str(t0): (gate.device_id, scans[0]["device_seq"]),
        str(t1): (gate.device_id, scans[2]["device_seq"]),
    }
    assert await rig.scalar(
        "SELECT count(*) FROM replica_row WHERE table_name IN ('presence', 'account')"
    ) == 0  # fmt: skip
