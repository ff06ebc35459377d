"""Long-poll waiters woken together share one feed read per page, and each answers exactly
what its own read would have (`central.api.longpoll.FeedWaiters.shared`)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY

from central import feed
from central.api import longpoll
from central.api.longpoll import FeedWaiters
from sync.catalog import Change
from sync.protocol import ChangesResponse
from tests.central.sync_helpers import Rig

WAITERS = "festgate_longpoll_waiters"


class Reads:
    """A read that counts its calls and answers when let go."""

    def __init__(self) -> None:
        self.calls = 0
        self.go = asyncio.Event()

    async def __call__(self) -> int:
        self.calls += 1
        await self.go.wait()
        return self.calls


async def test_waiters_holding_one_wake_up_share_a_read_per_key() -> None:
    waiters = FeedWaiters()
    token = waiters.token("f")
    same, other = Reads(), Reads()
    asking = [asyncio.create_task(waiters.shared(token, ("p", 1), same)) for _ in range(5)]
    apart = asyncio.create_task(waiters.shared(token, ("p", 2), other))
    await asyncio.sleep(0)
    asking[0].cancel()  # a waiter gone leaves the read to the others
    same.go.set()
    other.go.set()
    assert await asyncio.gather(*asking[1:]) == [1] * 4
    assert await apart == 1
    assert (same.calls, other.calls) == (1, 1)
    with pytest.raises(asyncio.CancelledError):
        await asking[0]

    waiters.notify("f")  # a change: what was read before it is not shared after it
    again = Reads()
    again.go.set()
    assert await waiters.shared(waiters.token("f"), ("p", 1), again) == 1
    assert again.calls == 1


async def test_a_failed_read_fails_its_sharers_and_is_not_kept() -> None:
    waiters = FeedWaiters()
    token = waiters.token("f")

    async def broken() -> int:
        await asyncio.sleep(0)
        raise RuntimeError("the database went away")

    results = await asyncio.gather(
        *(waiters.shared(token, "k", broken) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    fine = Reads()
    fine.go.set()
    assert await waiters.shared(token, "k", fine) == 1  # read afresh


async def _parked(count: int) -> None:
    async with asyncio.timeout(30):
        while (REGISTRY.get_sample_value(WAITERS) or 0) < count:  # noqa: ASYNC110 - a gauge
            await asyncio.sleep(0.01)


async def test_woken_waiters_answer_what_their_own_read_gives_with_one_read_per_page(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    fid = rig.fest.festival_id
    # Woken by the NOTIFY only, not by the poll that stands in for a listener that is down.
    monkeypatch.setattr(longpoll, "POLL_S", 60.0)
    reads: list[tuple[int, int]] = []
    read_after = feed.read_after

    async def counted(conn: Any, festival_id: Any, cursor: int, limit: int) -> list[Change]:
        reads.append((cursor, limit))
        return await read_after(conn, festival_id, cursor, limit)

    monkeypatch.setattr(feed, "read_after", counted)
    limits = [1, 1, 2, 2, 1000, 1000, 1000]
    gates = [await rig.enrol("gate", f"g{i}") for i in range(len(limits))]
    async with rig.pool.connection() as conn:
        head = await feed.head(conn, fid)
        cur = await conn.execute(
            "SELECT row - 'seq' FROM replica_row WHERE festival_id = %s AND table_name = 'ticket'"
            " ORDER BY key LIMIT 3",
            (fid,),
        )
        rows = [r[0] for r in await cur.fetchall()]
    assert len(rows) == 3
    base = REGISTRY.get_sample_value(WAITERS) or 0
    polls = [
        asyncio.create_task(
            rig.client.get(
                "/v1/sync/changes",
                params={"after": head, "wait": 30, "limit": limit},
                headers=gate.headers,
            )
        )
        for gate, limit in zip(gates, limits, strict=True)
    ]
    await _parked(int(base) + len(polls))
    reads.clear()
    async with rig.pool.connection() as conn:  # three changes, one statement, one NOTIFY
        await feed.publish_rows(conn, fid, "ticket", rows)
        await conn.commit()
    answers = [ChangesResponse.model_validate((await p).json()) for p in polls]

    assert sorted(reads) == [(head, 1), (head, 2), (head, 1000)]  # one per page asked
    async with rig.pool.connection() as conn:
        for limit, got in zip(limits, answers, strict=True):
            alone = await read_after(conn, fid, head, limit)  # a solo read
            assert got.changes == alone
            assert len(got.changes) == min(limit, 3)
            assert got.next_cursor == alone[-1].seq
            assert got.head_seq == await feed.head(conn, fid) == head + 3
