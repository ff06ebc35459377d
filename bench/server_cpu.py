"""CPU seconds a PostgreSQL server on this host has used, read from /proc (Linux).

A benchmark reads it before and after its timed part to tell whether the run was bound by
the machine's cores or by waiting (on locks, on the disk). The server is found from a
connection: its data directory holds ``postmaster.pid``, and the postmaster runs in that
directory, which tells a server on this host from one elsewhere that happens to name a path
that exists here. A server that cannot be seen this way (remote, another container, no
/proc, no right to read its settings) gives None: no figure rather than a wrong one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg

_PROC = Path("/proc")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")  # /proc counts CPU time in these


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds process `pid` itself has used (user and system), or None if it is gone."""
    fields = _stat_fields(pid)
    # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    return None if fields is None else (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def process_tree_cpu_s(pid: int) -> float | None:
    """CPU seconds of process `pid`, its children that have exited and those running now.

    A child's time moves into its parent's ``cutime`` when it exits and is reaped, so the
    sum changes smoothly as a server's backends come and go.
    """
    own = _stat_fields(pid)
    if own is None:
        return None
    ticks = sum(int(own[i]) for i in (11, 12, 13, 14))  # see `process_cpu_s`
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and int(fields[1]) == pid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / TICKS_PER_S


def local_server_pid(conn: psycopg.Connection[Any]) -> int | None:
    """The postmaster's pid if the server behind `conn` runs on this host, else None."""
    try:
        rec = conn.execute("SELECT current_setting('data_directory')").fetchone()
    except psycopg.Error:  # not allowed to read it: no figure
        conn.rollback()
        return None
    if rec is None:
        return None
    data_dir = Path(rec[0])
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        running_in = Path(os.readlink(_PROC / str(pid) / "cwd"))
    except (OSError, ValueError, IndexError):
        return None
    # The data directory may be reached through a symlink on one side.
    return pid if running_in.resolve() == data_dir.resolve() else None
