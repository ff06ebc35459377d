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

from sync.catalog import TABLES, Change, Row, key_fields
from sync.facts import account_text_sql

CHANNEL = "festgate_feed"
Op = Literal["upsert", "delete"]
# Snapshot order: parents before children, so a device can apply rows as they stream.
TABLE_ORDER: tuple[str, ...] = tuple(TABLES)


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


# Tables whose rows a snapshot reads from central's own tables, not from replica_row:
# ingest rewrites them by the thousand (a balance per sale, presence per movement), and
# the copy in replica_row was a second row write for each, about a tenth of ingest's
# work. Every writer of these tables publishes what it changed in the same transaction,
# so the tables as of a snapshot's view are the feed as of its seq. Their snapshot rows
# carry that seq: each row is as the feed left it at that seq (its last change is at or
# before it), which is all a device reads from a row's seq.
# The JSON is put together as text: every value is a uuid, hex, a number or a boolean
# (nothing to escape, none NULL), and it costs half of json_build_object (200k accounts:
# 0.58 s against 1.1 s, as much as reading the copies did).
OWN_ROWS: dict[str, str] = {
    "presence": """
SELECT '{"ticket_id":"' || p.ticket_id::text || '","zone_id":"' || p.zone_id::text
       || '","inside":' || p.inside::text || ',"hlc":' || p.hlc::text
       || ',"device_id":"' || p.device_id::text || '","device_seq":' || p.device_seq::text
       || ',"seq":' || %(seq)s::bigint::text || '}'
FROM ticket_presence p JOIN zone z ON z.id = p.zone_id
WHERE z.festival_id = %(fid)s ORDER BY p.ticket_id, p.zone_id""",
    "account": f"""
SELECT {account_text_sql("a.", "%(seq)s::bigint")}
FROM cashless_account a WHERE a.festival_id = %(fid)s ORDER BY a.id""",
}


# Publishing is a run of CTEs in one statement. The statement's own CTE `pub` yields the
# rows to publish: (table_name, key, row: the replicated model's JSON without seq, ord: 1,
# 2, ... in publish order). `feed_h` takes the festival's next seqs with the feed_head
# upsert, whose row lock is held until commit (see the module doc); it inserts nothing, and
# locks nothing, when `pub` is empty, and it runs only once `pub` is complete, so whatever
# locks `pub` needs are taken before the feed head's. The rows are numbered in `ord` order,
# appended to change_feed, and replica_row is brought up to date (but for `OWN_ROWS`).
# `PUBLISHED` selects the last seq (NULL when nothing was published) and queues the NOTIFY
# (delivered at commit).
# `publish_json` reads `pub` from a JSON array, so a thousand rows cost one round trip;
# ingest builds it where its rows are (`central.settle`), with no JSON in between.
def publish_ctes(op: Op = "upsert", *, unique: bool = False) -> str:
    """The CTEs that publish the rows of the statement's CTE `pub` (see above); `unique`
    when `pub` never holds a key twice (the replica then takes its rows as they are)."""
    mirrored = f"v.table_name NOT IN ({', '.join(repr(t) for t in OWN_ROWS)})"
    if op == "delete":
        replica = f"""
  DELETE FROM replica_row r USING feed_v v WHERE r.festival_id = %(fid)s
  AND r.table_name = v.table_name AND r.key = v.key AND {mirrored}"""
    else:
        latest = (
            f"SELECT %(fid)s, table_name, key, seq, row FROM feed_v v WHERE {mirrored}"
            if unique
            else "SELECT DISTINCT ON (table_name, key) %(fid)s, table_name, key, seq, row"
            f" FROM feed_v v WHERE {mirrored} ORDER BY table_name, key, seq DESC"
        )
        replica = f"""
  INSERT INTO replica_row (festival_id, table_name, key, seq, row)
  {latest}
  ON CONFLICT (festival_id, table_name, key) DO UPDATE SET seq = EXCLUDED.seq, row = EXCLUDED.row"""
    return f"""
feed_n AS (SELECT count(*) AS n FROM pub),
feed_h AS (
  INSERT INTO feed_head AS fh (festival_id, head) SELECT %(fid)s, n FROM feed_n WHERE n > 0
  ON CONFLICT (festival_id) DO UPDATE SET head = fh.head + EXCLUDED.head
  RETURNING head),
feed_v AS (
  SELECT h.head - n.n + p.ord AS seq, p.table_name, p.key,
         p.row || jsonb_build_object('seq', h.head - n.n + p.ord) AS row
  FROM feed_h h, feed_n n, pub p),
feed_f AS (
  INSERT INTO change_feed (festival_id, seq, table_name, op, key, row)
  SELECT %(fid)s, seq, table_name, '{op}', key, row FROM feed_v),
feed_r AS ({replica})"""


PUBLISHED = (
    "(SELECT head FROM feed_h),"
    f" (SELECT pg_notify('{CHANNEL}', %(fid)s::uuid::text || ':' || head) FROM feed_h)"
)


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

    For callers that build the rows' JSON where the data is (see `central.settle`): each
    object must be the row's `sync.catalog` model dump (without ``seq``, which is set here);
    for ``op="delete"`` its key fields are enough. Returns the seqs, in array order.
    """
    if count <= 0:
        return []
    if table not in TABLES:
        raise ValueError(f"not a replicated table: {table!r}")
    key = " || ':' || ".join(f"(x.r->>'{f}')" for f in key_fields(table))
    query = f"""WITH pub AS (
  SELECT %(table)s AS table_name, {key} AS key, x.r AS row, x.o AS ord
  FROM jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS x(r, o)),{publish_ctes(op)}
SELECT {PUBLISHED}"""
    cur = await conn.execute(query, {"fid": festival_id, "rows": rows, "table": table})
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
    conn: AsyncConnection[Any], festival_id: uuid.UUID, seq: int, *, batch: int = 2000
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Stream (table, row) for every live replicated row, parents first (`snapshot_text`,
    parsed). Must run inside `snapshot_view` (or `snapshot`), whose seq it takes."""
    async for table, texts in snapshot_text(conn, festival_id, seq, batch=batch):
        for text in texts:
            yield table, json.loads(text)


async def snapshot_text(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, seq: int, *, batch: int = 5000
) -> AsyncIterator[tuple[str, list[str]]]:
    """Stream (table, rows) for every live replicated row, parents first, each row as its
    JSON text straight from PostgreSQL (no parse and re-serialise here), up to `batch`
    rows of one table at a time, each table in key order (the primary key's index order).

    That order is byte order, in which a device's b-trees take rows fastest (appends), for
    UUID keys under any collation and for every key where the database collates as C or
    C.UTF-8 (the embedded server does). ``ORDER BY key COLLATE "C"`` would make it byte
    order everywhere but cannot use the index (it has the database's collation): it sorts
    the whole table on every snapshot, about 3 s and 300 MB of temp files per million
    tickets. A device loads rows in any order, only slower. Rows of `OWN_ROWS` tables come
    from central's own tables, stamped with the view's seq.

    Must run inside `snapshot_view`, with the seq it yielded: its REPEATABLE READ makes
    the rows those of that seq.
    """
    for table in TABLE_ORDER:
        query = OWN_ROWS.get(table) or (
            "SELECT row::text FROM replica_row WHERE festival_id = %(fid)s"
            " AND table_name = %(table)s ORDER BY key"
        )
        name = f"snapshot_{uuid.uuid4().hex}"
        async with conn.cursor(name=name) as cur:
            await cur.execute(query, {"fid": festival_id, "table": table, "seq": seq})
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
        yield seq, snapshot_rows(conn, festival_id, seq)
