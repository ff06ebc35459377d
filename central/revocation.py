"""Revoking credentials: devices and ops users by name, their tokens on the block list.

A name can outlive its row: a device re-enrolled under the name of the one it replaced, a
user added again after a revocation. So a revocation by name looks for the live one among
the rows the name matches, and says `already_revoked` (409) only when none is live.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from psycopg import AsyncConnection

from central import audit, refs
from central.errors import Ambiguous, Contradiction, NotFound

Table = Literal["device", "ops_user"]
_WHAT = {"device": "device", "ops_user": "user"}
# A revocable row by id, or by name (case-insensitively); `scope` narrows it further.
_MATCH = (
    "SELECT id, revoked_at FROM {table} WHERE {scope}"
    " AND (id = %(id)s OR (%(id)s IS NULL AND lower(name) = lower(%(name)s))) ORDER BY id"
)


async def live(
    conn: AsyncConnection[Any], table: Table, ref: str, scope: str, params: dict[str, Any]
) -> uuid.UUID:
    """The one unrevoked row of `table` that `ref` (name or id) names within `scope` (SQL
    over `params`): NotFound, Contradiction ``already_revoked`` or Ambiguous otherwise."""
    what = _WHAT[table]
    query = _MATCH.format(table=table, scope=scope)
    cur = await conn.execute(query, {**params, "id": refs.as_uuid(ref), "name": ref.strip()})
    found = await cur.fetchall()
    if not found:
        raise NotFound(f"no {what} {ref!r}")
    alive: list[uuid.UUID] = [rid for rid, revoked_at in found if revoked_at is None]
    if not alive:
        raise Contradiction(f"{what} {ref!r} is already revoked", "already_revoked")
    if len(alive) > 1:
        shown = ", ".join(str(i) for i in alive[: refs.SHOWN_IDS])
        raise Ambiguous(f"{len(alive)} live {what}s match {ref!r}: use the id ({shown})")
    return alive[0]


async def revoke(
    conn: AsyncConnection[Any], table: Table, where: str, params: dict[str, Any], *, actor: str
) -> list[uuid.UUID]:
    """Revoke the unrevoked rows `where` selects: stamp them, put their tokens on the block
    list, audit each; in the caller's transaction. Returns their ids."""
    cur = await conn.execute(
        f"UPDATE {table} SET revoked_at = now() WHERE revoked_at IS NULL AND {where}"
        " RETURNING id, token_hash, festival_id, revoked_at",
        params,
    )
    rows = await cur.fetchall()
    for rid, token_hash, festival_id, revoked_at in rows:
        await conn.execute(
            "INSERT INTO revoked_token (token_hash) VALUES (%s) ON CONFLICT DO NOTHING",
            (token_hash,),
        )
        await audit.record(
            conn, actor=actor, action=f"{table}.revoke", entity_type=table, entity_id=rid,
            old={"revoked_at": None}, new={"revoked_at": revoked_at}, festival_id=festival_id,
        )  # fmt: skip
    return [r[0] for r in rows]


async def revoke_one(
    conn: AsyncConnection[Any], table: Table, rid: uuid.UUID, ref: str, *, actor: str
) -> None:
    """Revoke the row `live` found; one revoked meanwhile by another request is a Contradiction."""
    if not await revoke(conn, table, "id = %(id)s", {"id": rid}, actor=actor):
        raise Contradiction(f"{_WHAT[table]} {ref!r} is already revoked", "already_revoked")
