"""edge-decide: QR text → verdict committed to the journal, with N tickets cached.

Baseline, same run, same machine, same SQLite settings (WAL, synchronous=FULL): a bare
sqlite3 connection doing the ticket lookup, the journal insert and the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from edge.device import Device
from edge.sample import build_sample
from edge.store import DB_NAME
from sync import hashing, ticketcode
from sync.vocab import Role, TicketType


def _fill(db: Path, festival: dict[str, Any], category_id: str, n: int, seed: int) -> list[str]:
    """Insert n sold tickets straight into the replica (setup, not measured); return their ids."""
    rng = random.Random(seed)
    key = bytes.fromhex(festival["hash_key"])
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.execute("DELETE FROM ticket")
    conn.executemany(
        "INSERT INTO ticket VALUES (?, ?, ?, 'SOLD', ?, 0, 0, 1)",
        (
            (tid, festival["id"], category_id, hashing.code_hash(key, f"EXT-{i}").hex())
            for i, tid in enumerate(ids)
        ),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return ids


async def _measure_device(data_dir: Path, codes: list[str]) -> list[float]:
    device = await Device.open(data_dir, role=Role.GATE, zone="General")
    try:
        for code in codes[:200]:  # warm caches and the connection
            await device.scan(code, exit=True)
        timings = []
        for code in codes:
            start = time.perf_counter()
            result = await device.scan(code)
            timings.append(time.perf_counter() - start)
            if not result.verdict.admits:
                raise RuntimeError(f"benchmark ticket refused: {result.verdict.code}")
        return timings
    finally:
        await device.close()


def _measure_baseline(db: Path, ids: list[str]) -> list[float]:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = FULL")
    seq = conn.execute("SELECT coalesce(max(device_seq), 0) FROM journal").fetchone()[0]
    timings = []
    for tid in ids:
        start = time.perf_counter()
        row = conn.execute(
            "SELECT id, status, category_id, code_version FROM ticket WHERE id = ?", (tid,)
        ).fetchone()
        seq += 1
        conn.execute(
            "INSERT INTO journal (device_seq, event_id, kind, verdict, hlc, wall_ms,"
            " catalog_seq, payload, ticket_id, zone_id, delta)"
            " VALUES (?, ?, 'entry', 'ok', ?, ?, 1, ?, ?, 'z', 1)",
            (seq, str(uuid.uuid4()), seq, seq, json.dumps({"ticket_id": row[0]}), row[0]),
        )
        timings.append(time.perf_counter() - start)
    conn.close()
    return timings


def main(argv: list[str]) -> dict[str, Any]:
    """Run the benchmark and return its figures."""
    parser = argparse.ArgumentParser(prog="python -m bench edge-decide")
    parser.add_argument("--tickets", type=int, default=1_000_000, help="tickets cached")
    parser.add_argument("--scans", type=int, default=3000, help="scans measured per kind")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    now = int(time.time())
    sample = build_sample(seed=args.seed, now=now, tickets=8)
    assert sample.signer is not None
    festival = sample.snapshot.tables["festival"][0]
    category_id = str(
        next(
            c["id"] for c in sample.snapshot.tables["category"] if c["type"] == TicketType.STANDARD
        )
    )
    with tempfile.TemporaryDirectory(prefix="festgate-bench-") as tmp:
        data = Path(tmp) / "device"

        async def load() -> None:
            device = await Device.open(data, role=Role.GATE, zone="General")
            await device.store.apply_snapshot(sample.snapshot)
            await device.close()

        asyncio.run(load())
        t0 = time.perf_counter()
        ids = _fill(data / DB_NAME, festival, category_id, args.tickets, args.seed)
        fill_s = time.perf_counter() - t0
        rng = random.Random(args.seed)
        picks = rng.sample(range(args.tickets), min(args.tickets, 2 * args.scans + 200))
        signed_picks, opaque_picks = picks[: args.scans + 200], picks[args.scans + 200 :]
        signed = [
            ticketcode.encode(
                sample.signer, key_id=1, festival_id=uuid.UUID(str(festival["id"])),
                ticket_id=uuid.UUID(ids[i]), ticket_type=TicketType.STANDARD,
            )
            for i in signed_picks
        ]  # fmt: skip
        opaque = [f"EXT-{i}" for i in opaque_picks]
        baseline_db = Path(tmp) / "baseline.sqlite3"
        shutil.copyfile(data / DB_NAME, baseline_db)
        # Interleave kinds so that disk and cache state affect both sides alike.
        baseline = _measure_baseline(baseline_db, [ids[i] for i in signed_picks[200:]])
        signed_t = asyncio.run(_measure_device(data, signed))
        opaque_t = asyncio.run(_measure_device(data, opaque[: len(opaque)]))
    from bench.stats import summary_us

    ours, theirs, opq = summary_us(signed_t), summary_us(baseline), summary_us(opaque_t)
    return {
        "bench": "edge-decide",
        "tickets": args.tickets,
        "scans": args.scans,
        "setup_fill_s": round(fill_s, 1),
        "signed": ours,
        "opaque": opq,
        "baseline_bare_sqlite3": theirs,
        "p50_us": ours["p50_us"],
        "p99_us": ours["p99_us"],
        "verdicts_per_s": ours["per_s"],
        "ratio_p50_vs_baseline": round(ours["p50_us"] / theirs["p50_us"], 2),
        "ratio_p99_vs_baseline": round(ours["p99_us"] / theirs["p99_us"], 2),
    }
