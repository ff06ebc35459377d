"""`python -m bench initial-sync --tickets N --accounts M`: empty device → ready, rows/s.

Central runs as its own process (uvicorn on loopback over embedded PostgreSQL, or the
server named by ``FESTGATE_BENCH_DSN``), holding a festival with N opaque-code tickets and
M wristband accounts loaded through the bulk import paths (setup, not measured). The
measured path is ``festgate init`` as it runs on a device: enrol with a one-time code, write
the credentials, stream the snapshot over real HTTP into one SQLite transaction, commit,
set the cursor, then one catch-up round on the change feed. ``seconds`` runs from the enrol
request to that round's end; ``rows_per_s`` = snapshot rows / ``seconds``. ``--runs``
devices are bootstrapped in turn from the same central; figures are medians over them.

Breakdown of the device loop's wall time (its parts add up): ``server_ttfb_s`` snapshot
request → header line; ``stream_s`` time the loop waited for the next line after it
(network, server, client parsing); ``validate_insert_s`` the rest until the end line: the
loop validating chunks and waiting for the writer thread, which inserts one chunk while
the loop reads and validates the next; ``commit_s`` end line → committed (index build, WAL
fsync, catalog reload); ``enrol_s`` and ``catch_up_s`` before and after. The checkpoint
that copies the loaded catalog from the WAL into the database file runs in the background
once the load has committed (as on a device): it overlaps the catch-up round and is not
in ``seconds``.
``device_cpu_s`` is the device process's CPU time over ``seconds`` (all its threads): on a
shared machine it moves less than the wall times do.

Baseline in the same run: the same rows (read back from the device's replica) bulk-inserted
into a fresh SQLite file with the device's schema and pragmas (WAL, synchronous=FULL),
``executemany`` in one transaction; ``ratio`` = rows_per_s / baseline_rows_per_s. A second
baseline does the same with the secondary indexes built after the load (as the device's
bootstrap does): ``ratio_vs_deferred_indexes``, the stricter comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from bench.ingest import _database
from central.enrol import create_enrol_code
from central.imports import import_tickets, import_wristbands
from central.sample import create_sample_festival
from config.vocab import Role
from edge.device import Device
from edge.schema import migrate
from edge.store import DB_NAME
from edge.sync_link import Credentials, engine_for, save_credentials
from sync.client import CentralClient, SnapshotStream
from sync.snapshot import SnapshotPart

_STAGES = ("enrol_s", "server_ttfb_s", "stream_s", "validate_insert_s", "commit_s", "catch_up_s")
_BATCH = 100_000  # rows per import transaction (setup)
_SERVE = """
import os, uvicorn
from pydantic import SecretStr
from central.app import create_app
from central.http_server import server_config
from config.central import CentralConfig
config = CentralConfig(dsn=SecretStr(os.environ["FESTGATE_BENCH_SERVE_DSN"]), host="127.0.0.1",
                       port=int(os.environ["FESTGATE_BENCH_SERVE_PORT"]))
uvicorn.Server(server_config(create_app(config), config, log_level="warning")).run()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def central_process(dsn: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Central's HTTP API in a process of its own on a loopback port; yields its base URL.
    `env` adds to the process's environment (``FESTGATE_CENTRAL_*`` settings)."""
    port = _free_port()
    env = os.environ | (env or {})
    env |= {"FESTGATE_BENCH_SERVE_DSN": dsn, "FESTGATE_BENCH_SERVE_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-c", _SERVE], env=env)  # noqa: S603 (our own code)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"central exited with {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("central did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _setup(dsn: str, tickets: int, accounts: int, runs: int) -> tuple[list[str], int]:
    """A festival with `tickets` opaque tickets and `accounts` wristbands; enrol codes."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        fest = await create_sample_festival(conn, signed_tickets=1, opaque_tickets=0, wristbands=1)
        fid = fest.festival_id
        for start in range(0, tickets, _BATCH):
            rows = [
                {"category": "Weekend", "code": f"IS-{i}"}
                for i in range(start, min(tickets, start + _BATCH))
            ]
            # Counter codes, weak by design: they never leave the bench.
            await import_tickets(conn, fid, rows, actor="bench", sign=False, accept_weak_codes=True)
        for start in range(0, accounts, _BATCH):
            bands = [
                {"tag_uid": f"0b{i:012x}", "balance": "5000"}
                for i in range(start, min(accounts, start + _BATCH))
            ]
            await import_wristbands(conn, fid, bands, actor="bench")
        codes = [
            await create_enrol_code(
                conn, festival_id=fid, role="gate", zone_id=fest.zone_id, vendor_id=None,
                ttl_s=3600,
            )
            for _ in range(runs)
        ]  # fmt: skip
        await conn.commit()
        # The snapshot's rows: replica rows, and the tables it reads directly (feed.OWN_ROWS).
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM replica_row WHERE festival_id = %(f)s)"
            " + (SELECT count(*) FROM cashless_account WHERE festival_id = %(f)s)"
            " + (SELECT count(*) FROM ticket_presence p JOIN zone z ON z.id = p.zone_id"
            "    WHERE z.festival_id = %(f)s)",
            {"f": fid},
        )
        rec = await cur.fetchone()
        return codes, int(rec[0]) if rec else 0


class _Timed:
    """Splits the snapshot's wall time into waiting on the stream and the device's work."""

    def __init__(self) -> None:
        self.t_request = 0.0
        self.t_first = 0.0
        self.t_end = 0.0
        self.stream_s = 0.0
        self.device_s = 0.0

    def wrap(self, client: CentralClient) -> None:
        inner = client.snapshot_parts

        async def timed(into: SnapshotStream) -> AsyncIterator[SnapshotPart]:
            self.t_request = time.perf_counter()
            parts = inner(into)
            back = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                self.device_s += t0 - back
                try:
                    part = await parts.__anext__()
                except StopAsyncIteration:
                    break
                back = time.perf_counter()
                if part.kind == "header":
                    self.t_first = back
                else:
                    self.stream_s += back - t0
                if part.kind == "end":
                    self.t_end = back
                yield part

        client.snapshot_parts = timed  # type: ignore[method-assign]


async def _init_device(url: str, code: str, data_dir: Path) -> dict[str, Any]:
    """What `festgate init` does, with the snapshot stream timed; returns the figures."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    device = await Device.open(data_dir, role=Role.GATE)
    try:
        async with CentralClient(url) as anonymous:
            got = await anonymous.enrol(code, "bench")
        creds = Credentials(central_url=url, **got.model_dump(mode="json"))
        await device.store.set_state("device_id", creds.device_id)
    finally:
        await device.close()
    save_credentials(data_dir, creds)
    device = await Device.open(data_dir, role=Role(creds.role), zone=creds.zone_id)
    timed = _Timed()
    try:
        async with CentralClient(url, token=creds.token) as client:
            timed.wrap(client)
            engine = engine_for(device, client)
            t_enrolled = time.perf_counter()
            rows = await engine.bootstrap()
            t_ready = time.perf_counter()
            await engine.sync_round()
            t_done = time.perf_counter()
        cursor = device.store.cursor
        counts = await device.store.table_counts()
    finally:
        await device.close()
    return {
        "rows": rows,
        "cursor": cursor,
        "counts": counts,
        "seconds": t_done - t0,
        "enrol_s": t_enrolled - t0,
        "server_ttfb_s": timed.t_first - timed.t_request,
        "stream_s": timed.stream_s,
        "validate_insert_s": timed.device_s,
        "commit_s": t_ready - timed.t_end,
        "catch_up_s": t_done - t_ready,
        "device_cpu_s": time.process_time() - cpu0,
    }


def _baseline(replica: Path, target: Path, *, defer_indexes: bool) -> tuple[int, float]:
    """Bulk-insert the replica's ticket and account rows into a fresh file: rows, seconds.

    With `defer_indexes`, the tables' secondary indexes are dropped first and rebuilt after
    the load inside the same transaction (what the device does while bootstrapping).
    """
    src = sqlite3.connect(replica)
    tables = {
        name: src.execute(f"SELECT * FROM {name}").fetchall() for name in ("ticket", "account")
    }
    src.close()
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    migrate(conn)
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('ticket', 'account')"
    ).fetchall()
    t0 = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    if defer_indexes:
        for name, _sql in indexes:
            conn.execute(f'DROP INDEX "{name}"')
    for name, rows in tables.items():
        if rows:
            marks = ", ".join("?" for _ in rows[0])
            conn.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
    if defer_indexes:
        for _name, sql in indexes:
            conn.execute(sql)
    conn.execute("COMMIT")
    seconds = time.perf_counter() - t0
    conn.close()
    return sum(len(r) for r in tables.values()), seconds


def main(argv: list[str]) -> dict[str, Any]:
    """Run the benchmark and return its figures (medians over `--runs` devices)."""
    parser = argparse.ArgumentParser(prog="python -m bench initial-sync")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3, help="devices bootstrapped in turn")
    args = parser.parse_args(argv)
    if args.tickets < 0 or args.accounts < 0 or args.runs < 1:
        parser.error("need tickets >= 0, accounts >= 0 and runs >= 1")
    runs: list[dict[str, Any]] = []
    with _database(os.environ.get("FESTGATE_BENCH_DSN")) as dsn:
        t0 = time.perf_counter()
        codes, catalog_rows = asyncio.run(_setup(dsn, args.tickets, args.accounts, args.runs))
        setup_s = time.perf_counter() - t0
        with central_process(dsn) as url:
            for code in codes:  # device, then both baselines, so load hits all alike
                with tempfile.TemporaryDirectory(prefix="festgate-bench-") as tmp:
                    data_dir = Path(tmp) / f"device-{uuid.uuid4().hex[:6]}"
                    got = asyncio.run(_init_device(url, code, data_dir))
                    replica = data_dir / DB_NAME
                    n, got["base_s"] = _baseline(replica, Path(tmp) / "b1", defer_indexes=False)
                    _, got["deferred_s"] = _baseline(replica, Path(tmp) / "b2", defer_indexes=True)
                    got["base_rows"] = n
                    runs.append(got)
    rows = runs[0]["rows"]
    seconds = statistics.median(r["seconds"] for r in runs)
    base_rows = runs[0]["base_rows"]
    base_rate = base_rows / statistics.median(r["base_s"] for r in runs)
    deferred_rate = base_rows / statistics.median(r["deferred_s"] for r in runs)
    rate = rows / seconds
    return {
        "bench": "initial-sync",
        "tickets": args.tickets,
        "accounts": args.accounts,
        "rows": rows,
        "catalog_rows_at_central": catalog_rows,
        "runs": args.runs,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rate, 1),
        "baseline_rows": base_rows,
        "baseline_rows_per_s": round(base_rate, 1),
        "ratio": round(rate / base_rate, 3),
        "baseline_deferred_indexes_rows_per_s": round(deferred_rate, 1),
        "ratio_vs_deferred_indexes": round(rate / deferred_rate, 3),
        "breakdown_s": {k: round(statistics.median(r[k] for r in runs), 3) for k in _STAGES},
        "device_cpu_s": round(statistics.median(r["device_cpu_s"] for r in runs), 3),
        "seconds_each": [round(r["seconds"], 2) for r in runs],
        "cursor": runs[-1]["cursor"],
        "setup_s": round(setup_s, 1),
        "server": "dsn" if os.environ.get("FESTGATE_BENCH_DSN") else "embedded",
    }
