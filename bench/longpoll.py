"""`python -m bench longpoll --connections C`: idle long-polls one central process holds.

Central runs as its own process (`bench.initial_sync.central_process`, configured as
``festgate-central serve`` configures it) over embedded PostgreSQL or the server named by
``FESTGATE_BENCH_DSN``. Setup, not measured: one festival and C enrolled devices (each
device long-polls on its own connection, as a fleet's devices do).

Measured: central's resident memory (``VmRSS``) and open file descriptors before the
long-polls and once all C are parked (``GET /v1/sync/changes?after=<head>&wait=30``, each
on its own TCP connection); ``rss_per_connection_kib`` is the difference over C. Then,
for ``--idle`` seconds with every long-poll parked and nothing changing, the CPU that
central's process and the database server kept busy (a parked long-poll re-reads the feed
once a second, `central.api.longpoll.POLL_S`). Then one ops write (a ticket cancelled)
wakes them all: ``wake_all_s`` runs from its commit until the last of the C answers
arrived, and ``answered_with_change`` counts answers that carried the change.
``reached_central`` counts the devices central had taken a long-poll in from (it notes
each device's ``last_seen_at`` before it waits) when the memory was read;
``answered_early`` counts long-polls that ended before the write (refused, or timed out):
with a figure above 0, central could not hold C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.drain import CpuWatch, central_pid
from bench.ingest import _database, _setup
from bench.initial_sync import central_process
from central import feed
from central.tickets import cancel_ticket
from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION

WAIT_S = 30  # central's longest long-poll (CentralConfig.max_wait_s)


def _memory(pid: int) -> tuple[int, int]:
    """(VmRSS in KiB, open file descriptors) of process `pid`."""
    proc = Path("/proc") / str(pid)
    for line in (proc / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]), len(os.listdir(proc / "fd"))
    raise RuntimeError(f"no VmRSS for {pid}")


async def _long_poll(port: int, token: str, after: int) -> tuple[float, dict[str, Any] | None]:
    """One long-poll on its own connection: (when its answer arrived, the answer or None)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET /v1/sync/changes?after={after}&wait={WAIT_S} HTTP/1.1\r\nHost: central\r\n"
            f"{PROTOCOL_HEADER}: {PROTOCOL_VERSION}\r\nAuthorization: Bearer {token}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        raw = await reader.read()  # central closes after its answer (Connection: close)
        at = time.perf_counter()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    ok = head.startswith(b"HTTP/1.1 200")
    return at, json.loads(body) if ok else None


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
        port = int(url.rsplit(":", 1)[1])
        await asyncio.sleep(1.0)  # central's pool and feed listener are up
        rss0, fds0 = _memory(pid)
        t_sent = time.perf_counter()
        polls = [asyncio.create_task(_long_poll(port, tokens[d.id], after)) for d in devices]
        await asyncio.sleep(args.settle)
        early = sum(p.done() for p in polls)
        rss1, fds1 = _memory(pid)
        parked = await _reached(dsn, fid)
        cpu.mark()
        await asyncio.sleep(args.idle)
        cpu.mark()
        idle = cpu.shares()
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            await cancel_ticket(conn, rec[0], actor="bench")
            await conn.commit()
        t_write = time.perf_counter()
        answers = await asyncio.gather(*polls)
        parked_s = t_write - t_sent
    changed = sum(1 for _, got in answers if got and got["changes"])
    return {
        "bench": "longpoll",
        "connections": args.connections,
        "rss_kib_before": rss0,
        "rss_kib_parked": rss1,
        "rss_per_connection_kib": round((rss1 - rss0) / args.connections, 1),
        "fds_before": fds0,
        "fds_parked": fds1,
        "idle_s": args.idle,
        "idle": idle,
        "wake_all_s": round(max(at for at, _ in answers) - t_write, 3),
        "answered_with_change": changed,
        "answered_early": early,
        "reached_central": parked,
        "parked_for_s": round(parked_s, 1),
        "cores": os.cpu_count(),
        "database": "dsn" if os.environ.get("FESTGATE_BENCH_DSN") else "embedded",
    }


async def _reached(dsn: str, festival_id: Any) -> int:
    """Devices whose long-poll central has taken in (it notes `last_seen_at` first)."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM device WHERE festival_id = %s AND last_seen_at IS NOT NULL",
            (festival_id,),
        )
        rec = await cur.fetchone()
    return int(rec[0]) if rec else 0


def main(argv: list[str]) -> dict[str, Any]:
    """Run the long-poll benchmark and return its figures (prints nothing)."""
    parser = argparse.ArgumentParser(prog="python -m bench longpoll")
    parser.add_argument("--connections", type=int, default=2000, help="idle long-polls")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds for all to park")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of CPU measured idle")
    args = parser.parse_args(argv)
    if args.connections < 1 or args.settle <= 0 or args.idle <= 0:
        parser.error("need connections >= 1, settle > 0, idle > 0")
    if args.settle + args.idle > WAIT_S - 5:
        parser.error(f"settle + idle must leave the long-polls ({WAIT_S} s) time to be woken")
    with _database(os.environ.get("FESTGATE_BENCH_DSN")) as dsn:
        return asyncio.run(_run(args, dsn))
