"""One catalog write: lock or insert the row, project it, publish it down, audit it.

Every write of the replicated catalog (festivals, keys, categories, zones, vendors,
products, the block list, tickets, wristband accounts) is one transaction that changes its
table, publishes the replicated row to the change feed and appends to the audit log; a
failure in any step leaves none of them. `write` opens that transaction (a savepoint
inside the caller's) and hands the steps their connection and actor, so a write says
only what is its own: which row, which checks, which audit action.

    async with catalog_write.write(conn, actor=actor) as w:
        old = await w.locked("SELECT * FROM vendor WHERE id = %s FOR UPDATE", (vid,), ...)
        rec = await fetch_one(conn, "UPDATE vendor SET ... RETURNING *", ...)
        return await w.publish(fid, "vendor", vendor_row(rec), action="vendor.close", ...)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar

from psycopg import AsyncConnection, errors

from central import audit, feed
from central.errors import Contradiction, NotFound
from central.rows import Record, fetch_one, fetch_opt
from sync.catalog import Row

R = TypeVar("R", bound=Row)


class Write:
    """The steps of one catalog write, inside its transaction, on behalf of `actor`."""

    def __init__(self, conn: AsyncConnection[Any], actor: str) -> None:
        self.conn = conn
        self.actor = actor

    async def locked(self, query: str, params: tuple[Any, ...], *, missing: str) -> Record:
        """The row `query` selects (and locks: ``FOR UPDATE``); NotFound(`missing`) if none."""
        rec = await fetch_opt(self.conn, query, params)
        if rec is None:
            raise NotFound(missing)
        return rec

    async def insert(
        self, query: str, params: tuple[Any, ...], *, taken: str, code: str = "conflict"
    ) -> Record:
        """The row an ``INSERT ... RETURNING *`` stored; a unique key it repeats is
        Contradiction(`taken`, `code`)."""
        try:
            return await fetch_one(self.conn, query, params)
        except errors.UniqueViolation:
            raise Contradiction(taken, code) from None

    async def publish(
        self,
        festival_id: uuid.UUID,
        table: str,
        row: R,
        *,
        action: str,
        entity_type: str,
        entity_id: object,
        old: object = None,
        new: object = None,
        op: Literal["upsert", "delete"] = "upsert",
    ) -> R:
        """Publish the replicated row and audit the write (`new` by default the row, nothing
        on a delete); returns the row with its feed seq."""
        seq = await feed.publish(self.conn, festival_id, table, row, op=op)
        if new is None and op == "upsert":
            new = row
        await audit.record(
            self.conn, actor=self.actor, action=action, entity_type=entity_type,
            entity_id=entity_id, old=old, new=new, festival_id=festival_id,
        )  # fmt: skip
        return row.model_copy(update={"seq": seq})


@asynccontextmanager
async def write(conn: AsyncConnection[Any], *, actor: str) -> AsyncIterator[Write]:
    """One catalog write's transaction: its steps (`Write`) all hold, or none does."""
    async with conn.transaction():
        yield Write(conn, actor)
