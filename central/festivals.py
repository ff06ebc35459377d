"""Festivals as ops see them: which exist, their tickets, and what their outside codes risk."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from central import catalog, code_entropy

Json = dict[str, Any]


async def _outside_codes(
    conn: AsyncConnection[Any], festival_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Json]:
    """Per festival: its outside codes, how many are weak, the lowest estimate, and so on."""
    cur = await conn.execute(
        "SELECT festival_id, code_bits, count(*) FROM ticket "
        "WHERE festival_id = ANY(%s) AND code_hash IS NOT NULL GROUP BY 1, 2",
        (festival_ids,),
    )
    histograms: dict[uuid.UUID, dict[int | None, int]] = {fid: {} for fid in festival_ids}
    for fid, bits, count in await cur.fetchall():
        histograms[fid][bits] = count
    out = {}
    for fid, histogram in histograms.items():
        summary = code_entropy.summarize(histogram)
        out[fid] = asdict(summary) | {
            "effective_bits": summary.effective_bits,
            "needed_bits": code_entropy.needed_bits(summary.codes),
        }
    return out


async def _views(conn: AsyncConnection[Any], records: list[Json]) -> list[Json]:
    ids = [r["id"] for r in records]
    cur = await conn.execute(
        "SELECT festival_id, count(*) FROM ticket WHERE festival_id = ANY(%s) GROUP BY 1", (ids,)
    )
    tickets: dict[uuid.UUID, int] = dict(await cur.fetchall())
    outside = await _outside_codes(conn, ids)
    return [
        {
            "id": str(r["id"]),
            "slug": r["slug"],
            "name": r["name"],
            "status": r["status"],
            "starts_at": r["starts_at"],
            "ends_at": r["ends_at"],
            "tickets": tickets.get(r["id"], 0),
            "outside_codes": outside[r["id"]],
        }
        for r in records
    ]


async def list_festivals(conn: AsyncConnection[Any]) -> list[Json]:
    """Live festivals, oldest first, each with its ticket count and outside codes' risk."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT * FROM festival WHERE deleted_at IS NULL ORDER BY created_at, slug"
        )
        records = await cur.fetchall()
    return await _views(conn, records)


async def show_festival(conn: AsyncConnection[Any], ref: str) -> Json:
    """One festival by id or slug: what `list_festivals` shows, its settings and its keys."""
    rec = await catalog.get_festival(conn, ref)
    (view,) = await _views(conn, [rec])
    cur = await conn.execute(
        "SELECT key_id, revoked FROM signing_key WHERE festival_id = %s ORDER BY key_id",
        (rec["id"],),
    )
    keys = [{"key_id": k, "revoked": revoked} for k, revoked in await cur.fetchall()]
    return view | {
        "currency": rec["currency"],
        "offline_allowance": rec["offline_allowance"],
        "signing_keys": keys,
    }
