"""Down the feed: long-poll wakes at a commit, snapshot streams then changes continue."""

from __future__ import annotations

import asyncio
import json
import time

from central import tickets
from sync.catalog import Change
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
