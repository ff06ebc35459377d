"""`python -m bench longpoll --connections C`: idle long-polls one central process holds.

Central runs as its own process (`bench.initial_sync.central_process`, configured as
``festgate-central serve`` configures it) over embedded PostgreSQL or the server named by
``FESTGATE_BENCH_DSN``. Setup, not measured: one festival and C enrolled devices. Each
device long-polls as the sync engine's pull loop does: ``GET /v1/sync/changes?after=<head>
&wait=30`` on its own kept-alive TCP connection, asking again at once when an answer comes
back empty, until one carries a change.

Figures: ``intake_s``, from the C requests sent until central had taken in every one
(a long-poll notes the device's ``last_seen_at`` before it waits; counted in the
database every half second, so to that resolution). Central's resident memory
(``VmRSS``) and open file descriptors before and once all C are parked;
``rss_per_connection_kib`` is the difference over C. Then, for ``--idle`` seconds with
every long-poll parked and nothing changing, the CPU central's process and the database
server kept busy (``idle``; a parked long-poll re-reads the feed once a second,
`central.api.longpoll.POLL_S`, one read shared by those asking the same page meanwhile,
and asks again every 30 s). Then one ops write (a ticket
cancelled) wakes them all: ``wake_all_s`` runs from its commit until the last of the C
answers carrying it arrived. ``errors`` counts answers other than 200 and connections
central closed or refused; ``repolls`` counts empty answers (a 30 s wait run out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.drain import CpuWatch, central_pid
from bench.ingest import _database, _setup
from bench.initial_sync import central_process
from central import feed
from central.tickets import cancel_ticket
from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, Paths

WAIT_S = 30  # central's longest long-poll (CentralConfig.max_wait_s)


def _memory(pid: int) -> tuple[int, int]:
    """(VmRSS in KiB, open file descriptors) of process `pid`."""
    proc = Path("/proc") / str(pid)
    for line in (proc / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]), len(os.listdir(proc / "fd"))
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Fleet:
    """C devices long-polling central's port; what their answers were."""

    port: int
    after: int
    errors: int = 0
    repolls: int = 0

    async def device(self, token: str) -> float | None:
        """Long-poll until an answer carries a change: when it arrived (None: it failed)."""
        request = (
            f"GET {Paths.CHANGES}?after={self.after}&wait={WAIT_S} HTTP/1.1\r\nHost: central"
            f"\r\n{PROTOCOL_HEADER}: {PROTOCOL_VERSION}\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            self.errors += 1
            return None
        try:
            while True:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200"):
                    self.errors += 1
                    return None
                if json.loads(body)["changes"]:
                    return time.perf_counter()
                self.repolls += 1
        except (OSError, asyncio.IncompleteReadError, StopIteration):
            self.errors += 1
            return None
        finally:
            writer.close()


async def _reached(dsn: str, festival_id: uuid.UUID) -> int:
    """Devices whose long-poll central has taken in (it notes `last_seen_at` first)."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM device WHERE festival_id = %s AND last_seen_at IS NOT NULL",
            (festival_id,),
        )
        rec = await cur.fetchone()
    return int(rec[0]) if rec else 0


async def _run(args: argparse.Namespace, dsn: str) -> dict[str, Any]:
    devices, tokens, _, _ = await _setup(dsn, args.connections, 1)
    fid = devices[0].festival_id
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        after = await feed.head(conn, fid)
        cur = await conn.execute("SELECT id FROM ticket WHERE festival_id = %s LIMIT 1", (fid,))
        rec = await cur.fetchone()
    if rec is None:
        raise RuntimeError("the festival has no ticket to cancel")
    with central_process(dsn) as url, CpuWatch.of(dsn) as cpu:
        pid = central_pid()
        if pid is None:
            raise RuntimeError("central's process not found among this one's children")
        fleet = Fleet(int(url.rsplit(":", 1)[1]), after)
        await asyncio.sleep(1.0)  # central's pool and feed listener are up
        rss0, fds0 = _memory(pid)
        t_sent = time.perf_counter()
        polls = [asyncio.create_task(fleet.device(tokens[d.id])) for d in devices]
        reached = 0
        while reached < args.connections and time.perf_counter() - t_sent < args.settle:
            await asyncio.sleep(0.5)
            reached = await _reached(dsn, fid)
        intake_s = time.perf_counter() - t_sent
        rss1, fds1 = _memory(pid)
        cpu.mark()
        await asyncio.sleep(args.idle)
        cpu.mark()
        idle = cpu.shares()
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            await cancel_ticket(conn, rec[0], actor="bench")
            await conn.commit()
        t_write = time.perf_counter()
        arrived = await asyncio.gather(*polls)
    woken = [at for at in arrived if at is not None]
    return {
        "bench": "longpoll",
        "connections": args.connections,
        "reached_central": reached,
        "intake_s": round(intake_s, 1),
        "rss_kib_before": rss0,
        "rss_kib_parked": rss1,
        "rss_per_connection_kib": round((rss1 - rss0) / args.connections, 1),
        "fds_before": fds0,
        "fds_parked": fds1,
        "idle_s": args.idle,
        "idle": idle,
        "wake_all_s": round(max(woken) - t_write, 3) if woken else None,
        "answered_with_change": len(woken),
        "errors": fleet.errors,
        "repolls": fleet.repolls,
        "cores": os.cpu_count(),
        "database": "dsn" if os.environ.get("FESTGATE_BENCH_DSN") else "embedded",
    }


def main(argv: list[str]) -> dict[str, Any]:
    """Run the long-poll benchmark and return its figures (prints nothing)."""
    parser = argparse.ArgumentParser(prog="python -m bench longpoll")
    parser.add_argument("--connections", type=int, default=2000, help="idle long-polls")
    parser.add_argument("--settle", type=float, default=60.0, help="most seconds to wait for all")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of CPU measured idle")
    args = parser.parse_args(argv)
    if args.connections < 1 or args.settle <= 0 or args.idle <= 0:
        parser.error("need connections >= 1, settle > 0, idle > 0")
    with _database(os.environ.get("FESTGATE_BENCH_DSN")) as dsn:
        return asyncio.run(_run(args, dsn))
