"""The ingest bench's server CPU figure: the test's real PostgreSQL, found and read from /proc."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench import server_cpu

# Enough work for a backend to be on a CPU for several clock ticks.
_BURN = "SELECT count(*) FROM generate_series(1, 3000000)"


def test_finds_the_local_server_whose_backends_are_its_children(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        pid = server_cpu.local_server_pid(conn)
        rec = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert pid is not None and rec is not None
        # Read while the connection, so its backend, is still there.
        backend_stat = (Path("/proc") / str(rec[0]) / "stat").read_text()
    assert int(backend_stat.rsplit(")", 1)[1].split()[1]) == pid  # the backend's parent


def test_counts_a_backend_working_and_keeps_it_after_the_backend_exits(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        pid = server_cpu.local_server_pid(conn)
    assert pid is not None
    before = server_cpu.process_tree_cpu_s(pid)
    conn = psycopg.connect(pg_dsn)
    rec = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert rec is not None
    backend = rec[0]
    own0 = server_cpu.process_cpu_s(backend)
    conn.execute(_BURN)
    own1 = server_cpu.process_cpu_s(backend)
    during = server_cpu.process_tree_cpu_s(pid)
    conn.close()
    deadline = time.monotonic() + 10
    while (Path("/proc") / str(backend)).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    after = server_cpu.process_tree_cpu_s(pid)
    assert own0 is not None and own1 is not None
    assert before is not None and during is not None and after is not None
    # In clock ticks, the unit /proc counts in: seconds are ticks / TICKS_PER_S, and
    # differences of such floats can miss by a rounding error (0.57 - 0.24 < 0.33).
    used = _ticks(own1) - _ticks(own0)
    assert used > 0
    assert _ticks(during) - _ticks(before) >= used  # the running backend's time is in the sum
    assert _ticks(after) - _ticks(before) >= used  # and stays once the postmaster reaped it


def _ticks(seconds: float) -> int:
    return round(seconds * server_cpu.TICKS_PER_S)


def test_no_figure_for_a_process_that_is_not_there() -> None:
    gone = 2**22 + 1  # above the kernel's largest pid
    assert server_cpu.process_tree_cpu_s(gone) is None
    assert server_cpu.process_cpu_s(gone) is None


def test_no_figure_when_the_role_may_not_read_where_the_server_runs(pg_dsn: str) -> None:
    role = f"fg_plain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        try:
            with psycopg.connect(make_conninfo(pg_dsn, user=role, password="")) as plain:
                assert server_cpu.local_server_pid(plain) is None
                # The connection is still usable: the refused read was rolled back.
                assert plain.execute("SELECT 1").fetchone() == (1,)
        finally:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
