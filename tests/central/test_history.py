"""The identity of the history central serves, read from PostgreSQL (`central.history`)."""

from __future__ import annotations

import logging
import uuid

import pytest
from psycopg import AsyncConnection, sql

from central import history


async def test_the_history_is_the_cluster_the_database_and_the_timeline(pg_dsn: str) -> None:
    async with await AsyncConnection.connect(pg_dsn) as conn:
        cur = await conn.execute(
            "SELECT (SELECT system_identifier FROM pg_control_system()),"
            " (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        rec = await cur.fetchone()
        assert rec is not None
        identity = await history.read(conn)
        assert await history.read(conn) == identity  # the same while nothing is restored
    system, database, timeline = identity.split(".")
    assert (int(system), int(database)) == (rec[0], rec[1])
    assert int(timeline) >= 1


async def test_a_role_refused_the_control_functions_still_tells_the_database(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    role = sql.Identifier(f"festgate_history_{uuid.uuid4().hex[:8]}")
    async with await AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        # In this test's database only: a function's privileges are the database's own.
        for function in ("pg_control_system()", "pg_walfile_name(pg_lsn)"):
            await conn.execute(f"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC")
        await conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(role))
        try:
            await conn.execute(sql.SQL("SET ROLE {}").format(role))
            with caplog.at_level(logging.WARNING, logger=history.__name__):
                identity = await history.read(conn)
        finally:
            await conn.execute("RESET ROLE")
            await conn.execute(sql.SQL("DROP ROLE {}").format(role))
        cur = await conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()")
        rec = await cur.fetchone()
    assert rec is not None
    assert identity == f"?.{rec[0]}.?"
    refused = [r.getMessage() for r in caplog.records]
    assert len(refused) == 2
    assert all("GRANT EXECUTE" in line for line in refused)
