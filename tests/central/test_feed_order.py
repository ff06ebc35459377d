"""The change feed: gap-free seqs, no skipped change under out-of-order commits, snapshots."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest
from psycopg import AsyncConnection

from central import feed
from sync.catalog import BlockRow, Change, ZoneRow


async def _festival(dsn: str) -> uuid.UUID:
    fid = uuid.uuid4()
    async with await AsyncConnection.connect(dsn) as conn:
        await conn.execute(
            "INSERT INTO festival (id, name, slug, hash_key) VALUES (%s, 'F', %s, %s)",
            (fid, f"f-{fid.hex[:8]}", os.urandom(32)),
        )
    return fid


def _zone(fid: uuid.UUID, name: str) -> ZoneRow:
    return ZoneRow(id=str(uuid.uuid4()), festival_id=str(fid), name=name)


async def _waiting_on_lock(conn: AsyncConnection[Any], pid: int) -> bool:
    cur = await conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,))
    rec = await cur.fetchone()
    return rec is not None and rec[0] == "Lock"


async def _until_waiting(observer: AsyncConnection[Any], pid: int) -> None:
    # Poll until the server reports the writer blocked on a lock (bounded, never a timing assert).
    for _ in range(500):
        if await _waiting_on_lock(observer, pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("writer B never waited on A's feed lock")


async def test_publish_assigns_consecutive_seqs_and_rows_carry_them(pg_dsn: str) -> None:
    fid = await _festival(pg_dsn)
    async with await AsyncConnection.connect(pg_dsn) as conn:
        s1 = await feed.publish(conn, fid, "zone", _zone(fid, "a"))
        s2 = await feed.publish(conn, fid, "zone", _zone(fid, "b"))
        await conn.commit()
        changes = await feed.read_after(conn, fid, 0, 10)
        assert (s1, s2) == (1, 2)
        assert [c.seq for c in changes] == [1, 2]
        assert [c.row["seq"] for c in changes] == [1, 2]
        assert changes[0].row["name"] == "a"
        assert await feed.head(conn, fid) == 2
        assert await feed.read_after(conn, fid, 1, 10) == [changes[1]]
        assert await feed.read_after(conn, fid, 0, 1) == [changes[0]]


async def test_feeds_of_two_festivals_are_independent(pg_dsn: str) -> None:
    f1, f2 = await _festival(pg_dsn), await _festival(pg_dsn)
    async with await AsyncConnection.connect(pg_dsn) as conn:
        assert await feed.publish(conn, f1, "zone", _zone(f1, "a")) == 1
        assert await feed.publish(conn, f2, "zone", _zone(f2, "a")) == 1
        assert await feed.publish(conn, f1, "zone", _zone(f1, "b")) == 2
        await conn.commit()
        assert await feed.head(conn, f2) == 1


async def test_out_of_order_commit_never_skips_a_seq(pg_dsn: str) -> None:
    fid = await _festival(pg_dsn)
    a = await AsyncConnection.connect(pg_dsn)
    b = await AsyncConnection.connect(pg_dsn)
    reader = await AsyncConnection.connect(pg_dsn, autocommit=True)
    seen: list[Change] = []
    stop = asyncio.Event()

    async def poll() -> None:
        # A device-like reader: keep a cursor, ask for what follows it, never go back.
        cursor = 0
        while True:
            page = await feed.read_after(reader, fid, cursor, 100)
            for change in page:
                assert change.seq == cursor + 1, f"skipped from {cursor} to {change.seq}"
                cursor = change.seq
                seen.append(change)
            if stop.is_set() and not page:
                return
            await asyncio.sleep(0.005)

    async def writer_b() -> int:
        seq = await feed.publish(b, fid, "zone", _zone(fid, "from-b"))
        await b.commit()
        return seq

    try:
        poller = asyncio.create_task(poll())
        seq_a = await feed.publish(a, fid, "zone", _zone(fid, "from-a"))  # A holds its tx open
        b_task = asyncio.create_task(writer_b())
        await _until_waiting(reader, b.info.backend_pid)
        # B tried to commit first and could not: while A is open nothing is visible.
        assert not b_task.done()
        assert await feed.read_after(reader, fid, 0, 10) == []
        assert await feed.head(reader, fid) == 0
        await a.commit()
        seq_b = await b_task
        stop.set()
        await poller
    finally:
        for conn in (a, b, reader):
            await conn.close()
    assert (seq_a, seq_b) == (1, 2)
    assert [(c.seq, c.row["name"]) for c in seen] == [(1, "from-a"), (2, "from-b")]


async def test_rolled_back_writer_leaves_no_hole(pg_dsn: str) -> None:
    fid = await _festival(pg_dsn)
    a = await AsyncConnection.connect(pg_dsn)
    b = await AsyncConnection.connect(pg_dsn)
    observer = await AsyncConnection.connect(pg_dsn, autocommit=True)
    try:
        assert await feed.publish(a, fid, "zone", _zone(fid, "abandoned")) == 1

        async def writer_b() -> int:
            seq = await feed.publish(b, fid, "zone", _zone(fid, "kept"))
            await b.commit()
            return seq

        b_task = asyncio.create_task(writer_b())
        await _until_waiting(observer, b.info.backend_pid)
        await a.rollback()
        # B re-reads the committed head and takes the seq A gave back.
        assert await b_task == 1
        changes = await feed.read_after(observer, fid, 0, 10)
        assert [(c.seq, c.row["name"]) for c in changes] == [(1, "kept")]
        assert await feed.publish(a, fid, "zone", _zone(fid, "next")) == 2
        await a.commit()
        assert [c.seq for c in await feed.read_after(observer, fid, 0, 10)] == [1, 2]
    finally:
        for conn in (a, b, observer):
            await conn.close()


async def test_many_concurrent_writers_produce_a_gap_free_feed(pg_dsn: str) -> None:
    fid = await _festival(pg_dsn)

    async def writer(n: int) -> None:
        async with await AsyncConnection.connect(pg_dsn) as conn:
            for i in range(5):
                await feed.publish(conn, fid, "zone", _zone(fid, f"w{n}-{i}"))
                if i % 2:
                    await conn.rollback()  # some abandoned transactions in the mix
                else:
                    await conn.commit()

    await asyncio.gather(*(writer(n) for n in range(4)))
    async with await AsyncConnection.connect(pg_dsn) as conn:
        changes = await feed.read_after(conn, fid, 0, 100)
        assert [c.seq for c in changes] == list(range(1, 13))  # 4 writers x 3 commits
        assert await feed.head(conn, fid) == 12


async def test_notify_is_sent_at_commit_only(pg_dsn: str) -> None:
    fid = await _festival(pg_dsn)
    listener = await AsyncConnection.connect(pg_dsn, autocommit=True)
    try:
        await listener.execute(f"LISTEN {feed.CHANNEL}")
        async with await AsyncConnection.connect(pg_dsn) as conn:
            await feed.publish(conn, fid, "zone", _zone(fid, "gone"))
            await conn.rollback()
            await feed.publish(conn, fid, "zone", _zone(fid, "kept"))
            await conn.commit()
        payloads = [n.payload async for n in listener.notifies(timeout=1.0, stop_after=1)]
        assert payloads == [f"{fid}:1"]
    finally:
        await listener.close()


async def test_delete_carries_only_the_key_and_leaves_the_snapshot(pg_dsn: str) -> None:
    fid = await _festival(pg_dsn)
    block = BlockRow(kind="ticket", ref="t-1", reason="lost")
    zone = _zone(fid, "main")
    async with await AsyncConnection.connect(pg_dsn) as conn:
        await feed.publish(conn, fid, "zone", zone)
        await feed.publish(conn, fid, "block", block)
        await feed.publish(conn, fid, "block", block, op="delete")
        await conn.commit()
        changes = await feed.read_after(conn, fid, 0, 10)
        assert changes[2].op == "delete"
        assert changes[2].row == {"kind": "ticket", "ref": "t-1", "seq": 3}
        await conn.commit()
        async with feed.snapshot(conn, fid) as (seq, rows):
            got = [(t, r) async for t, r in rows]
        assert seq == 3
        assert got == [("zone", zone.model_dump(mode="json") | {"seq": 1})]


async def test_snapshot_is_consistent_with_its_seq(pg_dsn: str) -> None:
    fid = await _festival(pg_dsn)
    async with (
        await AsyncConnection.connect(pg_dsn) as reader,
        await AsyncConnection.connect(pg_dsn) as writer,
    ):
        await feed.publish(writer, fid, "zone", _zone(fid, "before"))
        await writer.commit()
        async with feed.snapshot(reader, fid) as (seq, rows):
            # A change committed while the snapshot streams belongs after its seq.
            await feed.publish(writer, fid, "zone", _zone(fid, "after"))
            await writer.commit()
            names = [r["name"] async for _, r in rows]
        assert (seq, names) == (1, ["before"])
        assert [c.row["name"] for c in await feed.read_after(reader, fid, seq, 10)] == ["after"]


async def test_publish_rejects_a_row_of_the_wrong_table(pg_dsn: str) -> None:
    fid = await _festival(pg_dsn)
    async with await AsyncConnection.connect(pg_dsn) as conn:
        with pytest.raises(TypeError, match="TicketRow"):
            await feed.publish(conn, fid, "ticket", _zone(fid, "x"))
        with pytest.raises(ValueError, match="not a replicated table"):
            await feed.publish(conn, fid, "staff", _zone(fid, "x"))
        assert await feed.read_after(conn, fid, 0, 10) == []
