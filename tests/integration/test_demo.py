"""`festgate-demo`, short: real central, real daemons, camera and NFC simulators.

It runs the command as a user would (a fresh database on the test server), reads the JSON
report it prints last, and checks the story's conflicts and that no event was lost or
duplicated between the devices' journals and central.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_short_demo_surfaces_the_conflicts_and_loses_no_event(
    pg_admin_dsn: str,
    tmp_path: Path,
) -> None:
    command = [sys.executable, "-m", "festdemo.cli", "--gates", "3", "--bars", "2"]
    command += ["--attendees", "16", "--minutes", "0.35", "--seed", "7", "--dsn", pg_admin_dsn]
    command += ["--work-dir", str(tmp_path / "demo"), "--json"]
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=170, cwd=ROOT, check=False
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr[-4000:]
    report = json.loads(lines[-1])
    assert proc.returncode == 0, proc.stderr[-4000:] + _stack_dumps(tmp_path / "demo")
    assert report["ok"] is True
    counts = report["conflict_counts"]
    assert counts.get("duplicate_entry", 0) >= 1
    assert counts.get("overdraft", 0) >= 1
    assert counts.get("stale_catalog", 0) >= 1
    rec = report["reconciliation"]
    assert rec["ok"] is True
    assert rec["journaled"] == rec["at_central"] > 0
    for name, device in rec["devices"].items():
        assert device["missing"] == device["extra"] == device["journal_gaps"] == [], name
    stories = report["stories"]
    assert [s.split()[-1] for s in stories["clone"]] == ["ok", "ok"]
    assert stories["forged"] == ["gate-1 entry forged"]
    assert stories["cancelled"] == ["gate-1 entry cancelled"]
    assert stories["wrong_zone"] == ["gate-3 entry wrong_zone"]
    both = {c["kind"]: c["facts"] for c in report["conflicts"]}
    duplicate = both["duplicate_entry"]
    assert {duplicate["stands"]["device"], duplicate["flagged"]["device"]} == {"gate-1", "gate-2"}
    assert report["totals"]["sales_approved"] >= 2
    assert report["daemon_problems"] == []


def _stack_dumps(work_dir: Path) -> str:
    """The thread stacks a daemon killed for not stopping wrote to its log (SIGUSR1)."""
    dumps = []
    for log in sorted(work_dir.glob("devices/*/daemon.log")):
        text = log.read_text(errors="replace")
        at = text.find("Thread 0x")
        if at >= 0:
            dumps.append(f"\n--- {log.parent.name} ---\n{text[max(0, at - 2000) :]}")
    return "".join(dumps)
