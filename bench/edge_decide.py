"""edge-decide: QR text → verdict committed to the journal, with N tickets cached.

Three kinds of scan, interleaved: ``signed`` (the headline: a signed code of a cached
ticket, checked against central's keyed hash of it), ``opaque`` (an outside system's code,
found by keyed hash) and ``signed_unsynced`` (a ticket sold since the last sync: not in the
replica, so its Ed25519 signature is verified).

Baseline, same run, same machine, same SQLite settings (WAL, synchronous=FULL): a bare
sqlite3 connection running the device's own lookup query (ticket, block list, presence,
this device's last movement, pending occupancy), the same journal insert and the commit,
so the ratio is what the device's code costs beyond SQLite. ``baseline_pk_lookup`` reads
only the ticket row by primary key instead, for comparison.
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

from config.vocab import Role
from edge.device import Device
from edge.journal import _INSERT as _JOURNAL_INSERT
from edge.sample import build_sample
from edge.store import _GATE_BY_ID, DB_NAME
from sync import hashing, ticketcode
from sync.catalog import Change
from sync.vocab import TicketType


def _ids(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def _fill(
    db: Path, festival: dict[str, Any], category_id: str, ids: list[str], codes: dict[int, str]
) -> None:
    """Insert sold tickets straight into the replica (setup, not measured).

    Each ticket carries central's keyed hash of its current code: the signed code given in
    `codes` for its index, else the opaque code ``EXT-<index>``.
    """
    key = bytes.fromhex(festival["hash_key"])
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.execute("DELETE FROM ticket")
    conn.executemany(
        "INSERT INTO ticket VALUES (?, ?, ?, 'SOLD', ?, 0, 0, 1)",
        (
            (tid, festival["id"], category_id, hashing.code_hash(key, code).hex())
            for i, tid in enumerate(ids)
            for code in (codes.get(i, f"EXT-{i}"),)
        ),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


BLOCK = 50  # scans per turn: device and baselines alternate, so machine load hits all alike


class _Baseline:
    """Bare sqlite3 on a copy of the same file: the lookup, the journal insert, the commit.

    ``scan`` runs the device's own lookup query and journal insert (the same-run baseline);
    ``scan_pk`` a bare primary-key read of the ticket instead, for comparison.
    """

    def __init__(self, db: Path, zone_id: str) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None)
        self.conn.execute("PRAGMA synchronous = FULL")
        self.zone_id = zone_id
        self.seq = self.conn.execute("SELECT coalesce(max(device_seq), 0) FROM journal").fetchone()[
            0
        ]

    def _insert(self, tid: str) -> None:
        self.seq += 1
        payload = {"zone_id": self.zone_id, "code_kind": "signed", "ticket_id": tid}
        self.conn.execute(
            _JOURNAL_INSERT,
            (self.seq, str(uuid.uuid4()), "entry", "ok", self.seq, self.seq, 1,
             json.dumps(payload), tid, self.zone_id, None, 1),
        )  # fmt: skip

    def scan(self, tid: str) -> float:
        start = time.perf_counter()
        self.conn.execute(_GATE_BY_ID, {"zone": self.zone_id, "ticket_id": tid}).fetchall()
        self._insert(tid)
        return time.perf_counter() - start

    def scan_pk(self, tid: str) -> float:
        start = time.perf_counter()
        self.conn.execute(
            "SELECT id, status, category_id, code_version FROM ticket WHERE id = ?", (tid,)
        ).fetchone()
        self._insert(tid)
        return time.perf_counter() - start


async def _measure(
    data_dir: Path, baseline_db: Path, kinds: dict[str, list[str]], ids: dict[str, list[str]]
) -> dict[str, list[float]]:
    """Time each kind of code through the device, interleaved with the baselines in blocks."""
    device = await Device.open(data_dir, role=Role.GATE, zone="General")
    zone = device.catalog.find_zone("General")
    assert zone is not None
    baseline = _Baseline(baseline_db, zone.id)
    timings: dict[str, list[float]] = {kind: [] for kind in [*kinds, "baseline", "baseline_pk"]}
    try:
        for codes in kinds.values():
            for code in codes[:BLOCK]:  # warm caches and the connection
                await device.scan(code, exit=True)
        turns = max(len(c) for c in kinds.values())
        order = [*kinds, "baseline", "baseline_pk"]
        for turn, first in enumerate(range(BLOCK, turns, BLOCK)):
            # Rotate who goes first each turn: the first block after another file's commits
            # pays for the switch, and no kind should always be the one paying.
            shift = turn % len(order)
            for name in order[shift:] + order[:shift]:
                if name == "baseline":
                    for tid in ids[name][first : first + BLOCK]:
                        timings[name].append(baseline.scan(tid))
                elif name == "baseline_pk":
                    for tid in ids[name][first : first + BLOCK]:
                        timings[name].append(baseline.scan_pk(tid))
                else:
                    for code in kinds[name][first : first + BLOCK]:
                        start = time.perf_counter()
                        result = await device.scan(code)
                        timings[name].append(time.perf_counter() - start)
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
    signer = sample.signer
    assert signer is not None
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
        per_kind = args.scans + BLOCK
        # Tickets sold after the device's last sync: signed, valid, not in the replica.
        ids = _ids(args.tickets + per_kind, args.seed)
        unsynced = range(args.tickets, args.tickets + per_kind)
        rng = random.Random(args.seed)
        picks = rng.sample(range(args.tickets), min(args.tickets, 2 * per_kind))
        signed_picks, opaque_picks = picks[:per_kind], picks[per_kind:]

        def sign(i: int) -> str:
            return ticketcode.encode(
                signer, key_id=1, festival_id=uuid.UUID(str(festival["id"])),
                ticket_id=uuid.UUID(ids[i]), ticket_type=TicketType.STANDARD,
            )  # fmt: skip

        signed = {i: sign(i) for i in signed_picks}
        t0 = time.perf_counter()
        _fill(data / DB_NAME, festival, category_id, ids[: args.tickets], signed)
        fill_s = time.perf_counter() - t0
        kinds = {
            "signed": list(signed.values()),
            "opaque": [f"EXT-{i}" for i in opaque_picks],
            "signed_unsynced": [sign(i) for i in unsynced],
        }
        baseline_db = Path(tmp) / "baseline.sqlite3"
        shutil.copyfile(data / DB_NAME, baseline_db)
        runs = asyncio.run(
            _measure(data, baseline_db, kinds, {"baseline": [ids[i] for i in signed_picks],
                                                "baseline_pk": [ids[i] for i in opaque_picks]})
        )  # fmt: skip
    from bench.stats import summary_us

    ours, theirs = summary_us(runs["signed"]), summary_us(runs["baseline"])
    return {
        "bench": "edge-decide",
        "tickets": args.tickets,
        "scans": args.scans,
        "setup_fill_s": round(fill_s, 1),
        "signed": ours,
        "opaque": summary_us(runs["opaque"]),
        "signed_unsynced": summary_us(runs["signed_unsynced"]),
        "baseline_bare_sqlite3": theirs,
        "baseline_pk_lookup": summary_us(runs["baseline_pk"]),
        "p50_us": ours["p50_us"],
        "p99_us": ours["p99_us"],
        "verdicts_per_s": ours["per_s"],
        "ratio_p50_vs_baseline": round(ours["p50_us"] / theirs["p50_us"], 2),
        "ratio_p99_vs_baseline": round(ours["p99_us"] / theirs["p99_us"], 2),
    }
