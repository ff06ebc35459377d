"""`python -m bench ingest --devices K --events N`: events/s central accepts, conflict checks on.

Path measured: a push body (JSON bytes) → ``PushRequest.model_validate_json`` →
``central.ingest.ingest_batch`` (store, apply, classify, publish, commit), called directly
(``--via direct``, the default) or through the real app in-process over httpx's ASGI
transport (``--via asgi``, adds auth and HTTP framing). Devices are half gates (entries and
exits, with some tickets scanned at two gates: duplicate-entry conflicts) and half bars
(sales, some wristbands overdrawn: overdraft conflicts). Every device pushes its backlog in
full batches of what a device sends at most (``--batch``, default `DEVICE_BATCH`: the sync
engine's push size), one push after the other on its own connection, all K devices at
once and independently (a device does not wait for the others' pushes, as real ones do
not); ``events_per_s`` is all events over the wall time from the first push to the last
ack, so it includes waiting on the festival's locks and the feed head.
``push_ms_p50``/``push_ms_p99`` are the latencies of single pushes. Every push is the whole
of ingest: stored once, applied (access log, ledger with balance before/after), classified,
published down, committed durably (synchronous_commit on).
The process runs with the server's garbage-collector settings (`central.server_gc.settle`,
as ``festgate-central serve`` does once started).
``python_cpu_share`` (direct path only: with ``--via asgi`` the process is client too) and
``server_cpu_share`` are the CPU seconds this process and the database server's processes
used while the devices pushed, over the wall time: cores busy on average, out of ``cores``.
The server's figure is read from /proc and given only when it runs on this host
(`bench.server_cpu`); their sum near ``cores`` says the run was bound by the machine's CPU.

Baseline in the same run and database: ``COPY`` of the same rows (read back from
``device_event``) into a plain table with no index or constraint, one transaction per
``--batch`` rows, as the pushes commit them; ``baseline_rows_per_s`` is the median over
those transactions and ``ratio`` = events_per_s / baseline_rows_per_s.

(Until issue 3's second ingest pass the devices pushed in lock-step rounds and the figure
was the median round; a round then ended with its slowest push while the others idled.
Until the third, every push and COPY transaction held MAX_BATCH rows, twice what a device
pushes: ``--batch 1000`` still measures that.)
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench import server_cpu
from central import pg, server_gc
from central.auth import DevicePrincipal
from central.enrol import create_enrol_code, enrol
from central.imports import import_tickets, import_wristbands
from central.ingest import ingest_batch
from central.sample import create_sample_festival
from config.vocab import Role
from sync.engine import SyncEngine
from sync.hlc import pack
from sync.ids import uuid7
from sync.protocol import MAX_BATCH, PushRequest

# Events per push a device sends at most (its sync engine's default batch).
DEVICE_BATCH: int = inspect.signature(SyncEngine).parameters["batch"].default

_BASELINE = """CREATE TABLE IF NOT EXISTS bench_copy (
    device_id uuid, device_seq bigint, event_id uuid, festival_id uuid, kind text,
    verdict text, hlc bigint, wall_ms bigint, catalog_seq bigint, payload jsonb,
    received_at timestamptz, skew_ms bigint, status text, reason text, ticket_id uuid,
    zone_id uuid, account_id uuid, amount bigint)"""


@contextmanager
def _database(given: str | None) -> Iterator[str]:
    """A fresh migrated database on the given server, or on an embedded one."""
    with (
        tempfile.TemporaryDirectory(prefix="festgate-bench-") as tmp,
        pg.fresh_database(given, Path(tmp), prefix="fg_bench") as dsn,
    ):
        pg.migrate(dsn)
        yield dsn


def _script(
    devices: list[DevicePrincipal],
    tickets: list[str],
    accounts: list[str],
    per_device: int,
    start_ms: int,
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Each device's events: gates admit/release tickets, bars sell; some overlap on purpose."""
    out: dict[uuid.UUID, list[dict[str, Any]]] = {}
    gates = [d for d in devices if d.role == "gate"]
    bars = [d for d in devices if d.role == "bar"]
    for gi, dev in enumerate(gates):
        events = []
        for i in range(per_device):
            slot = i // 2
            # Every 50th ticket is the same at every gate: duplicate entries.
            owner = gi if slot % 50 else 0
            ticket = tickets[(owner * (per_device // 2 + 1) + slot) % len(tickets)]
            kind = "entry" if i % 2 == 0 else "exit"
            events.append(
                _event(dev, i + 1, start_ms + i * 3 + gi, kind, "ok", {"ticket_id": ticket})
            )
        out[dev.id] = events
    for bi, dev in enumerate(bars):
        events = []
        for i in range(per_device):
            account = accounts[(bi * 7 + i) % len(accounts)]
            payload = {"account_id": account, "amount": 450}
            events.append(_event(dev, i + 1, start_ms + i * 3 + bi, "sale", "approved", payload))
        out[dev.id] = events
    return out


def _event(
    dev: DevicePrincipal, seq: int, at_ms: int, kind: str, verdict: str, payload: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": str(uuid7(at_ms)), "device_id": str(dev.id), "device_seq": seq,
        "hlc": pack(at_ms, 0), "wall_ms": at_ms, "catalog_seq": 0, "kind": kind,
        "verdict": verdict, "payload": payload,
    }  # fmt: skip


async def _setup(
    dsn: str, devices: int, per_device: int
) -> tuple[list[DevicePrincipal], dict[uuid.UUID, str], list[str], list[str]]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        fest = await create_sample_festival(conn, signed_tickets=1, opaque_tickets=0, wristbands=1)
        fid = fest.festival_id
        n_tickets = max(100, (devices // 2 + 1) * (per_device // 2 + 1) + 10)
        # Counter codes, weak by design: they never leave the bench.
        done = await import_tickets(
            conn, fid, [{"category": "Weekend", "code": f"B-{i}"} for i in range(n_tickets)],
            actor="bench", sign=False, accept_weak_codes=True,
        )  # fmt: skip
        issued = done.tickets
        n_accounts = max(50, per_device // 5)
        # Most wristbands hold plenty; one in twenty holds six drinks and gets overdrawn.
        wristbands = [
            {"tag_uid": f"0a{i:012x}", "balance": "2700" if i % 20 == 0 else "100000"}
            for i in range(n_accounts)
        ]
        accounts = await import_wristbands(conn, fid, wristbands, actor="bench")
        principals: list[DevicePrincipal] = []
        tokens: dict[uuid.UUID, str] = {}
        for i in range(devices):
            role = "gate" if i % 2 == 0 or devices == 1 else "bar"
            code = await create_enrol_code(
                conn, festival_id=fid, role=role,
                zone_id=fest.zone_id if role == "gate" else None,
                vendor_id=fest.vendor_id if role == "bar" else None, ttl_s=600,
            )  # fmt: skip
            got = await enrol(conn, code=code, name=f"bench-{i}")
            principals.append(
                DevicePrincipal(got.device_id, fid, Role(role), got.zone_id, got.vendor_id)
            )
            tokens[got.device_id] = got.token
    return principals, tokens, [str(t.ticket_id) for t in issued], [a.id for a in accounts]


Streams = dict[uuid.UUID, list[tuple[bytes, int]]]  # per device: (JSON body, event count)


@dataclass(frozen=True, slots=True)
class Drive:
    """What `_drive` measured: wall seconds, each push's latency, this process's and the
    database server's CPU seconds (None: not a server on this host)."""

    wall_s: float
    latencies: list[float]
    python_cpu_s: float
    server_cpu_s: float | None


Push = Callable[[uuid.UUID, bytes], Awaitable[None]]


def _streams(script: dict[uuid.UUID, list[dict[str, Any]]], size: int) -> Streams:
    """Each device's pushes, in order: its events cut into batches of `size`."""
    import json

    return {
        dev: [(json.dumps({"events": evs[i : i + size]}).encode(), len(evs[i : i + size]))
              for i in range(0, len(evs), size)]
        for dev, evs in script.items()
    }  # fmt: skip


async def _drive(streams: Streams, push: Push, server_pid: int | None) -> Drive:
    """Every device pushes its batches one after the other, all devices at once.

    Measures from the first push to the last answer (see `Drive`).
    """
    latencies: list[float] = []

    async def device(dev: uuid.UUID) -> None:
        for body, _ in streams[dev]:
            t0 = time.perf_counter()
            await push(dev, body)
            latencies.append(time.perf_counter() - t0)

    server0 = None if server_pid is None else server_cpu.process_tree_cpu_s(server_pid)
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(device(dev) for dev in streams))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    server1 = None if server_pid is None else server_cpu.process_tree_cpu_s(server_pid)
    server = None if server0 is None or server1 is None else server1 - server0
    return Drive(wall, latencies, cpu, server)


async def _run(args: argparse.Namespace, dsn: str) -> dict[str, Any]:
    per_device = max(1, args.events // args.devices)
    devices, tokens, tickets, accounts = await _setup(dsn, args.devices, per_device)
    # As autovacuum leaves a live database after an import: statistics on every table (the
    # empty ones say empty), so pushes run on plans made from them, not from defaults.
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("VACUUM ANALYZE")
    by_id = {d.id: d for d in devices}
    start_ms = time.time_ns() // 1_000_000
    streams = _streams(_script(devices, tickets, accounts, per_device, start_ms), args.batch)
    with psycopg.connect(dsn) as conn:
        server_pid = server_cpu.local_server_pid(conn)
    if args.via == "asgi":
        drive = await _via_asgi(dsn, streams, tokens, server_pid)
    else:
        drive = await _direct(dsn, streams, by_id, server_pid)
    total_s, latencies = drive.wall_s, sorted(drive.latencies)
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'applied') FROM device_event"
        )
        stored = await cur.fetchone()
        cur = await conn.execute("SELECT kind, count(*) FROM conflict GROUP BY kind ORDER BY kind")
        conflicts: dict[str, int] = dict(await cur.fetchall())
        baseline = await _baseline(conn, args.batch)
    events = sum(n for pushes in streams.values() for _, n in pushes)
    rate = events / total_s
    figures = {
        "via": args.via,
        "devices": args.devices,
        "events": events,
        "batch": args.batch,
        "pushes": len(latencies),
        "events_per_s": round(rate, 1),
        "push_ms_p50": round(1000 * latencies[len(latencies) // 2], 1),
        "push_ms_p99": round(
            1000 * latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)], 1
        ),
        "baseline_rows_per_s": round(baseline, 1),
        "ratio": round(rate / baseline, 3),
        "stored": stored[0] if stored else 0,
        "applied": stored[1] if stored else 0,
        "conflicts": conflicts,
        "server": "dsn" if os.environ.get("FESTGATE_BENCH_DSN") else "embedded",
    }
    if args.via == "direct":  # how much of the wall time this process was on a CPU
        figures["python_cpu_share"] = round(drive.python_cpu_s / total_s, 2)
    if drive.server_cpu_s is not None:  # the database server's processes, when on this host
        figures["server_cpu_share"] = round(drive.server_cpu_s / total_s, 2)
    figures["cores"] = os.cpu_count()
    return figures


async def _direct(
    dsn: str, streams: Streams, by_id: dict[uuid.UUID, DevicePrincipal], server_pid: int | None
) -> Drive:
    """Each device on its own connection, calling ingest directly."""
    conns = {d: await psycopg.AsyncConnection.connect(dsn) for d in by_id}

    async def push(dev: uuid.UUID, body: bytes) -> None:
        req = PushRequest.model_validate_json(body)
        now = time.time_ns() // 1_000_000
        await ingest_batch(conns[dev], by_id[dev], list(req.events), received_ms=now)

    server_gc.settle()  # as the server process does once started
    try:
        return await _drive(streams, push, server_pid)
    finally:
        for conn in conns.values():
            await conn.close()


async def _baseline(conn: psycopg.AsyncConnection[Any], size: int) -> float:
    """COPY the stored rows again, `size` per transaction, into a plain table: median rows/s."""
    await conn.execute(_BASELINE)
    await conn.commit()
    cur = await conn.execute(
        "SELECT device_id, device_seq, event_id, festival_id, kind, verdict, hlc, wall_ms,"
        " catalog_seq, payload::text, received_at, skew_ms, status, reason, ticket_id, zone_id,"
        " account_id, amount FROM device_event ORDER BY received_at, device_id, device_seq"
    )
    rows = await cur.fetchall()
    await conn.commit()
    rates = []
    for i in range(0, len(rows), size):
        chunk = rows[i : i + size]
        t0 = time.perf_counter()
        async with conn.cursor() as c, c.copy("COPY bench_copy FROM STDIN") as copy:
            for row in chunk:
                await copy.write_row(row)
        await conn.commit()
        rates.append(len(chunk) / (time.perf_counter() - t0))
    return statistics.median(rates)


async def _via_asgi(
    dsn: str, streams: Streams, tokens: dict[uuid.UUID, str], server_pid: int | None
) -> Drive:
    """The same pushes through the real app (auth, parsing, ErrorBody) over ASGI."""
    import httpx

    from central.app import create_app
    from config.central import CentralConfig
    from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, Paths

    pool = await pg.connect_pool(dsn, min_size=len(tokens), max_size=len(tokens) + 2)
    try:
        app = create_app(CentralConfig(), pool=pool)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://central") as client:

                async def push(dev: uuid.UUID, body: bytes) -> None:
                    headers = {
                        PROTOCOL_HEADER: str(PROTOCOL_VERSION),
                        "Authorization": f"Bearer {tokens[dev]}",
                        "content-type": "application/json",
                    }
                    resp = await client.post(Paths.EVENTS, content=body, headers=headers)
                    if resp.status_code != 200:
                        raise RuntimeError(f"push refused: {resp.status_code} {resp.text}")

                return await _drive(streams, push, server_pid)
    finally:
        await pool.close()


def main(argv: list[str]) -> dict[str, Any]:
    """Run the ingest benchmark and return its figures (prints nothing)."""
    parser = argparse.ArgumentParser(prog="python -m bench ingest")
    parser.add_argument("--devices", type=int, default=4, help="devices pushing (half gates)")
    parser.add_argument("--events", type=int, default=40_000, help="events in total")
    parser.add_argument(
        "--batch", type=int, default=DEVICE_BATCH, help="events per push (and per COPY)"
    )
    parser.add_argument("--via", choices=("direct", "asgi"), default="direct")
    args = parser.parse_args(argv)
    if not 1 <= args.batch <= MAX_BATCH or args.devices < 1 or args.events < 1:
        parser.error(f"need devices >= 1, events >= 1, 1 <= batch <= {MAX_BATCH}")
    with _database(os.environ.get("FESTGATE_BENCH_DSN")) as dsn:
        return asyncio.run(_run(args, dsn))
