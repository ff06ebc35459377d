"""Publishing many replicated rows at once, for ingest (same seq protocol as `central.feed`).

`feed.publish_many` writes two rows per change with pipelined statements; a pushed batch
can move a thousand presence rows and account balances, where that costs more than all
the rest of the push. Here rows travel as one JSON array and the database assigns seqs,
builds keys and writes `change_feed` and `replica_row` in one statement, after taking the
festival's seqs with `feed`'s own row lock (so ordering and NOTIFY are exactly as in
`feed`). Proposed for `central.feed` itself; until then it reuses `feed._take_seqs`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from central import feed
from sync.catalog import Row

# The JSON of AccountRow, built where the account is (no round trip through Python models).
_ACCOUNT_JSON = """
SELECT coalesce(jsonb_agg(jsonb_build_object(
         'id', id::text, 'festival_id', festival_id::text, 'tag_hash', encode(tag_hash, 'hex'),
         'balance', balance, 'blocked', blocked) ORDER BY id), '[]')::text, count(*)
FROM cashless_account WHERE id = ANY(%s)
"""


async def publish_json(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, table: str, rows: str, count: int
) -> None:
    """Publish `count` upserts of `table`, given as a JSON array of row objects (seq unset)."""
    if count == 0:
        return
    last = await feed._take_seqs(conn, festival_id, count)
    key = " || ':' || ".join(f"(r->>'{f}')" for f in feed.key_fields(table))
    await conn.execute(
        "WITH v AS ("
        f" SELECT %(first)s::bigint + o - 1 AS seq, {key} AS key,"
        "  r || jsonb_build_object('seq', %(first)s::bigint + o - 1) AS row"
        "  FROM jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS x(r, o)),"
        " f AS (INSERT INTO change_feed (festival_id, seq, table_name, op, key, row)"
        "  SELECT %(fid)s, seq, %(table)s, 'upsert', key, row FROM v)"
        " INSERT INTO replica_row (festival_id, table_name, key, seq, row)"
        " SELECT DISTINCT ON (key) %(fid)s, %(table)s, key, seq, row FROM v"
        " ORDER BY key, seq DESC"
        " ON CONFLICT (festival_id, table_name, key)"
        " DO UPDATE SET seq = EXCLUDED.seq, row = EXCLUDED.row",
        {"first": last - count + 1, "rows": rows, "fid": festival_id, "table": table},
    )
    await conn.execute("SELECT pg_notify(%s, %s)", (feed.CHANNEL, f"{festival_id}:{last}"))


async def publish_rows(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, table: str, rows: Sequence[Row]
) -> None:
    """Publish replicated row models (upserts) in one statement."""
    if rows:
        data = [r.model_dump(mode="json") for r in rows]
        await publish_json(conn, festival_id, table, json.dumps(data), len(data))


async def publish_dicts(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, table: str, rows: list[dict[str, Any]]
) -> None:
    """Publish rows already shaped as their `sync.catalog` model dumps (checked in tests)."""
    if rows:
        await publish_json(conn, festival_id, table, json.dumps(rows), len(rows))


async def publish_accounts(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, account_ids: list[uuid.UUID]
) -> None:
    """Publish the current AccountRow of these accounts."""
    if not account_ids:
        return
    cur = await conn.execute(_ACCOUNT_JSON, (account_ids,))
    rec = await cur.fetchone()
    if rec is not None:
        await publish_json(conn, festival_id, "account", rec[0], int(rec[1]))
