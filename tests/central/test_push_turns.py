"""Pushes queue for their festival's ingest lock in process (`central.turns`), holding no
pooled connection while they wait; a turn is never lost, whoever leaves the queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from central.api.deps import AppState
from central.app import create_app
from central.http_server import server_config
from central.ingest import festival_lock, festival_lock_key
from central.sample import SampleFestival
from central.turns import TurnLeft, Turns, TurnTimeout
from config.central import CentralConfig
from sync.protocol import RETRY_AFTER_HEADER
from tests.central.serve_proc import free_port
from tests.central.sync_helpers import Rig, expect_error

FestivalFactory = Callable[..., Awaitable[SampleFestival]]


async def until(condition: Callable[[], bool]) -> None:
    """Wait until `condition()` holds (at most 30 s: a bound, not a measure)."""
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110 - state other tasks change, of many kinds
            await asyncio.sleep(0.01)


# --- the queues ---------------------------------------------------------------------------


async def _enter(turns: Turns, order: list[str], name: str, go: asyncio.Event, **kw: Any) -> None:
    async with turns.hold([1], 30, **kw):
        order.append(name)
        await go.wait()


async def test_a_key_admits_depth_holders_and_the_rest_in_arrival_order() -> None:
    turns, order, go = Turns(depth=2), list[str](), asyncio.Event()
    tasks = []
    for name in "abcde":
        tasks.append(asyncio.create_task(_enter(turns, order, name, go)))
        await asyncio.sleep(0)
    await until(lambda: turns.waiting(1) == 3)
    assert order == ["a", "b"] and turns.holding(1) == 2
    go.set()
    await asyncio.gather(*tasks)
    assert order == list("abcde")
    assert turns.holding(1) == 0 and turns.waiting(1) == 0


async def test_small_and_large_pushes_take_turns_while_both_wait() -> None:
    turns, order, go, through = Turns(depth=1), list[str](), asyncio.Event(), asyncio.Event()
    through.set()  # each waiter, once in, goes through at once: `order` is the grant order
    holder = asyncio.create_task(_enter(turns, order, "holder", go))
    await until(lambda: turns.holding(1) == 1)
    tasks = []
    for name in ["L1", "L2", "L3", "S1", "S2"]:
        small = name.startswith("S")
        tasks.append(asyncio.create_task(_enter(turns, order, name, through, small=small)))
        await until(lambda: turns.waiting(1) == len(tasks))
    go.set()
    await asyncio.gather(holder, *tasks)
    # A small push is not kept behind the whole backlog, nor is the backlog starved.
    assert order == ["holder", "S1", "L1", "S2", "L2", "L3"]


async def test_a_waiter_that_leaves_takes_no_turn_with_it() -> None:
    turns, go = Turns(depth=1), asyncio.Event()
    holder = asyncio.create_task(_enter(turns, [], "holder", go))
    await until(lambda: turns.holding(1) == 1)

    cancelled = asyncio.create_task(_enter(turns, [], "cancelled", asyncio.Event()))
    await until(lambda: turns.waiting(1) == 1)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert turns.waiting(1) == 0

    with pytest.raises(TurnTimeout):  # a 503 busy, as when the pool has no connection
        async with turns.hold([1], 0.05):
            pass
    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    leaving = asyncio.create_task(_enter(turns, [], "gone", asyncio.Event(), gone=gone))
    await until(lambda: turns.waiting(1) == 1)
    gone.set_result(None)
    with pytest.raises(TurnLeft):
        await leaving
    assert turns.waiting(1) == 0 and turns.holding(1) == 1

    go.set()
    await holder
    assert turns.holding(1) == 0
    async with asyncio.timeout(1), turns.hold([1], 0):  # free at once: nothing leaked
        assert turns.holding(1) == 1


async def test_a_turn_granted_as_its_waiter_is_cancelled_goes_on_to_the_next() -> None:
    turns, go, order = Turns(depth=1), asyncio.Event(), list[str]()
    holder = asyncio.create_task(_enter(turns, order, "holder", go))
    await until(lambda: turns.holding(1) == 1)
    unlucky = asyncio.create_task(_enter(turns, order, "unlucky", asyncio.Event()))
    await until(lambda: turns.waiting(1) == 1)
    nxt_go = asyncio.Event()
    nxt = asyncio.create_task(_enter(turns, order, "next", nxt_go))
    await until(lambda: turns.waiting(1) == 2)
    go.set()
    await holder  # it has handed its turn to `unlucky`, which has not run since
    unlucky.cancel()
    with pytest.raises(asyncio.CancelledError):
        await unlucky
    await until(lambda: "next" in order)
    assert order == ["holder", "next"] and turns.holding(1) == 1
    nxt_go.set()
    await nxt
    assert turns.holding(1) == 0 and turns.waiting(1) == 0


async def test_keys_are_taken_in_order_and_given_back_when_one_is_not_had() -> None:
    turns, go = Turns(depth=1), asyncio.Event()
    holder = asyncio.create_task(_enter(turns, [], "holder", go))  # holds key 1
    await until(lambda: turns.holding(1) == 1)
    with pytest.raises(TurnTimeout):
        async with turns.hold([2, 1], 0.05):
            pass
    assert turns.holding(2) == 0  # key 2 was had, then given back
    go.set()
    await holder


# --- over the API ---------------------------------------------------------------------------


@asynccontextmanager
async def _app(
    pool: AsyncConnectionPool, festival: FestivalFactory, settings: CentralConfig
) -> AsyncIterator[tuple[Rig, AppState]]:
    """The real app on `pool` over ASGI, with its state (the turns) in reach."""
    fest = await festival(signed_tickets=8)
    app = create_app(settings, pool=pool)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://central") as client:
            yield Rig(client, pool, fest, _now_ms()), app.state.central


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@asynccontextmanager
async def _every_turn(turns: Turns, key: int) -> AsyncIterator[None]:
    """Hold every turn `key` admits, as pushes applying at length would."""
    async with AsyncExitStack() as stack:
        for _ in range(turns.depth):
            await stack.enter_async_context(turns.hold([key], 1))
        yield


def _tickets_key(fest: SampleFestival) -> int:
    return festival_lock_key(fest.festival_id, "tickets")


async def test_pushes_queued_for_the_lock_leave_the_pool_to_other_requests(
    pg_pool: AsyncConnectionPool, pg_dsn: str, festival: FestivalFactory
) -> None:
    # A pool of 4 and 8 gates pushing while another process holds the festival's lock:
    # before turns, their pushes took the whole pool to wait on the lock in PostgreSQL.
    settings = CentralConfig(pool_timeout_s=5, ingest_queue_s=60)
    async with _app(pg_pool, festival, settings) as (rig, st):
        gates = [await rig.enrol("gate", f"g{i}") for i in range(8)]
        logger = await rig.enrol("gate", "logger")
        tickets = rig.fest.tickets
        async with await AsyncConnection.connect(pg_dsn) as other:
            await festival_lock(other, rig.fest.festival_id)  # held until `other` commits
            pushes = [
                asyncio.create_task(rig.push(g, [rig.entry(g, tickets[i].ticket_id)]))
                for i, g in enumerate(gates)
            ]
            key = _tickets_key(rig.fest)
            await until(lambda: st.turns.waiting(key) == 8 - st.turns.depth)
            assert st.turns.holding(key) == st.turns.depth
            # The pool serves others meanwhile: a gate's log line needs no lock, a
            # changes request no lock at all. (Not the queued gates' own: a push holds its
            # device's row from its first statement.)
            log = await rig.push(logger, [rig.event(logger, "log", "info", {"m": "x"})])
            assert log.status_code == 200, log.text
            page = await rig.client.get("/v1/sync/changes", headers=logger.headers)
            assert page.status_code == 200
            cur = await other.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            rec = await cur.fetchone()
            assert rec is not None and rec[0] <= st.turns.depth  # the holders only
            await other.commit()
        answers = await asyncio.gather(*pushes)
    assert [a.status_code for a in answers] == [200] * 8
    assert all(a.json()["acked_through"] == 1 for a in answers)
    assert st.turns.holding(key) == 0 and st.turns.waiting(key) == 0
    async with pg_pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM ticket_presence WHERE inside")
        rec = await cur.fetchone()
    assert rec is not None and rec[0] == 8


async def test_a_push_queued_past_its_bound_is_503_busy_and_stores_nothing(
    pg_pool: AsyncConnectionPool, festival: FestivalFactory
) -> None:
    async with _app(pg_pool, festival, CentralConfig(ingest_queue_s=0.2)) as (rig, st):
        gate = await rig.enrol("gate")
        key = _tickets_key(rig.fest)
        async with _every_turn(st.turns, key):
            resp = await rig.push(gate, [rig.entry(gate, rig.fest.tickets[0].ticket_id)])
        expect_error(resp, 503, "busy")
        assert resp.headers[RETRY_AFTER_HEADER] == "1"
        assert st.turns.holding(key) == 0 and st.turns.waiting(key) == 0
        assert await rig.scalar("SELECT count(*) FROM device_event") == 0
        again = await rig.push(gate, [rig.entry(gate, rig.fest.tickets[0].ticket_id, seq=1)])
        assert again.status_code == 200 and again.json()["acked_through"] == 1


async def test_a_device_gone_while_its_push_queued_leaves_the_queue(
    pg_pool: AsyncConnectionPool, festival: FestivalFactory
) -> None:
    port = free_port()
    settings = CentralConfig(host="127.0.0.1", port=port)
    fest = await festival()
    app = create_app(settings, pool=pg_pool)
    server = uvicorn.Server(server_config(app, settings, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started)
        st: AppState = app.state.central
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")
        rig = Rig(client, pg_pool, fest, _now_ms())
        async with rig.client:
            gate = await rig.enrol("gate")
            key = _tickets_key(fest)
            body = httpx.Request(
                "POST", "http://central/v1/sync/events", headers=gate.headers,
                json={"events": [rig.entry(gate, fest.tickets[0].ticket_id)]},
            )  # fmt: skip
            async with _every_turn(st.turns, key):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                head = "".join(f"{k}: {v}\r\n" for k, v in body.headers.items())
                writer.write(f"POST /v1/sync/events HTTP/1.1\r\n{head}\r\n".encode() + body.read())
                await writer.drain()
                await until(lambda: st.turns.waiting(key) == 1)
                writer.close()  # the device gives up
                await until(lambda: st.turns.waiting(key) == 0)
            assert st.turns.holding(key) == 0
            assert await rig.scalar("SELECT count(*) FROM device_event") == 0
            resp = await rig.push(gate, [rig.entry(gate, fest.tickets[0].ticket_id, seq=1)])
            assert resp.status_code == 200 and resp.json()["acked_through"] == 1
    finally:
        server.should_exit = True
        await serving
