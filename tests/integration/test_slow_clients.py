"""Slow clients against the real server: trickled headers and bodies cost central a socket
for a bounded time, never a database connection, and never stop other requests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from psycopg import AsyncConnection

from bench.slow_clients import push_head
from central import users
from central.auth import OpsRole
from central.sample import SampleFestival
from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, ErrorBody
from tests.integration.conftest import (
    PATIENCE_S,
    CentralServer,
    Node,
    closed_by_central,
    enrolled_dir,
    open_node,
    serving,
    until,
)

PROTO = {PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@asynccontextmanager
async def sockets(port: int, count: int) -> AsyncIterator[list[Conn]]:
    """`count` raw TCP connections to central, closed on exit."""
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
    try:
        yield conns
    finally:
        for _, writer in conns:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def ops_headers(dsn: str, fest: SampleFestival) -> dict[str, str]:
    """Headers of a new ADMIN ops user of `fest`."""
    async with await AsyncConnection.connect(dsn) as conn:
        user = await users.add_ops_user(
            conn, name="ops", role=OpsRole.ADMIN, actor="test", festival_id=fest.festival_id
        )
        await conn.commit()
    return {**PROTO, "Authorization": f"Bearer {user.token}"}


async def trickle(conns: list[Conn], data: bytes, every_s: float = 0.2) -> None:
    """Send `data` on every open connection, again and again, until cancelled."""
    while True:
        for _, writer in conns:
            if not writer.is_closing():
                writer.write(data)
        await asyncio.sleep(every_s)


async def still_waiting(reader: asyncio.StreamReader) -> bool:
    """True if central has sent nothing on this connection and not closed it."""
    if reader.at_eof():
        return False
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.05):
            await reader.read(1)
            return False
    return True


async def events_held(dsn: str) -> int:
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT count(*) FROM device_event")
        row = await cur.fetchone()
        return int(row[0]) if row else -1


async def gate(server: CentralServer, dsn: str, fest: SampleFestival, tmp_path: Path) -> Node:
    """An enrolled gate whose sync engine pushes what it scans (not running on its own)."""
    return await open_node(await enrolled_dir(server, dsn, fest, "gate", tmp_path))


async def test_twenty_slow_pushers_stop_neither_ops_reads_nor_device_pushes(
    pg_dsn: str, fest: SampleFestival, tmp_path: Path
) -> None:
    # A pool of 10 that gives up after 2 s: a request that needs the database while slow
    # pushers hold it fails fast (500 PoolTimeout) instead of after the default 30 s.
    # The body deadline is far off, so the pushers stay in flight for the whole test.
    with serving(pg_dsn, pool_min_size=10, pool_max_size=10, pool_timeout_s=2.0,
                       body_timeout_s=300.0) as server:  # fmt: skip
        node = await gate(server, pg_dsn, fest, tmp_path)
        ops = await ops_headers(pg_dsn, fest)
        try:
            async with (
                sockets(server.port, 20) as pushers,
                httpx.AsyncClient(base_url=server.url, timeout=PATIENCE_S) as http,
            ):
                for _, writer in pushers:  # headers and the start of a body that never ends
                    writer.write(push_head(node.creds.token, 100_000) + b'{"events": [')
                await until(lambda: server.requests_in_flight() >= 20)
                dribble = asyncio.create_task(trickle(pushers, b" "))
                try:
                    for i in range(4):
                        read = await http.get(
                            f"/v1/ops/festivals/{fest.festival_id}/devices", headers=ops
                        )
                        assert read.status_code == 200, read.text
                        await node.device.scan(fest.tickets[i].code)
                        assert await node.engine.push_once() == 1
                finally:
                    dribble.cancel()
                for reader, _ in pushers:  # they were in flight all along
                    assert await still_waiting(reader)
        finally:
            await node.close()
    assert await events_held(pg_dsn) == 4


async def test_a_body_that_does_not_arrive_gets_408_and_stores_nothing(
    pg_dsn: str, fest: SampleFestival, tmp_path: Path
) -> None:
    with serving(pg_dsn, body_timeout_s=1.0) as server:
        node = await gate(server, pg_dsn, fest, tmp_path)
        await node.close()
        token = node.creds.token
        async with sockets(server.port, 2) as ((slow, slow_w), (_, gone_w)):
            slow_w.write(push_head(token, 100_000) + b'{"events": [')
            dribble = asyncio.create_task(trickle([(slow, slow_w)], b" "))
            try:
                answer = await closed_by_central(slow)
            finally:
                dribble.cancel()
            # The answer may be lost to a reset (the client was still sending); if it
            # arrives, it is the 408.
            if answer:
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 408 "), answer
                assert b"connection: close" in head.lower()
                assert ErrorBody.model_validate_json(body).error == "request_timeout"
            gone_w.write(push_head(token, 100_000) + b'{"events": [')
            await until(lambda: server.requests_in_flight() >= 1)
            gone_w.close()  # a client that leaves mid-body
        async with httpx.AsyncClient(base_url=server.url, timeout=PATIENCE_S) as http:
            nothing = await http.post(
                "/v1/sync/events",
                json={"events": []},
                headers={**PROTO, "Authorization": f"Bearer {token}"},
            )
            assert nothing.status_code == 200, nothing.text  # central still serves
    assert await events_held(pg_dsn) == 0


async def test_header_tricklers_are_cut_and_do_not_stop_requests(
    pg_dsn: str, fest: SampleFestival
) -> None:
    with serving(pg_dsn, header_timeout_s=1.0) as server:
        ops = await ops_headers(pg_dsn, fest)
        url = f"/v1/ops/festivals/{fest.festival_id}/devices"
        async with sockets(server.port, 50) as tricklers, sockets(server.port, 1) as kept:
            for _, writer in tricklers:
                writer.write(f"GET {url} HTTP/1.1\r\n".encode())
            # A kept-alive connection: one request answered, then the next one's headers
            # trickle (each byte disarms uvicorn's keep-alive timeout).
            reader, writer = kept[0]
            lines = "".join(f"{k}: {v}\r\n" for k, v in ops.items())
            writer.write(f"GET {url} HTTP/1.1\r\nHost: central\r\n{lines}\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), head
            length = next(
                int(h.split(b":")[1])
                for h in head.lower().split(b"\r\n")
                if h.startswith(b"content-length:")
            )
            await reader.readexactly(length)
            writer.write(f"GET {url} HTTP/1.1\r\n".encode())
            dribble = asyncio.create_task(trickle([*tricklers, *kept], b"X-Slow: 1\r\n"))
            try:
                async with httpx.AsyncClient(base_url=server.url, timeout=PATIENCE_S) as http:
                    for _ in range(4):
                        read = await http.get(url, headers=ops)
                        assert read.status_code == 200, read.text
                for conn_reader, _ in [*tricklers, *kept]:
                    assert await closed_by_central(conn_reader) == b""
            finally:
                dribble.cancel()
