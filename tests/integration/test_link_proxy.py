"""A device's link to central (`festdemo.proxy`): relays until cut, then drops and refuses
every connection until restored. Its faults are `test_faults.py`'s."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from festdemo.proxy import LinkProxy


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def _echoes(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello")
    await writer.drain()
    assert await reader.readexactly(5) == b"hello"
    return reader, writer


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await reader.read() == b""
    except ConnectionResetError:
        return True


async def test_a_cut_link_drops_and_refuses_until_restored(echo_port: int) -> None:
    proxy = LinkProxy(upstream_port=echo_port)
    await proxy.start()
    clients: list[asyncio.StreamWriter] = []
    async with asyncio.timeout(10):
        try:
            live, writer = await _echoes(proxy.port)
            clients.append(writer)
            proxy.set_cut(True)
            assert await _closed(live)
            refused, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            clients.append(writer)
            assert await _closed(refused)
            proxy.set_cut(False)
            idle, writer = await _echoes(proxy.port)
            clients.append(writer)
        finally:
            await proxy.stop()
            for writer in clients:
                writer.close()
        assert await _closed(idle)
        assert not proxy.counts  # no fault rate: bytes relayed, no exchange judged
