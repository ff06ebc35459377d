"""Words central's schema spells in SQL are the ones declared once in Python."""

from __future__ import annotations

import re

import psycopg
import pytest

from central.auth import OpsRole
from config.vocab import Role
from sync.vocab import TransactionType


@pytest.mark.parametrize(
    ("table", "column", "words"),
    [
        ("ops_user", "role", set(OpsRole)),
        ("device", "role", set(Role)),
        ("enrol_code", "role", set(Role)),
        ("cashless_transaction", "type", set(TransactionType)),
    ],
)
def test_checks_list_the_declared_words(
    pg_dsn: str, table: str, column: str, words: set[str]
) -> None:
    with psycopg.connect(pg_dsn) as conn:
        checks = conn.execute(
            "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c"
            " WHERE c.conrelid = %s::regclass AND c.contype = 'c'"
            " AND pg_get_constraintdef(c.oid) LIKE %s",
            (table, f"%({column} = ANY%"),
        ).fetchall()
    assert len(checks) == 1
    assert set(re.findall(r"'([^']*)'", checks[0][0])) == {str(w) for w in words}
