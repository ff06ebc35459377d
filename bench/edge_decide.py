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
from sync.catalog import Change
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


BLOCK = 50  # scans per turn: device and baseline alternate, so machine load hits both alike


class _Baseline:
    """Bare sqlite3 on a copy of the same file: the lookup, the journal insert, the commit."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None)
        self.conn.execute("PRAGMA synchronous = FULL")
        self.seq = self.conn.execute("SELECT coalesce(max(device_seq), 0) FROM journal").fetchone()[
            0
        ]

    def scan(self, tid: str) -> float:
        start = time.perf_counter()
        row = self.conn.execute(
            "SELECT id, status, category_id, code_version FROM ticket WHERE id = ?", (tid,)
        ).fetchone()
        self.seq += 1
        self.conn.execute(
            "INSERT INTO journal (device_seq, event_id, kind, verdict, hlc, wall_ms,"
            " catalog_seq, payload, ticket_id, zone_id, delta)"
            " VALUES (?, ?, 'entry', 'ok', ?, ?, 1, ?, ?, 'z', 1)",
            (self.seq, str(uuid.uuid4()), self.seq, self.seq, json.dumps({"ticket_id": row[0]}),
             row[0]),
        )  # fmt: skip
        return time.perf_counter() - start


async def _measure(
    data_dir: Path, baseline_db: Path, kinds: dict[str, list[str]], ids: list[str]
) -> dict[str, list[float]]:
    """Time each kind of code through the device, interleaved with the baseline in blocks."""
    device = await Device.open(data_dir, role=Role.GATE, zone="General")
    baseline = _Baseline(baseline_db)
    timings: dict[str, list[float]] = {kind: [] for kind in [*kinds, "baseline"]}
    try:
        for codes in kinds.values():
            for code in codes[:BLOCK]:  # warm caches and the connection
                await device.scan(code, exit=True)
        turns = max(len(c) for c in kinds.values())
        for first in range(BLOCK, turns, BLOCK):
            for tid in ids[first : first + BLOCK]:
                timings["baseline"].append(baseline.scan(tid))
            for kind, codes in kinds.items():
                for code in codes[first : first + BLOCK]:
                    start = time.perf_counter()
                    result = await device.scan(code)
                    timings[kind].append(time.perf_counter() - start)
                    if not result.verdict.admits:
                        raise RuntimeError(f"benchmark ticket refused: {result.verdict.code}")
        return timings
    finally:
        baseline.conn.close()
        await device.close()


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
            # Keep the capacity check on the path, with room for every measured entry.
            zone = device.catalog.find_zone("General")
            assert zone is not None
            row = zone.model_dump(mode="json") | {"capacity": 10 * args.tickets}
            await device.store.apply_changes(
                [Change(seq=sample.snapshot.seq + 1, table="zone", row=row)]
            )
            await device.close()

        asyncio.run(load())
        t0 = time.perf_counter()
        ids = _fill(data / DB_NAME, festival, category_id, args.tickets, args.seed)
        fill_s = time.perf_counter() - t0
        rng = random.Random(args.seed)
        picks = rng.sample(range(args.tickets), min(args.tickets, 2 * (args.scans + BLOCK)))
        signed_picks, opaque_picks = picks[: args.scans + BLOCK], picks[args.scans + BLOCK :]
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
        runs = asyncio.run(
            _measure(data, baseline_db, {"signed": signed, "opaque": opaque},
                     [ids[i] for i in signed_picks])
        )  # fmt: skip
    from bench.stats import summary_us

    ours, opq, theirs = (summary_us(runs[k]) for k in ("signed", "opaque", "baseline"))
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
