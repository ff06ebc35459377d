"""`python -m bench slow-clients --pushers N --tricklers M`: requests while slow clients attack.

Central runs as its own process, configured as ``festgate-central serve`` configures it
(``central.http_server``), over embedded PostgreSQL or the server named by
``FESTGATE_BENCH_DSN``. Setup, not measured: a festival, an ops user and two enrolled
devices. Measured, ``--rounds`` times in turn: an ops read (``GET /v1/ops/festivals/{id}/
devices``) and a one-event push of the first device (``POST /v1/sync/events``), each on
its own kept-alive connection, as an ops console and a device make them.

Phases: first no attack (the same-run baseline), then while N slow pushers (the second
device's valid token, ``Content-Length: 100000``, then one body byte every ``--every``
seconds) and M header tricklers (a request line, then one header line every ``--every``
seconds) hold connections. An attacker that central cuts (408, or closed) connects again
at once, so the attack never lets up. Figures per phase: p50/p99 µs of each request kind
and its non-200 answers (or failures); ``*_p99_ratio`` = attack p99 / baseline p99;
``attackers_cut`` = how often central cut an attacker during the attack.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import psycopg

from bench.ingest import _database, _script, _setup, _streams
from bench.initial_sync import central_process
from bench.stats import summary_us
from central import users
from central.auth import OpsRole
from config.central import CentralConfig
from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, Paths

PROTO = {PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
T = TypeVar("T")


def push_head(token: str, length: int, content_type: str = "application/json") -> bytes:
    """Raw HTTP: a device push's request line and headers announcing a `length`-byte body."""
    return (
        f"POST {Paths.EVENTS} HTTP/1.1\r\nHost: central\r\n{PROTOCOL_HEADER}: {PROTOCOL_VERSION}"
        f"\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


@dataclass
class Attack:
    """Slow clients against central's port: how many are connected, how often central cut one."""

    port: int
    every_s: float
    size: int  # clients in all; `ready` is set once every one has connected
    connected: int = 0
    cut: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, first: bytes, drip: bytes) -> None:
        """Send `first`, then `drip` every `every_s` until central closes; again, forever."""
        while True:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            closed = asyncio.create_task(reader.read())  # ends when central closes
            try:
                writer.write(first)
                self.connected += 1
                if self.connected >= self.size:
                    self.ready.set()
                while not closed.done():
                    writer.write(drip)
                    await asyncio.wait({closed}, timeout=self.every_s)
                self.cut += 1
            finally:
                self.connected -= 1
                closed.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await closed
                writer.close()

    async def during(self, clients: list[tuple[bytes, bytes]], work: Awaitable[T]) -> T:
        """Run `work` while `clients` (first bytes, drip) attack; they all connect first."""
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self.client(first, drip)) for first, drip in clients]
            if tasks:
                await self.ready.wait()
            await asyncio.sleep(2 * self.every_s)  # central has read their first bytes
            try:
                return await work
            finally:
                for task in tasks:
                    task.cancel()


Timed = Callable[[], Awaitable[httpx.Response]]


async def _phase(rounds: int, read: Timed, push: Timed) -> dict[str, Any]:
    """`rounds` ops reads and pushes in turn: latency summaries and non-200 answers."""
    took: dict[str, list[float]] = {"ops_read": [], "push": []}
    errors = 0
    for _ in range(rounds):
        for name, call in (("ops_read", read), ("push", push)):
            t0 = time.perf_counter()
            try:
                ok = (await call()).status_code == 200
            except httpx.HTTPError:
                ok = False
            took[name].append(time.perf_counter() - t0)
            errors += not ok
    return {name: summary_us(seconds) for name, seconds in took.items()} | {"errors": errors}


async def _ops_token(dsn: str, festival_id: uuid.UUID) -> str:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        ops = await users.add_ops_user(
            conn, name="bench", role=OpsRole.ADMIN, actor="bench", festival_id=festival_id
        )
        await conn.commit()
    return ops.token


async def _run(args: argparse.Namespace, dsn: str) -> dict[str, Any]:
    devices, tokens, tickets, accounts = await _setup(dsn, 2, 2 * args.rounds)
    device, attacker = devices
    ops = {"Authorization": f"Bearer {await _ops_token(dsn, device.festival_id)}"}
    script = _script(devices, tickets, accounts, 2 * args.rounds, time.time_ns() // 1_000_000)
    bodies = iter([body for body, _ in _streams(script, 1)[device.id]])
    auth = {"Authorization": f"Bearer {tokens[device.id]}", "Content-Type": "application/json"}
    devices_url = f"{Paths.ops_festival(device.festival_id)}/devices"
    slow_push = (push_head(tokens[attacker.id], 100_000) + b'{"events": [', b" ")
    trickle = (f"GET {devices_url} HTTP/1.1\r\n".encode(), b"X-Slow: 1\r\n")
    env = {f"FESTGATE_CENTRAL_{k.upper()}": str(v) for k, v in args.server.items()}
    with central_process(dsn, env) as url:
        attack = Attack(urlsplit(url).port or 0, args.every, args.pushers + args.tricklers)
        async with (
            httpx.AsyncClient(base_url=url, headers=PROTO | ops, timeout=30) as console,
            httpx.AsyncClient(base_url=url, headers=PROTO | auth, timeout=30) as dev,
        ):

            async def read() -> httpx.Response:
                return await console.get(devices_url)

            async def push() -> httpx.Response:
                return await dev.post(Paths.EVENTS, content=next(bodies))

            baseline = await _phase(args.rounds, read, push)
            clients = [slow_push] * args.pushers + [trickle] * args.tricklers
            under = await attack.during(clients, _phase(args.rounds, read, push))
    config = CentralConfig(**args.server)
    return {
        "pushers": args.pushers,
        "tricklers": args.tricklers,
        "rounds": args.rounds,
        "every_s": args.every,
        "server": {k: getattr(config, k) for k in _SHOWN},
        "baseline": baseline,
        "attack": under,
        **{
            f"{kind}_p99_ratio": round(under[kind]["p99_us"] / baseline[kind]["p99_us"], 2)
            for kind in ("ops_read", "push")
        },
        "attackers_cut": attack.cut,
        "database": "dsn" if os.environ.get("FESTGATE_BENCH_DSN") else "embedded",
        "cores": os.cpu_count(),
    }


_SHOWN = ("header_timeout_s", "body_timeout_s", "pool_max_size")  # central's, as it ran


def main(argv: list[str]) -> dict[str, Any]:
    """Run the slow-clients benchmark and return its figures (prints nothing)."""
    parser = argparse.ArgumentParser(prog="python -m bench slow-clients")
    parser.add_argument("--pushers", type=int, default=20, help="slow pushers")
    parser.add_argument("--tricklers", type=int, default=50, help="header tricklers")
    parser.add_argument("--rounds", type=int, default=200, help="ops reads and pushes per phase")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between trickled bytes")
    parser.add_argument("--header-timeout", type=float, help="central's header_timeout_s")
    parser.add_argument("--body-timeout", type=float, help="central's body_timeout_s")
    args = parser.parse_args(argv)
    if args.pushers < 0 or args.tricklers < 0 or args.rounds < 1 or args.every <= 0:
        parser.error("need pushers, tricklers >= 0, rounds >= 1, every > 0")
    given = {"header_timeout_s": args.header_timeout, "body_timeout_s": args.body_timeout}
    args.server = {k: v for k, v in given.items() if v is not None}
    with _database(os.environ.get("FESTGATE_BENCH_DSN")) as dsn:
        return asyncio.run(_run(args, dsn))
