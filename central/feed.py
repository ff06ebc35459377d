"""The catalog change feed: per-festival gap-free seqs, latest rows for snapshots, reads.

Ordering: every publish (`publish_rows`, and `publish`, `publish_many`, `publish_json` on
top of it) takes the festival's next seqs with an upsert of ``feed_head ... RETURNING``,
whose row lock is held until the caller's transaction ends. A second writer for the same
festival waits on that lock, so seqs are committed in seq order, and a rolled-back writer
gives its seq back (the next writer re-reads the committed head). A reader therefore never
sees seq N+1 committed while N is still pending, and the feed has no holes. Writers must run
at READ COMMITTED (the default): at REPEATABLE READ the waiting writer would fail with a
serialization error instead of re-reading the head.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

from sync.catalog import TABLES, Change, Row

CHANNEL = "festgate_feed"
Op = Literal["upsert", "delete"]
# Snapshot order: parents before children, so a device can apply rows as they stream.
TABLE_ORDER: tuple[str, ...] = tuple(TABLES)
_KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "signing_key": ("key_id",),
    "presence": ("ticket_id", "zone_id"),
    "block": ("kind", "ref"),
}


def key_fields(table: str) -> tuple[str, ...]:
    """Fields that identify a row of a replicated table (``id`` unless said otherwise)."""
    return _KEY_FIELDS.get(table, ("id",))


def row_key(table: str, row: Row | Mapping[str, Any]) -> str:
    """The feed key of a row: its key fields' values joined with ``:``."""
    data = row.model_dump(mode="json") if isinstance(row, Row) else row
    return ":".join(str(data[f]) for f in key_fields(table))


def _check_table(table: str, row: Row) -> None:
    model = TABLES.get(table)
    if model is None:
        raise ValueError(f"not a replicated table: {table!r}")
    if not isinstance(row, model):
        raise TypeError(f"{table} rows are {model.__name__}, got {type(row).__name__}")


def _check_mapping(table: str, row: Mapping[str, Any]) -> None:
    if table not in TABLES:
        raise ValueError(f"not a replicated table: {table!r}")
    missing = [f for f in key_fields(table) if row.get(f) is None]
    if missing:
        raise ValueError(f"{table} row lacks its key field(s) {missing}")


# One statement per publish: take the festival's next `n` seqs (the feed_head row lock is
# held until commit, see the module doc), number the rows in array order, append them to
# change_feed, bring replica_row up to date and queue the NOTIFY (delivered at commit).
# Rows arrive as one JSON array, so a thousand rows cost one round trip, not two each.
_PUBLISH = """
WITH h AS (
  INSERT INTO feed_head (festival_id, head) VALUES (%(fid)s, %(n)s)
  ON CONFLICT (festival_id) DO UPDATE SET head = feed_head.head + EXCLUDED.head
  RETURNING head),
v AS (
  SELECT h.head - %(n)s + x.o AS seq, {key} AS key,
         x.r || jsonb_build_object('seq', h.head - %(n)s + x.o) AS row
  FROM h, jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS x(r, o)),
f AS (
  INSERT INTO change_feed (festival_id, seq, table_name, op, key, row)
  SELECT %(fid)s, seq, %(table)s, %(op)s, key, row FROM v),
r AS ({replica})
SELECT head, pg_notify(%(channel)s, %(fid)s::uuid::text || ':' || head) FROM h
"""
_UPSERT_REPLICA = """
  INSERT INTO replica_row (festival_id, table_name, key, seq, row)
  SELECT DISTINCT ON (key) %(fid)s, %(table)s, key, seq, row FROM v ORDER BY key, seq DESC
  ON CONFLICT (festival_id, table_name, key) DO UPDATE SET seq = EXCLUDED.seq, row = EXCLUDED.row"""
_DELETE_REPLICA = """
  DELETE FROM replica_row WHERE festival_id = %(fid)s AND table_name = %(table)s
  AND key IN (SELECT key FROM v)"""


async def publish_json(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    table: str,
    rows: str,
    count: int,
    *,
    op: Op = "upsert",
) -> list[int]:
    """Append `count` changes given as a JSON array of row objects, in one statement.

    For callers that build the rows' JSON where the data is (see `central.classify`): each
    object must be the row's `sync.catalog` model dump (without ``seq``, which is set here);
    for ``op="delete"`` its key fields are enough. Returns the seqs, in array order.
    """
    if count <= 0:
        return []
    if table not in TABLES:
        raise ValueError(f"not a replicated table: {table!r}")
    key = " || ':' || ".join(f"(x.r->>'{f}')" for f in key_fields(table))
    query = _PUBLISH.format(key=key, replica=_DELETE_REPLICA if op == "delete" else _UPSERT_REPLICA)
    cur = await conn.execute(
        query,
        {"fid": festival_id, "n": count, "rows": rows, "table": table, "op": op,
         "channel": CHANNEL},
    )  # fmt: skip
    rec = await cur.fetchone()
    assert rec is not None
    last = int(rec[0])
    return list(range(last - count + 1, last + 1))


async def publish_rows(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    table: str,
    rows: Iterable[Row | Mapping[str, Any]],
    *,
    op: Op = "upsert",
) -> list[int]:
    """Append one change per row (one seq each, in order) in a single statement.

    Rows are `sync.catalog` models of `table`, or mappings already shaped as their JSON
    dumps (for hot paths that build them without a model; tests check the shape). A delete
    carries only the row's key fields. Returns the seqs.
    """
    data: list[Mapping[str, Any]] = []
    fields = key_fields(table)
    for row in rows:
        if isinstance(row, Row):
            _check_table(table, row)
            dumped: Mapping[str, Any] = row.model_dump(mode="json")
        else:
            _check_mapping(table, row)
            dumped = row
        data.append({f: dumped[f] for f in fields} if op == "delete" else dumped)
    if not data:
        return []
    return await publish_json(conn, festival_id, table, json.dumps(data), len(data), op=op)


async def publish(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    table: str,
    row: Row,
    *,
    op: Op = "upsert",
) -> int:
    """Append one change inside the caller's transaction and return its seq."""
    seqs = await publish_rows(conn, festival_id, table, [row], op=op)
    return seqs[0]


async def publish_many(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    table: str,
    rows: Iterable[Row],
    *,
    op: Op = "upsert",
) -> list[int]:
    """Append changes for many rows of one table (one seq each), e.g. for an import."""
    return await publish_rows(conn, festival_id, table, rows, op=op)


async def head(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> int:
    """The highest committed seq of a festival's feed (0 when it has none)."""
    cur = await conn.execute("SELECT head FROM feed_head WHERE festival_id = %s", (festival_id,))
    rec = await cur.fetchone()
    return 0 if rec is None else int(rec[0])


async def read_after(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, cursor: int, limit: int
) -> list[Change]:
    """Up to `limit` committed changes with seq > cursor, in seq order."""
    cur = await conn.execute(
        "SELECT seq, table_name, op, row FROM change_feed "
        "WHERE festival_id = %s AND seq > %s ORDER BY seq LIMIT %s",
        (festival_id, cursor, limit),
    )
    return [
        Change(seq=seq, table=table, op=op, row=row) for seq, table, op, row in await cur.fetchall()
    ]


async def snapshot_rows(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, *, batch: int = 2000
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Stream (table, row) for every live replicated row, parents first (server-side cursor).

    Must run inside a transaction; use `snapshot` for one that is consistent with a seq.
    """
    name = f"snapshot_{uuid.uuid4().hex}"
    async with conn.cursor(name=name) as cur:
        cur.itersize = batch
        await cur.execute(
            "SELECT table_name, row FROM replica_row WHERE festival_id = %s "
            "ORDER BY array_position(%s::text[], table_name), key",
            (festival_id, list(TABLE_ORDER)),
        )
        async for table, row in cur:
            yield table, row


async def snapshot_text(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, *, batch: int = 5000
) -> AsyncIterator[tuple[str, list[str]]]:
    """Stream (table, rows) for every live replicated row, parents first, each row as its
    JSON text straight from PostgreSQL (no parse and re-serialise here), up to `batch`
    rows of one table at a time, each table in key order (the primary key's index order).

    Must run inside a transaction; use `snapshot_view` for one consistent with a seq.
    """
    for table in TABLE_ORDER:
        name = f"snapshot_{uuid.uuid4().hex}"
        async with conn.cursor(name=name) as cur:
            await cur.execute(
                "SELECT row::text FROM replica_row WHERE festival_id = %s AND table_name = %s "
                "ORDER BY key",
                (festival_id, table),
            )
            while rows := await cur.fetchmany(batch):
                yield table, [r[0] for r in rows]


@asynccontextmanager
async def snapshot_view(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> AsyncIterator[int]:
    """A REPEATABLE READ, read-only transaction on `conn`; yields the feed seq it shows.

    Rows read on `conn` inside the block (`snapshot_rows`, `snapshot_text`) are exactly
    the catalog as of that seq. `conn` must be idle (no transaction open); the transaction
    ends when the block exits.
    """
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise RuntimeError("feed.snapshot needs a connection with no transaction open")
    async with conn.transaction():
        # First statement of the transaction, so it sets the isolation of the whole view.
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield await head(conn, festival_id)


@asynccontextmanager
async def snapshot(
    conn: AsyncConnection[Any], festival_id: uuid.UUID
) -> AsyncIterator[tuple[int, AsyncIterator[tuple[str, dict[str, Any]]]]]:
    """A REPEATABLE READ view: (seq, rows) where rows are exactly the catalog as of seq.

    `conn` must be idle (no transaction open); the transaction ends when the block exits.
    """
    async with snapshot_view(conn, festival_id) as seq:
        yield seq, snapshot_rows(conn, festival_id)
