"""The catalog change feed: per-festival gap-free seqs, latest rows for snapshots, reads.

Ordering: `publish` takes the festival's next seq with ``UPDATE feed_head ... RETURNING``,
whose row lock is held until the caller's transaction ends. A second writer for the same
festival waits on that lock, so seqs are committed in seq order, and a rolled-back writer
gives its seq back (the next writer re-reads the committed head). A reader therefore never
sees seq N+1 committed while N is still pending, and the feed has no holes. Writers must run
at READ COMMITTED (the default): at REPEATABLE READ the waiting writer would fail with a
serialization error instead of re-reading the head.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

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


async def _take_seqs(conn: AsyncConnection[Any], festival_id: uuid.UUID, count: int) -> int:
    """Reserve `count` seqs; return the last. The row lock serialises writers until commit."""
    cur = await conn.execute(
        "INSERT INTO feed_head (festival_id, head) VALUES (%s, %s) "
        "ON CONFLICT (festival_id) DO UPDATE SET head = feed_head.head + EXCLUDED.head "
        "RETURNING head",
        (festival_id, count),
    )
    rec = await cur.fetchone()
    assert rec is not None
    return int(rec[0])


async def publish(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    table: str,
    row: Row,
    *,
    op: Op = "upsert",
) -> int:
    """Append one change inside the caller's transaction and return its seq."""
    seqs = await publish_many(conn, festival_id, table, [row], op=op)
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
    rows = list(rows)
    if not rows:
        return []
    for row in rows:
        _check_table(table, row)
    last = await _take_seqs(conn, festival_id, len(rows))
    first = last - len(rows) + 1
    feed_args: list[tuple[Any, ...]] = []
    replica_args: list[tuple[Any, ...]] = []
    deleted: list[str] = []
    for seq, row in zip(range(first, last + 1), rows, strict=True):
        data = row.model_dump(mode="json")
        data["seq"] = seq
        key = row_key(table, data)
        if op == "delete":
            # A delete carries only its key; the replica forgets the row.
            data = {f: data[f] for f in key_fields(table)} | {"seq": seq}
            deleted.append(key)
        else:
            replica_args.append((festival_id, table, key, seq, Jsonb(data)))
        feed_args.append((festival_id, seq, table, op, key, Jsonb(data)))
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO change_feed (festival_id, seq, table_name, op, key, row) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            feed_args,
        )
        if replica_args:
            await cur.executemany(
                "INSERT INTO replica_row (festival_id, table_name, key, seq, row) "
                "VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (festival_id, table_name, key) "
                "DO UPDATE SET seq = EXCLUDED.seq, row = EXCLUDED.row",
                replica_args,
            )
        if deleted:
            await cur.execute(
                "DELETE FROM replica_row WHERE festival_id = %s AND table_name = %s "
                "AND key = ANY(%s)",
                (festival_id, table, deleted),
            )
        # Delivered at commit (never for a rollback): long-polls wake then.
        await cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{festival_id}:{last}"))
    return list(range(first, last + 1))


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


@asynccontextmanager
async def snapshot(
    conn: AsyncConnection[Any], festival_id: uuid.UUID
) -> AsyncIterator[tuple[int, AsyncIterator[tuple[str, dict[str, Any]]]]]:
    """A REPEATABLE READ view: (seq, rows) where rows are exactly the catalog as of seq.

    `conn` must be idle (no transaction open); the transaction ends when the block exits.
    """
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise RuntimeError("feed.snapshot needs a connection with no transaction open")
    async with conn.transaction():
        # First statement of the transaction, so it sets the isolation of the whole view.
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        seq = await head(conn, festival_id)
        yield seq, snapshot_rows(conn, festival_id)
