"""The demo's live view counts what took effect as `sync.facts` says, not by verdict alone."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

from rich.console import Console

from edge.schema import migrate
from festdemo.view import DeviceView, live_table

# (kind, verdict) journaled by one gate: three movements took effect, two did not. An exit
# never carries ok_reentry (central refuses it); the view counted it admitted by its verdict.
JOURNAL = [("entry", "ok"), ("entry", "ok_reentry"), ("exit", "ok"),
           ("entry", "already_inside"), ("exit", "ok_reentry")]  # fmt: skip


def test_the_live_view_counts_admissions_by_kind_and_verdict(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "replica.sqlite3", isolation_level=None)
    migrate(conn)
    conn.executemany(
        "INSERT INTO journal (device_seq, event_id, kind, verdict, hlc, wall_ms, catalog_seq,"
        " payload) VALUES (?, ?, ?, ?, 0, 0, 0, '{}')",
        [(n, f"e{n}", kind, verdict) for n, (kind, verdict) in enumerate(JOURNAL, 1)],
    )
    conn.close()
    gate = DeviceView("gate-1", "gate", "Main", tmp_path, "d1")
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(live_table("running", 1.0, [gate], {"events": 0, "conflicts": {}}))
    (row,) = [line for line in console.export_text().splitlines() if "gate-1" in line]
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[4:6] == ["3", "2"]  # admitted, refused
