"""What a fact means is said once (`sync.facts`): central's SQL is what it generates.

Migrations freeze the text they were written with; migration 0009 must hold what the
declarations generate now, and the migrated database's views, function and index must be
the generated ones (compared by PostgreSQL's own rendering of each). Ingest's statements
are built from the same generators, never spelled out.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from central import events
from sync import facts
from sync.hlc import pack

ROOT = Path(__file__).resolve().parents[2]
_0009 = importlib.import_module("central.migrations.versions.0009_facts_once")


def test_migration_0009_holds_what_the_declarations_generate() -> None:
    assert events.FACT_VIEWS.lstrip("\n") == _0009.SCHEMA, (
        "sync/facts.py no longer generates the SQL migration 0009 froze: write a new "
        "migration whose SCHEMA is central.events.FACT_VIEWS (migrations are history)"
    )


def _statements(text: str) -> dict[str, str]:
    """The views' queries and the function's body in FACT_VIEWS, by name."""
    out = {
        m[1]: m[2] for m in re.finditer(r"CREATE OR REPLACE VIEW (\w+) AS\n(.*?);\n", text, re.S)
    }
    body = re.search(r"FUNCTION (\w+)\(.*?AS \$\$(.*?)\$\$", text, re.S)
    assert body is not None
    out[body[1]] = body[2]
    return out


def test_the_migrated_database_defines_what_the_declarations_generate(pg_dsn: str) -> None:
    """Each view as PostgreSQL renders it equals a view made now from the generated text;
    the function's body and the unusable-row index's predicate likewise."""
    generated = _statements(events.FACT_VIEWS)
    assert set(generated) == {"zone_access_log", "cashless_entry", "pushed_effects"}
    with psycopg.connect(pg_dsn) as conn:
        for name in ("zone_access_log", "cashless_entry"):
            conn.execute(f"CREATE TEMP VIEW fresh_{name} AS {generated[name]}")
            live, fresh = conn.execute(
                "SELECT pg_get_viewdef(%s::regclass), pg_get_viewdef(%s::regclass)",
                (name, f"fresh_{name}"),
            ).fetchone() or ("", "")
            assert live == fresh, name
        (body,) = conn.execute(
            "SELECT prosrc FROM pg_proc WHERE proname = 'pushed_effects'"
        ).fetchone() or ("",)
        assert body == generated["pushed_effects"]
        # The index ingest's `unusable_sql` tests rely on (migration 0007): the planner uses
        # it only while its predicate is the generated one.
        conn.execute(
            "CREATE INDEX fresh_unusable ON change_feed (festival_id, key)"
            f" WHERE {facts.unusable_sql()}"
        )
        live, fresh = conn.execute(
            "SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname IN ('change_feed_unusable_idx', 'fresh_unusable')"
            " ORDER BY c.relname = 'fresh_unusable'"
        ).fetchall()
        assert live == fresh
        conn.rollback()


def test_ingest_statements_are_built_from_the_declarations() -> None:
    assert events.ADMITS_GATE.endswith(facts.admits_sql("gate"))
    assert events.ADMITS_MONEY.endswith(facts.admits_sql("money"))
    for statement in (events.STORE, events.STORE_FRESH):
        assert facts.skew_sql("wall_ms", "hlc", "%(recv)s") in statement
        assert facts.sql_in("verdict", facts.GATE_ADMITTING) in statement
        assert facts.sql_in("verdict", facts.MONEY_ADMITTING) in statement
        assert facts.sql_in("r->>2", facts.kinds("money")) in statement
    assert {k: frozenset(f.verdicts) for k, f in facts.FACTS.items()} == events.VERDICTS_BY_KIND


# Spellings of a fact's meaning that only `sync.facts` may hold (outside frozen migrations).
_SPELLED = [
    r"['\"]ok_reentry['\"]",  # an admitting verdict
    r"verdict\s*(=|==|!=|<>)\s*['\"](ok|approved)['\"]",
    r"kind\s*(=|==|!=|<>)\s*['\"]sale['\"]\s*THEN\s*-",  # a ledger sign
    r"-\s*\w*\.?amount\s+if\s+\w*\.?kind\s*==",
    r">>\s*16\)\)?\s*(ELSE|END)",  # the skew formula's HLC read
    r"'CANCELLED',\s*'REFUNDED'",  # what makes a ticket unusable
    r"TicketStatus\.(CANCELLED|REFUNDED)\b",
    r"(?m)(^|[(,=]|return)\s*-(total|delta|amount)\b",  # a ledger sign, by hand
    r"kind\s*(=|==)\s*['\"]entry['\"]",  # what leaves a ticket inside
    r"'balance', \w*\.?balance|\"balance\":' \|\|",  # the account row's JSON
]
_USERS = [
    "sync/verdicts.py",
    "central/conflicts.py",
    "central/candidates.py",
    "central/conflict_store.py",
    "central/settle.py",
    "central/feed.py",
    "central/events.py",
    "central/conflict_view.py",
    "central/reports.py",
    "central/rollups.py",
    "central/console/pages/now.py",
    "edge/decide.py",
    "edge/device.py",
    "edge/schema.py",
    "edge/store.py",
    "edge/journal.py",
    "festdemo/view.py",
]


@pytest.mark.parametrize("path", _USERS)
def test_no_module_spells_what_a_fact_means(path: str) -> None:
    text = (ROOT / path).read_text()
    if path == "edge/schema.py":  # its migrations are frozen history (`FACT_FRAGMENTS`)
        text = text[text.index("SCHEMA_VERSION") :]
    found = [p for p in _SPELLED if re.search(p, text)]
    assert not found, f"{path} spells {found}: import it from sync.facts"


def test_the_skew_and_unusable_sql_say_what_python_says(pg_dsn: str) -> None:
    """PostgreSQL evaluates the generated skew formula and unusable-row test like Python."""
    clocks = [(10_000, pack(10_000, 0), 9_000), (1_000, pack(1_000, 0), 9_000_000),
              (1_000, pack(301_000, 3), 302_000), (5, pack(5, 0), 5),
              (0, pack(7, 1), 3)]  # fmt: skip
    rows: list[tuple[str, dict[str, Any]]] = [
        ("block", {}), ("ticket", {"status": "SOLD", "code_version": 0}),
        ("ticket", {"status": "CANCELLED"}), ("ticket", {"status": "REFUNDED"}),
        ("ticket", {"status": "USED", "code_version": 2}), ("zone", {"status": "CANCELLED"}),
        ("ticket", {"status": "SOLD", "code_version": 10}),
    ]  # fmt: skip
    with psycopg.connect(pg_dsn) as conn:
        skews = conn.execute(
            f"SELECT {facts.skew_sql('w', 'h', 'r')} FROM unnest(%s::bigint[], %s::bigint[],"
            " %s::bigint[]) WITH ORDINALITY AS x(w, h, r, o) ORDER BY o",
            ([c[0] for c in clocks], [c[1] for c in clocks], [c[2] for c in clocks]),
        ).fetchall()
        unusable = conn.execute(
            f"SELECT {facts.unusable_sql('f.')} FROM unnest(%s::text[], %s::jsonb[])"
            " WITH ORDINALITY AS f(table_name, row, o) ORDER BY o",
            ([r[0] for r in rows], [Jsonb(r[1]) for r in rows]),
        ).fetchall()
    assert [s for (s,) in skews] == [facts.clock_skew_ms(*c) for c in clocks]
    expected = [
        t == "block"
        or (t == "ticket" and (facts.ticket_bad(r.get("status")) is not None
                               or r.get("code_version", 0) > 0))
        for t, r in rows
    ]  # fmt: skip
    assert [u for (u,) in unusable] == expected
