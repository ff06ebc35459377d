"""The device's SQL says what a fact means as `sync.facts` declares it.

The replica's migrations are frozen (`edge.schema.MIGRATIONS`); each fragment in them that
says what a fact means (`edge.schema.FACT_FRAGMENTS`) must be what the declarations generate
now, in the migrated database too, and the scan path's lookup must test what the index
tests, or SQLite stops using the index for it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge import journal, schema, store
from sync import facts


def _migrated(tmp_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "replica.sqlite3", isolation_level=None)
    schema.migrate(conn)
    return conn


def test_each_frozen_fragment_is_what_the_declarations_generate(tmp_path: Path) -> None:
    conn = _migrated(tmp_path)
    try:
        for name, fragment in schema.FACT_FRAGMENTS.items():
            rows = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchall()
            assert rows, name
            assert fragment in rows[0][0], (
                f"{name} no longer says {fragment!r}: sync/facts.py changed a declaration the "
                "device's schema froze; add a migration step to edge/schema.py"
            )
            assert fragment in schema.MIGRATIONS[0]
    finally:
        conn.close()


def test_the_scan_lookup_uses_the_admitted_movements_index(tmp_path: Path) -> None:
    conn = _migrated(tmp_path)
    try:
        for sql in (store._GATE_BY_ID, store._GATE_BY_HASH):
            assert facts.sql_in("j.verdict", facts.GATE_ADMITTING) in sql
            plan = conn.execute(
                f"EXPLAIN QUERY PLAN {sql}", {"ticket_id": "t", "code_hash": "h", "zone": "z"}
            ).fetchall()
            assert any("journal_ticket" in str(row[-1]) for row in plan), plan
    finally:
        conn.close()


def test_the_offline_allowance_counts_what_the_trigger_counts() -> None:
    """The trigger that adds to `spent` and the statement that takes reflected events off it
    test the same kinds."""
    assert schema.FACT_FRAGMENTS["journal_pending_account"] == facts.spends_sql("NEW.kind")
    reflect = next(s for s in journal.REFLECT_SQL if "'spent'" in s)
    assert facts.spends_sql("j.kind") in reflect
    assert set(facts.SPENDING) == {"sale", "refund"}
