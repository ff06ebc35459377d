"""A snapshot stream holds a pooled connection: a client that stops reading gives it back
after the send deadline, and only a few streams run at once (the rest get 429)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from psycopg import AsyncConnection

from central.imports import import_tickets
from central.sample import SampleFestival
from sync.client import CentralClient, CentralUnavailable
from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, ErrorBody
from tests.integration.conftest import (
    PATIENCE_S,
    closed_by_central,
    enrol_code,
    serving,
)

# About 10 MB of snapshot: several times what loopback's socket buffers hold (measured
# here: 3 MB reach a client that reads nothing), so a stalled reader stalls central.
TICKETS = 36_000
END_LINE = b'{"type":"end"'


async def big_festival(dsn: str, fest: SampleFestival) -> None:
    async with await AsyncConnection.connect(dsn) as conn:
        rows = [{"category": "Weekend", "code": f"SLOW-{i:08d}-READER"} for i in range(TICKETS)]
        # Counter codes, weak by design: only the snapshot's size matters here.
        await import_tickets(
            conn, fest.festival_id, rows, actor="test", sign=False, accept_weak_codes=True
        )
        await conn.commit()


async def device_token(url: str, dsn: str, fest: SampleFestival) -> str:
    """A gate enrolled over HTTP (no snapshot taken)."""
    async with CentralClient(url) as anonymous:
        return (await anonymous.enrol(await enrol_code(dsn, fest, "gate"), "gate")).token


async def views_open(dsn: str) -> int:
    """Transactions open in the test database but this one's: a snapshot stream's view."""
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"
        )
        row = await cur.fetchone()
        return int(row[0]) if row else -1


async def until_no_view(dsn: str) -> None:
    """Wait until no snapshot view is open (at most PATIENCE_S)."""
    async with asyncio.timeout(PATIENCE_S):
        while await views_open(dsn):  # noqa: ASYNC110 - polls the database server
            await asyncio.sleep(0.05)


@asynccontextmanager
async def stalled_reader(port: int, token: str) -> AsyncIterator[asyncio.StreamReader]:
    """A snapshot request that reads the answer's first line, then nothing more."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel holds little
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    try:
        writer.write(
            f"GET /v1/sync/snapshot HTTP/1.1\r\nHost: central\r\n{PROTOCOL_HEADER}: "
            f"{PROTOCOL_VERSION}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        await reader.readuntil(b'"type":"header"')  # the stream is under way
        yield reader
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_a_snapshot_reader_that_stops_reading_gives_its_connection_back(
    pg_dsn: str, fest: SampleFestival
) -> None:
    await big_festival(pg_dsn, fest)
    with serving(pg_dsn, send_timeout_s=1.0) as server:
        token = await device_token(server.url, pg_dsn, fest)
        async with stalled_reader(server.port, token) as reader:
            # The stream's view has been open since its header line; it closes when central
            # gives the connection back (cut stream) or the stream ends (the check below).
            await until_no_view(pg_dsn)
            rest = await closed_by_central(reader)
        assert END_LINE not in rest  # the stream was cut, not finished
        async with CentralClient(server.url, token=token) as client:  # central still serves
            parts = [part async for part in client.snapshot()]
        assert parts[-1].kind == "end"


async def test_snapshot_streams_over_the_cap_get_429(pg_dsn: str, fest: SampleFestival) -> None:
    await big_festival(pg_dsn, fest)
    with serving(pg_dsn, snapshot_streams=1, snapshot_queue_s=0.2, send_timeout_s=300.0) as server:
        token = await device_token(server.url, pg_dsn, fest)
        headers = {PROTOCOL_HEADER: str(PROTOCOL_VERSION), "Authorization": f"Bearer {token}"}
        async with (
            stalled_reader(server.port, token),
            httpx.AsyncClient(base_url=server.url, timeout=PATIENCE_S) as http,
        ):
            over = await http.get("/v1/sync/snapshot", headers=headers)
            assert over.status_code == 429, over.text[:200]
            assert ErrorBody.model_validate_json(over.content).error == "too_many_requests"
            assert int(over.headers["Retry-After"]) >= 1
        # The stalled reader has left: its slot comes back, and a device gets its snapshot.
        async with CentralClient(server.url, token=token) as client:
            async with asyncio.timeout(PATIENCE_S):
                while True:
                    with contextlib.suppress(CentralUnavailable):  # 429 until the slot is back
                        parts = [part async for part in client.snapshot()]
                        break
                    await asyncio.sleep(0.1)
        assert parts[-1].kind == "end"
