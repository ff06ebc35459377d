"""Words central's schema spells in SQL are the ones declared once in Python."""

from __future__ import annotations

import re

import psycopg
import pytest

from central.auth import OpsRole
from config.vocab import Role


@pytest.mark.parametrize(
    ("table", "words"),
    [("ops_user", set(OpsRole)), ("device", set(Role)), ("enrol_code", set(Role))],
)
def test_role_checks_list_the_declared_roles(pg_dsn: str, table: str, words: set[str]) -> None:
    with psycopg.connect(pg_dsn) as conn:
        checks = conn.execute(
            "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c"
            " WHERE c.conrelid = %s::regclass AND c.contype = 'c'"
            " AND pg_get_constraintdef(c.oid) LIKE '%%role%%'",
            (table,),
        ).fetchall()
    assert len(checks) == 1
    assert set(re.findall(r"'([^']*)'", checks[0][0])) == {str(w) for w in words}
