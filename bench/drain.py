"""`python -m bench drain --devices K --events-per-device N`: K devices' backlog after an outage.

Central runs as its own process, configured as ``festgate-central serve`` configures it
(``central.http_server``, via `bench.initial_sync.central_process`), over embedded
PostgreSQL or the server named by ``FESTGATE_BENCH_DSN``. Setup, not measured: one
festival, K + L enrolled devices (half gates, half bars), tickets and wristbands, and every
push body built in advance (`bench.ingest`'s scripts: entries and exits with some duplicate
entries, sales with some overdrafts), so the bench's Python spends its time on the wire.

The backlog is made of pre-built event batches pushed over the real HTTP API, as
`bench.ingest --via asgi` pushes them but through a socket, not real device journals
synced by the sync engine: filling 20 devices' SQLite journals with 100,000 real scans
costs 100,000 fsynced transactions and 20 snapshots before the first figure, and the
push loop (`SyncEngine.push_once`) sends exactly these requests, one batch of
`DEVICE_BATCH` events after the other with no pause, on the device's own connection.

Measured, in one run: L live devices push small batches (``--live-batch`` events every
``--live-every`` seconds, as devices that keep scanning push at once) for ``--before``
seconds, and at least until L pushes were answered (the baseline); then all K backlog
devices reconnect at once, each pushing its N events; the live devices go on until the
last backlog push is acknowledged. ``drain_s`` runs from the reconnection to that last
acknowledgement; ``events_per_s`` = K * N / ``drain_s``. ``live_before``/``live_during``
are the live pushes' latencies in ms (p50/p99/max): those that ended before the drain
began, and those in flight at any moment of it; ``backlog_pushes`` the same for the
backlog's pushes. Each counts the pushes that took longer than a device waits for an
answer (``device_timeout_s``, the sync client's default), which a real device would have
sent again; the bench waits instead. ``refused`` counts central's answers other than 200
by status (each push is then sent again after half a second); ``requests``,
``request_max_ms`` and ``requests_over_device_timeout`` count each try on its own, what a
device waits before it hears an answer. CPU shares are CPU seconds
over the drain's wall time (cores busy on average, out of ``cores``): central's process,
the database server's processes (when it runs on this host, `bench.server_cpu`) and this
process (the clients). ``stored``/``distinct`` count the backlog devices' rows in
``device_event`` after the drain: each event stored once is ``stored == distinct == K *
N``; ``conflicts`` are the festival's, by kind (the live gates scan some of the backlog's
tickets).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import server_cpu
from bench.ingest import DEVICE_BATCH, _database, _script, _setup, _streams
from bench.initial_sync import central_process
from bench.stats import percentile
from sync.client import CentralClient
from sync.protocol import MAX_BATCH, PROTOCOL_HEADER, PROTOCOL_VERSION, Paths, PushResponse

HOUR_MS = 3_600_000
# How long a device waits for central's answer to a push before it tries again.
DEVICE_TIMEOUT_S: float = inspect.signature(CentralClient).parameters["request_timeout_s"].default


def central_pid() -> int | None:
    """The pid of central's process that `central_process` started: a child of this one."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2 :].split()[1] == me and b"uvicorn.Server" in cmdline:
            return int(entry.name)
    return None


@dataclass
class CpuWatch:
    """CPU seconds of central's process, the database server and this process, between marks."""

    central: int | None
    database: int | None
    marks: list[tuple[float, float | None, float | None, float]] = field(default_factory=list)

    @classmethod
    @contextmanager
    def of(cls, dsn: str) -> Iterator[CpuWatch]:
        """Watch the central process started just before and the database behind `dsn`."""
        with psycopg.connect(dsn) as conn:
            database = server_cpu.local_server_pid(conn)
        yield cls(central_pid(), database)

    def mark(self) -> None:
        """Note the counters now."""
        c = None if self.central is None else server_cpu.process_cpu_s(self.central)
        d = None if self.database is None else server_cpu.process_tree_cpu_s(self.database)
        self.marks.append((time.perf_counter(), c, d, time.process_time()))

    def shares(self, start: int = -2, end: int = -1) -> dict[str, float]:
        """Cores each kept busy between two marks (the last two by default)."""
        (t0, c0, d0, p0), (t1, c1, d1, p1) = self.marks[start], self.marks[end]
        wall = t1 - t0
        out = {"bench_cpu_share": round((p1 - p0) / wall, 2)}
        if c0 is not None and c1 is not None:
            out["central_cpu_share"] = round((c1 - c0) / wall, 2)
        if d0 is not None and d1 is not None:
            out["server_cpu_share"] = round((d1 - d0) / wall, 2)
        return out


def headers(token: str) -> dict[str, str]:
    """A device's request headers: protocol version and its bearer token."""
    return {
        PROTOCOL_HEADER: str(PROTOCOL_VERSION),
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
    }


RETRY_S = 0.5  # pause before a refused push goes again (a device backs off longer)


@dataclass
class Pushes:
    """Pushes of a group of devices: each one's start and latency, and central's refusals.

    A push central refuses (a status other than 200, e.g. 503 when it found no ingest turn
    or no pooled connection within `pool_timeout_s`) is counted by status and sent again,
    as a device sends it again; its latency runs from the first try to the acknowledgement."""

    took: list[tuple[float, float]] = field(default_factory=list)  # (start, seconds)
    refused: dict[int, int] = field(default_factory=dict)
    requests: list[tuple[float, float]] = field(default_factory=list)  # each try: (start, s)

    async def push(self, client: httpx.AsyncClient, body: bytes, last_seq: int) -> float:
        """Push `body` until central acknowledges `last_seq`; return the seconds it took."""
        t0 = time.perf_counter()
        while True:
            sent = time.perf_counter()
            resp = await client.post(Paths.EVENTS, content=body)
            self.requests.append((sent, time.perf_counter() - sent))
            if resp.status_code == 200:
                break
            self.refused[resp.status_code] = self.refused.get(resp.status_code, 0) + 1
            await asyncio.sleep(RETRY_S)
        acked = PushResponse.model_validate_json(resp.content).acked_through
        if acked < last_seq:
            raise RuntimeError(f"central acknowledged through {acked}, not {last_seq}")
        took = time.perf_counter() - t0
        self.took.append((t0, took))
        return took

    def phase(self, t0: float, t1: float, *, overlapping: bool) -> dict[str, float | int]:
        """p50/p99/max ms of the pushes that overlapped [t0, t1] (or ran within it), and
        how many took longer than a device waits for an answer (it would try again)."""

        def within(spans: list[tuple[float, float]]) -> list[float]:
            return [
                s
                for start, s in spans
                if (
                    start < t1 and start + s > t0
                    if overlapping
                    else t0 <= start and start + s <= t1
                )
            ]

        took, tries = within(self.took), within(self.requests)
        if not took:
            raise RuntimeError("no push in a phase; lengthen --before or the backlog")
        return {
            "pushes": len(took),
            "p50_ms": round(percentile(took, 0.50) * 1000, 1),
            "p99_ms": round(percentile(took, 0.99) * 1000, 1),
            "max_ms": round(max(took) * 1000, 1),
            "over_device_timeout": sum(s > DEVICE_TIMEOUT_S for s in took),
            # Each request on its own (a refused one is answered, then sent again): what a
            # device waits before it hears anything.
            "requests": len(tries),
            "request_max_ms": round(max(tries) * 1000, 1),
            "requests_over_device_timeout": sum(s > DEVICE_TIMEOUT_S for s in tries),
        }


@dataclass
class Live(Pushes):
    """Devices that keep scanning: a small push every `every_s` until told to stop."""

    every_s: float = 0.5
    need: int = 1  # answered pushes that make a baseline: `warm` is set once there are
    warm: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def device(self, client: httpx.AsyncClient, bodies: list[tuple[bytes, int]]) -> None:
        """Push one body per tick until told to stop (a late push goes at once, no catch-up)."""
        seq = 0
        for body, n in bodies:
            if self.stop.is_set():
                return
            seq += n
            took = await self.push(client, body, seq)
            if len(self.took) >= self.need:
                self.warm.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), max(0.0, self.every_s - took))
        raise RuntimeError("a live device ran out of events; raise --live-events")


async def _backlog(
    pushes: Pushes, client: httpx.AsyncClient, bodies: list[tuple[bytes, int]]
) -> float:
    """Push a device's whole backlog, one batch after the other; return when the last was acked."""
    seq = 0
    for body, n in bodies:
        seq += n
        await pushes.push(client, body, seq)
    return time.perf_counter()


async def _run(args: argparse.Namespace, dsn: str) -> dict[str, Any]:
    k, live_n = args.devices, args.live
    devices, tokens, tickets, accounts = await _setup(dsn, k + live_n, args.events_per_device)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("VACUUM ANALYZE")  # as autovacuum leaves a live database
    backlog, live = devices[:k], devices[k:]
    now = time.time_ns() // 1_000_000
    # The backlog was scanned during the outage, an hour ago; the live devices scan now.
    old = _streams(_script(backlog, tickets, accounts, args.events_per_device, now - HOUR_MS),
                   args.batch)  # fmt: skip
    new = _streams(_script(live, tickets, accounts, args.live_events, now), args.live_batch)
    watch, drained = Live(every_s=args.live_every, need=live_n), Pushes()
    limits = httpx.Limits(max_connections=1)  # a device has one connection to central
    with central_process(dsn) as url, CpuWatch.of(dsn) as cpu:
        clients = {
            d.id: httpx.AsyncClient(base_url=url, headers=headers(tokens[d.id]), timeout=120,
                                    limits=limits)
            for d in devices
        }  # fmt: skip
        try:
            tasks = [asyncio.create_task(watch.device(clients[d.id], new[d.id])) for d in live]
            t_live = time.perf_counter()
            await asyncio.sleep(args.before)
            await watch.warm.wait()  # the baseline has L pushes, however slow they were
            cpu.mark()
            t0 = time.perf_counter()
            ends = await asyncio.gather(
                *(_backlog(drained, clients[d.id], old[d.id]) for d in backlog)
            )
            t1 = max(ends)
            cpu.mark()
            watch.stop.set()
            await asyncio.gather(*tasks)
        finally:
            for client in clients.values():
                await client.aclose()
    ids = [d.id for d in backlog]
    stored, distinct, conflicts = await _count(dsn, ids)
    events = sum(n for d in ids for _, n in old[d])
    drain_s = t1 - t0
    before = watch.phase(t_live, t0, overlapping=False)
    during = watch.phase(t0, t1, overlapping=True)
    return {
        "bench": "drain",
        "backlog": "pre-built batches over HTTP",
        "devices": k,
        "events_per_device": args.events_per_device,
        "events": events,
        "batch": args.batch,
        "live_devices": live_n,
        "live_batch": args.live_batch,
        "live_every_s": args.live_every,
        "drain_s": round(drain_s, 2),
        "events_per_s": round(events / drain_s, 1),
        "live_before": before,
        "live_during": during,
        "backlog_pushes": drained.phase(t0, t1, overlapping=False),
        "device_timeout_s": DEVICE_TIMEOUT_S,
        "refused": {str(k): v for k, v in sorted((watch.refused | drained.refused).items())},
        "live_p99_ratio": round(float(during["p99_ms"]) / max(float(before["p99_ms"]), 0.1), 2),
        **cpu.shares(),
        "cores": os.cpu_count(),
        "stored": stored,
        "distinct": distinct,
        "conflicts": conflicts,
        "database": "dsn" if os.environ.get("FESTGATE_BENCH_DSN") else "embedded",
    }


async def _count(dsn: str, devices: list[uuid.UUID]) -> tuple[int, int, dict[str, int]]:
    """Rows the backlog devices have in device_event, distinct event ids among them, and
    the festival's conflicts by kind."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM device_event WHERE device_id = ANY(%s)",
            (devices,),
        )
        rec = await cur.fetchone()
        cur = await conn.execute("SELECT kind, count(*) FROM conflict GROUP BY kind ORDER BY kind")
        conflicts: dict[str, int] = dict(await cur.fetchall())
    return (int(rec[0]) if rec else 0), (int(rec[1]) if rec else 0), conflicts


def main(argv: list[str]) -> dict[str, Any]:
    """Run the drain benchmark and return its figures (prints nothing)."""
    parser = argparse.ArgumentParser(prog="python -m bench drain")
    parser.add_argument("--devices", type=int, default=20, help="devices reconnecting at once")
    parser.add_argument("--events-per-device", type=int, default=5_000, help="each one's backlog")
    parser.add_argument("--batch", type=int, default=DEVICE_BATCH, help="events per backlog push")
    parser.add_argument("--live", type=int, default=4, help="devices scanning meanwhile")
    parser.add_argument("--live-batch", type=int, default=2, help="events per live push")
    parser.add_argument(
        "--live-every", type=float, default=0.5, help="seconds between pushes (0: back to back)"
    )
    parser.add_argument(
        "--live-events", type=int, default=4_000, help="events each live device holds"
    )
    parser.add_argument("--before", type=float, default=5.0, help="seconds of live pushes first")
    args = parser.parse_args(argv)
    if (
        args.devices < 1 or args.events_per_device < 1 or args.live < 1 or args.live_batch < 1
        or not 1 <= args.batch <= MAX_BATCH or args.live_every < 0 or args.before <= 0
        or args.live_events < args.live_batch
    ):  # fmt: skip
        parser.error(
            f"need devices, events, live, live-batch >= 1, 1 <= batch <= {MAX_BATCH},"
            " live-every >= 0, before > 0, live-events >= live-batch"
        )
    with _database(os.environ.get("FESTGATE_BENCH_DSN")) as dsn:
        return asyncio.run(_run(args, dsn))
