"""A device's link to central, on loopback: a proxy that can be cut, or made to misbehave.

The demo puts one in front of each device and cuts it (every connection dropped, new ones
refused) to play a network cut; the fault tests give it a fault `rate`. Without one, it
relays bytes both ways as they come (keep-alive connections and long polls included). With
one, it serves one HTTP/1.1 request per client connection (it answers `Connection: close`),
so each fault hits exactly one exchange. Faults, chosen by a seeded random per request:
drop (the request never reaches central), lost answer (central applies it, the device never
hears), delay, reset (TCP RST), truncated body, 503 without forwarding, duplicate (the
request reaches central twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field

FAULTS = ("pass", "drop", "lost_answer", "delay", "reset", "truncate", "503", "duplicate")


@dataclass
class LinkProxy:
    """Forwards connections to `upstream_port` until cut, injecting faults at `rate` (0..1)."""

    upstream_port: int
    rate: float = 0.0
    seed: int = 1
    delay_s: float = 0.3
    cut: bool = False
    counts: Counter[str] = field(default_factory=Counter)  # exchanges by fault, with a rate
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> str:
        """Listen on a free loopback port; returns the URL devices use."""
        self._rng = random.Random(self.seed)  # noqa: S311 - a reproducible run, not a secret
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    def set_cut(self, cut: bool) -> None:
        """Cut the link (close every connection, refuse new ones) or restore it."""
        self.cut = cut
        if cut:
            for writer in list(self._writers):
                writer.transport.abort()

    async def stop(self) -> None:
        """Stop listening and end every connection (idle keep-alives and exchanges included)."""
        self.set_cut(True)
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self.cut:
                writer.transport.abort()
            elif self.rate > 0:
                await self._exchange(reader, writer)
            else:
                await self._relay(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # `stop` ended it. Nobody awaits a handler but `stop`, and Python 3.11's
            # start_server logs one that ends cancelled as an error in a callback.
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._writers.discard(up_writer)
            for w in (writer, up_writer):
                w.transport.abort()

    def _pick(self, path: bytes) -> str:
        # The snapshot stream is long; faults on it are covered by its own test.
        if self._rng.random() >= self.rate or b"/snapshot" in path:
            return "pass"
        return self._rng.choice(FAULTS[1:])

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request, with the fault picked for it."""
        request = await _read_request(reader)
        if request is None:
            return
        fault = self._pick(request.split(b"\r\n", 1)[0])
        self.counts[fault] += 1
        if fault == "drop":
            return
        if fault == "503":
            body = b'{"error":"unavailable","detail":"injected"}'
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            return
        if fault == "delay":
            await asyncio.sleep(self.delay_s)
        if fault == "duplicate":
            await self._forward(request)
        response = await self._forward(request)
        if fault == "lost_answer":
            return
        if fault == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        if fault == "truncate":
            response = response[: max(1, len(response) - 7)]
        writer.write(response)
        await writer.drain()

    async def _forward(self, request: bytes) -> bytes:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            up_writer.write(request)
            await up_writer.drain()
            return await up_reader.read()  # upstream closes: we asked for Connection: close
        finally:
            up_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    writer.transport.abort()


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request, rewritten to `Connection: close` (framing by Content-Length only)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head[:-4].split(b"\r\n")
    kept = [ln for ln in lines if not ln.lower().startswith((b"connection:", b"keep-alive:"))]
    length = next(
        (int(ln.split(b":", 1)[1]) for ln in kept if ln.lower().startswith(b"content-length:")), 0
    )
    body = await reader.readexactly(length) if length else b""
    return b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n" + body
