"""Bulk load of a snapshot into the replica: the writer thread inserts while the loop validates.

`replace_catalog` empties the catalog tables and fills them from a snapshot stream, inside
the caller's transaction (`edge.store.Store.apply_snapshot_parts` opens and commits it).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from functools import cache
from itertools import chain
from typing import Any

import aiosqlite

from edge.replica import SPECS, TableSpec, validate_rows
from sync.snapshot import RawRows, SnapshotPart

# Page cache while a snapshot loads (KiB), then back to SQLite's default.
_BOOTSTRAP_CACHE_KIB = 64 * 1024
# While the load's secondary indexes are rebuilt: a page cache this small (KiB) caps the
# sorter's in-memory runs (SQLite sizes them by cache_size), so with helper threads the
# runs are sorted and merged on the second core while the table scan goes on (central is
# idle by then): 1.25 s → 0.7 to 0.9 s for a million code hashes. The load's dirty pages
# spill to the WAL as the commit would have written them.
_INDEX_CACHE_KIB = 4 * 1024
_INDEX_THREADS = 2
_DEFAULT_CACHE = -2000


@cache
def _max_params() -> int:
    """Parameters SQLite takes per statement (32766 since 3.32, 999 before)."""
    probe = sqlite3.connect(":memory:")
    try:
        return probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    finally:
        probe.close()


# Called on the first value of every bootstrap INSERT (see BulkWriter).
_BOUND_FN = "festgate_bootstrap_bound"
# Rows per bootstrap INSERT at most (a whole chunk as central sends them): the statement's
# text stays far below SQLite's default 1 MB limit.
_MAX_ROWS = 4096


class BulkWriter:
    """Inserts a snapshot's chunks on the writer thread, one at a time, each overlapped with
    the event loop reading and validating the next chunk.

    sqlite3 binds parameters holding the GIL and lets go of it while SQLite steps. A
    chunk's rows go in as one multi-row INSERT, so the writer thread needs the GIL once per
    chunk, not once per row; and the loop waits until that binding is done (the first
    value passes through `_BOUND_FN`) before it validates the next chunk, else the woken
    writer would queue for the GIL behind that whole validation and nothing would overlap.
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.loop = asyncio.get_running_loop()
        self.inflight: asyncio.Task[None] | None = None
        self._bound: asyncio.Future[None] | None = None
        self._sql: dict[tuple[str, int], str] = {}

    async def start(self) -> None:
        """Register the binding signal on the writer connection."""
        await self.conn.create_function(_BOUND_FN, 1, self._on_bound)

    def _on_bound(self, value: Any) -> Any:
        # Writer thread, parameters bound, statement running: wake the loop.
        bound = self._bound
        if bound is not None:
            self.loop.call_soon_threadsafe(_resolve, bound)
        return value

    def _insert_sql(self, spec: TableSpec, rows: int) -> str:
        sql = self._sql.get((spec.name, rows))
        if sql is None:
            first = ", ".join([f"{_BOUND_FN}(?)", *("?" for _ in spec.columns[1:])])
            other = ", ".join("?" for _ in spec.columns)
            values = ", ".join([f"({first})", *(f"({other})" for _ in range(rows - 1))])
            sql = f"INSERT INTO {spec.name} ({', '.join(spec.columns)}) VALUES {values}"
            self._sql[(spec.name, rows)] = sql
        return sql

    async def put(self, spec: TableSpec, params: list[tuple[Any, ...]]) -> None:
        """Start inserting a validated chunk once the previous one is in; return when it runs."""
        await self.settle()
        bound = self._bound = self.loop.create_future()
        self.inflight = asyncio.ensure_future(self._insert(spec, params))
        self.inflight.add_done_callback(lambda _: _resolve(bound))
        await bound

    async def _insert(self, spec: TableSpec, params: list[tuple[Any, ...]]) -> None:
        # As few statements as SQLite's limits allow: one for a chunk as central sends it.
        width = len(spec.columns)
        per = max(1, min(len(params), _max_params() // width, _MAX_ROWS))
        flat = list(chain.from_iterable(params))
        whole = len(params) - len(params) % per
        step = per * width
        if whole == len(params) == per:
            await self.conn.execute(self._insert_sql(spec, per), flat)
        elif whole:
            batches = [flat[i : i + step] for i in range(0, whole * width, step)]
            await self.conn.executemany(self._insert_sql(spec, per), batches)
        if whole < len(params):
            rest = len(params) - whole
            await self.conn.execute(self._insert_sql(spec, rest), flat[whole * width :])

    async def settle(self) -> None:
        """Wait for the chunk in flight; its error (a repeated key) is raised here."""
        inflight, self.inflight = self.inflight, None
        if inflight is not None:
            await inflight

    def abandon(self) -> None:
        """Stop the chunk in flight before a rollback is queued behind it.

        The writer thread runs requests in the order they are queued, and a cancelled
        insert queues nothing more: a rollback queued after this call runs after all of
        the insert's SQL, so no row can land outside the transaction.
        """
        inflight, self.inflight = self.inflight, None
        if inflight is None:
            return
        if not inflight.done():
            inflight.cancel()
        elif not inflight.cancelled():
            inflight.exception()  # seen: the caller raises the error that stopped the load


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _snapshot_params(spec: TableSpec, part: SnapshotPart) -> list[tuple[Any, ...]]:
    """Validated parameters of one snapshot chunk (parsed and checked in one pass if raw)."""
    rows = part.rows
    if isinstance(rows, RawRows):
        params = validate_rows(spec, rows.raw)
        if len(params) != rows.total:
            raise ValueError(f"{spec.name}: chunk says {rows.total} rows, holds {len(params)}")
        return params
    return validate_rows(spec, rows)


async def replace_catalog(
    conn: aiosqlite.Connection, parts: AsyncIterator[SnapshotPart]
) -> tuple[int, int]:
    """Replace every catalog table's rows with a snapshot stream's, inside the transaction
    open on `conn`; returns the rows loaded and the snapshot's seq. A repeated key raises
    sqlite3.IntegrityError; a stream without its end line or festival row, ValueError.

    Bulk-load shape: the catalog tables' secondary indexes are dropped first and rebuilt
    (sorted, in one pass each) after the last row, instead of taking a million random
    inserts each; a larger page cache holds the load until the index rebuild (a threaded
    sort, see `_INDEX_CACHE_KIB`) and the caller's commit, after which `after_load` puts
    it back. Each chunk goes in as one multi-row INSERT on the writer thread while the next
    is read and validated (`BulkWriter`); on any error the chunk in flight is stopped
    before this returns, so the caller's rollback runs after all of its SQL.
    """
    count, seq, festival_rows = 0, None, 0
    tables = tuple(SPECS)
    marks = ", ".join("?" for _ in tables)
    indexes = list(
        await conn.execute_fetchall(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({marks}) ORDER BY name",
            tables,
        )
    )
    writer = BulkWriter(conn)
    try:
        await writer.start()
        await conn.execute(f"PRAGMA cache_size = -{_BOOTSTRAP_CACHE_KIB}")
        for name, _sql in indexes:
            await conn.execute(f'DROP INDEX "{name}"')
        for name in tables:
            await conn.execute(f"DELETE FROM {name}")
        async for part in parts:
            if part.kind == "rows":
                spec = SPECS.get(part.table)
                if spec is None:
                    raise ValueError(f"snapshot names an unknown table {part.table!r}")
                params = _snapshot_params(spec, part)
                # Tables were emptied above: plain inserts, and a repeated key refuses the
                # snapshot instead of silently keeping one of two rows.
                await writer.put(spec, params)
                count += len(params)
                festival_rows += len(params) if part.table == "festival" else 0
            elif part.kind == "end":
                seq = part.seq
        await writer.settle()
        if seq is None or festival_rows != 1:
            raise ValueError("snapshot ended without its end line or festival row")
        if indexes:
            await conn.execute(f"PRAGMA cache_size = -{_INDEX_CACHE_KIB}")
            await conn.execute_fetchall(f"PRAGMA threads = {_INDEX_THREADS}")
        for _name, sql in indexes:  # a duplicate key refuses the snapshot here
            await conn.execute(sql)
        return count, seq
    except BaseException:
        writer.abandon()
        raise


async def after_load(conn: aiosqlite.Connection) -> None:
    """Put back the page cache and sorter threads `replace_catalog` changed, once the
    caller's transaction has ended (its commit still had the load's cache)."""
    await conn.execute(f"PRAGMA cache_size = {_DEFAULT_CACHE}")
    await conn.execute_fetchall("PRAGMA threads = 0")
