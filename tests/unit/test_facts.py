"""The declarations of what each fact means, and the SQL generated from them, agree.

Every generated fragment is evaluated by SQLite over every kind and verdict and must say
what the Python functions say (PostgreSQL-only fragments: `tests/central/test_facts_sql.py`).
"""

from __future__ import annotations

import itertools
import sqlite3

import pytest

from sync import facts
from sync.catalog import AccountRow
from sync.facts import FACTS, BarCode, GateCode
from sync.hlc import pack
from sync.verdicts import Verdict
from sync.vocab import EventKind

ALL_VERDICTS = sorted({v for f in FACTS.values() for v in f.verdicts})
CASES = list(itertools.product(FACTS, ALL_VERDICTS))


def test_every_kind_is_declared_once_with_what_it_admits_among_what_it_may_say() -> None:
    assert set(FACTS) == set(EventKind)
    for fact in FACTS.values():
        assert set(fact.admitting) <= set(fact.verdicts), fact.kind
        assert (fact.side == "money") == (fact.sign != 0) == (fact.transaction is not None)
        assert (fact.side == "gate") == (fact.inside is not None) == (fact.access is not None)
    assert set(FACTS["entry"].verdicts) == set(GateCode)
    assert set(FACTS["exit"].verdicts) == set(GateCode) - {GateCode.OK_REENTRY}
    assert set(FACTS["sale"].verdicts) == set(BarCode)


def test_which_verdicts_admit() -> None:
    admitted = {(k, v) for k, v in CASES if facts.admits(k, v)}
    assert admitted == {
        ("entry", "ok"), ("entry", "ok_reentry"), ("exit", "ok"),
        ("sale", "approved"), ("topup", "approved"), ("refund", "approved"),
    }  # fmt: skip
    assert not facts.admits("nonsense", "ok")
    # A green light is any kind's admitting verdict.
    assert {c for c in set(GateCode) | set(BarCode) if Verdict(c).admits} == facts.ADMITTING
    assert {"ok", "ok_reentry", "approved"} == facts.ADMITTING


def test_ledger_signs() -> None:
    assert [facts.ledger_delta(k, 250) for k in ("sale", "topup", "refund")] == [-250, 250, 250]
    assert facts.SPENDING == ("sale", "refund")


def test_what_makes_a_row_unusable() -> None:
    assert [facts.ticket_bad(s) for s in ("SOLD", "USED", "CANCELLED", "REFUNDED", None)] == [
        None, None, "cancelled", "refunded", None
    ]  # fmt: skip
    assert (facts.block_bad("upsert"), facts.block_bad("delete")) == ("blocked", None)


def test_clock_skew() -> None:
    assert facts.clock_skew_ms(wall_ms=10_000, hlc=pack(10_000, 0), received_ms=9_000) == 1000
    assert facts.clock_skew_ms(wall_ms=1_000, hlc=pack(1_000, 0), received_ms=9_000_000) == 0
    assert facts.clock_skew_ms(1_000, pack(301_000, 3), 302_000) == -300_000


@pytest.fixture
def facts_table() -> sqlite3.Connection:
    """Every kind and verdict, with an amount, as rows SQLite can test."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE e (kind TEXT, verdict TEXT, amount INTEGER)")
    conn.executemany("INSERT INTO e VALUES (?, ?, 7)", CASES)
    return conn


@pytest.mark.parametrize("side", ["gate", "money"])
def test_admits_sql_says_what_admits_says(facts_table: sqlite3.Connection, side: str) -> None:
    rows = facts_table.execute(
        f"SELECT kind, verdict, {facts.admits_sql(side)}, {facts.admits_sql(side, 'e.')}"  # type: ignore[arg-type]
        f" FROM e WHERE {facts.sql_in('kind', facts.kinds(side))}"  # type: ignore[arg-type]
    ).fetchall()
    assert len(rows) == len(facts.kinds(side)) * len(ALL_VERDICTS)  # type: ignore[arg-type]
    for kind, verdict, plain, aliased in rows:
        assert bool(plain) == bool(aliased) == facts.admits(kind, verdict), (kind, verdict)


def test_money_sql_says_what_the_declarations_say(facts_table: sqlite3.Connection) -> None:
    rows = facts_table.execute(
        f"SELECT kind, {facts.delta_sql()}, {facts.debit_sql('e.')}, {facts.credit_sql()},"
        f" {facts.transaction_sql('e.', sep=chr(10))}, {facts.spends_sql('kind')}"
        f" FROM e WHERE {facts.sql_in('kind', facts.kinds('money'))} GROUP BY kind"
    ).fetchall()
    assert {r[0] for r in rows} == set(facts.MONEY_KINDS)
    for kind, delta, debit, credit, transaction, spends in rows:
        assert delta == facts.ledger_delta(kind, 7)
        assert debit == min(0, delta)
        assert bool(credit) == (delta > 0)
        assert transaction == FACTS[kind].transaction
        assert bool(spends) == FACTS[kind].spends


def test_access_sql_says_what_the_declarations_say(facts_table: sqlite3.Connection) -> None:
    rows = facts_table.execute(
        f"SELECT DISTINCT kind, {facts.access_sql()} FROM e"
        f" WHERE {facts.sql_in('kind', facts.kinds('gate'))}"
    ).fetchall()
    assert dict(rows) == {"entry": "ENTRY", "exit": "EXIT"}


def test_the_account_row_sql_has_the_rows_fields() -> None:
    fields = [f for f in AccountRow.model_fields if f != "seq"]
    json_sql = facts.account_json_sql("a.")
    assert [json_sql.find(f"'{f}', ") >= 0 for f in fields] == [True] * len(fields)
    text_sql = facts.account_text_sql("a.", "1")
    assert [text_sql.find(f'"{f}":') >= 0 for f in [*fields, "seq"]] == [True] * (len(fields) + 1)


def test_sql_literals_are_quoted() -> None:
    assert facts.sql_in("k", ["a'b"]) == "k = 'a''b'"
    assert facts.sql_in("k", ["a", "b"]) == "k IN ('a', 'b')"


def test_inside_sql_says_which_movement_leaves_a_ticket_inside(
    facts_table: sqlite3.Connection,
) -> None:
    rows = facts_table.execute(
        f"SELECT DISTINCT kind, {facts.inside_sql()} FROM e"
        f" WHERE {facts.sql_in('kind', facts.kinds('gate'))}"
    ).fetchall()
    assert {k: bool(v) for k, v in rows} == {k: FACTS[k].inside for k in facts.kinds("gate")}
