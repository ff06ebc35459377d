"""The fields that identify a replicated row are declared once (`sync.catalog.key_fields`):
the device's tables are keyed by them, as central's change feed is."""

from __future__ import annotations

import sqlite3

from edge.replica import SPECS
from edge.schema import migrate
from sync.catalog import TABLES, key_fields


def test_each_device_table_is_keyed_by_the_declared_fields() -> None:
    conn = sqlite3.connect(":memory:")
    migrate(conn)
    for table, model in TABLES.items():
        info = conn.execute(f"PRAGMA table_info({table})").fetchall()
        primary = tuple(name for pk, name in sorted((r[5], r[1]) for r in info) if pk)
        assert primary == key_fields(table) == SPECS[table].key, table
        assert set(key_fields(table)) <= set(model.model_fields), table
