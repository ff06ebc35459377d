"""Ops views and the conflict resolution write: what the ops API and the CLI show.

Every function returns plain JSON values (ids and times as strings), scoped to one festival.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from central import audit
from central.classify import refresh_suspicious
from central.errors import NotFound
from central.ingest import festival_lock

Json = dict[str, Any]


async def _rows(conn: AsyncConnection[Any], query: str, params: tuple[Any, ...]) -> list[Json]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return [audit.jsonable(r) for r in await cur.fetchall()]


async def _one(conn: AsyncConnection[Any], query: str, params: tuple[Any, ...], what: str) -> Json:
    rows = await _rows(conn, query, params)
    if not rows:
        raise NotFound(f"no {what}")
    return rows[0]


# A conflict's id outside is its random `ref` (migration 0006): the bigserial key counts
# every festival's conflicts, so it stays inside (order by ``conflict.id``: a bare ``id``
# in ORDER BY would name this output column, the ref).
_CONFLICT_COLS = (
    "ref AS id, kind, natural_key, subject_type, subject_id, event_ids, facts, detail,"
    " created_at, updated_at, resolved_at, resolved_by, resolution_note"
)


async def list_conflicts(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    *,
    open_only: bool = True,
    kind: str | None = None,
    limit: int = 500,
) -> list[Json]:
    """Conflicts of a festival, newest first, each with both facts."""
    return await _rows(
        conn,
        f"SELECT {_CONFLICT_COLS} FROM conflict WHERE festival_id = %s"
        " AND (NOT %s OR resolved_at IS NULL) AND (%s::text IS NULL OR kind = %s)"
        " ORDER BY created_at DESC, conflict.id DESC LIMIT %s",
        (festival_id, open_only, kind, kind, limit),
    )


async def resolve_conflict(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    conflict_id: uuid.UUID,
    *,
    actor: str,
    note: str,
) -> Json:
    """Mark a conflict (by its id, the `ref`) resolved with a note (audited); a resolved one
    stays resolved; another festival's is NotFound.

    A resolved clock skew remembers how far the device had pushed, so only later skewed
    events open a new one; a resolved duplicate entry may clear the ticket's suspicion.
    """
    async with conn.transaction():
        await festival_lock(conn, festival_id)  # same lock order as ingest (tickets, feed)
        old = await _one(
            conn,
            f"SELECT {_CONFLICT_COLS} FROM conflict WHERE ref = %s AND festival_id = %s FOR UPDATE",
            (conflict_id, festival_id),
            f"conflict {conflict_id}",
        )
        if old["resolved_at"] is not None:
            return old
        detail = dict(old["detail"])
        if old["kind"] == "clock_skew":
            cur = await conn.execute(
                "SELECT max_seq FROM device WHERE id = %s", (uuid.UUID(old["subject_id"]),)
            )
            rec = await cur.fetchone()
            detail["resolved_through"] = int(rec[0]) if rec else 0
        new = await _one(
            conn,
            "UPDATE conflict SET resolved_at = now(), resolved_by = %s, resolution_note = %s,"
            f" detail = %s WHERE ref = %s RETURNING {_CONFLICT_COLS}",
            (actor, note, Jsonb(detail), conflict_id),
            f"conflict {conflict_id}",
        )
        if old["kind"] == "duplicate_entry":
            await refresh_suspicious(conn, festival_id, [uuid.UUID(old["subject_id"])])
        await audit.record(
            conn, actor=actor, action="conflict.resolve", entity_type="conflict",
            entity_id=conflict_id, old={"resolved_at": None},
            new={"resolved_by": actor, "note": note}, festival_id=festival_id,
        )  # fmt: skip
    return new


async def ticket_history(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, ticket_id: uuid.UUID
) -> Json:
    """A ticket's state, its scans (all verdicts), access log, conflicts and audit trail.

    ``used_at`` is its first admission (or when ops marked it used, if earlier).
    """
    ticket = await _one(
        conn,
        "SELECT id, category_id, status, code_version, suspicious, least(t.used_at,"
        "  (SELECT min(a.at) FROM zone_access_log a WHERE a.ticket_id = t.id"
        "   AND a.action = 'ENTRY')) AS used_at"
        " FROM ticket t WHERE id = %s AND festival_id = %s",
        (ticket_id, festival_id),
        f"ticket {ticket_id}",
    )
    return {
        "ticket": ticket,
        "events": await _rows(
            conn,
            "SELECT event_id, device_id, device_seq, kind, verdict, hlc, zone_id, catalog_seq,"
            " received_at FROM device_event WHERE festival_id = %s"
            " AND ticket_id = %s AND status = 'applied' ORDER BY hlc, device_id",
            (festival_id, ticket_id),
        ),
        "access_log": await _rows(
            conn,
            "SELECT zone_id, action, at, event_id, device_id FROM zone_access_log"
            " WHERE ticket_id = %s ORDER BY hlc, device_id, device_seq",
            (ticket_id,),
        ),
        "conflicts": await _rows(
            conn,
            f"SELECT {_CONFLICT_COLS} FROM conflict WHERE subject_type = 'ticket'"
            " AND subject_id = %s ORDER BY conflict.id",
            (ticket_id,),
        ),
        "audit": await _rows(
            conn,
            "SELECT actor, action, old_value, new_value, at FROM audit_log"
            " WHERE entity_type = 'ticket' AND entity_id = %s ORDER BY at, id",
            (str(ticket_id),),
        ),
    }


async def account_ledger(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, account_id: uuid.UUID
) -> Json:
    """A wristband's account, every ledger entry with balance before/after, its conflicts.

    Entries come in replay order (HLC for device facts, central's clock for its own), the
    order that also gives each its balance before and after (see the `cashless_ledger` view).
    """
    account = await _one(
        conn,
        "SELECT a.id, encode(a.tag_hash, 'hex') AS tag_hash, a.balance, a.debt, a.blocked,"
        " h.account_id IS NOT NULL AS held FROM cashless_account a"
        " LEFT JOIN account_hold h ON h.account_id = a.id WHERE a.id = %s AND a.festival_id = %s",
        (account_id, festival_id),
        f"account {account_id}",
    )
    return {
        "account": account,
        "ledger": await _rows(
            conn,
            "SELECT id, type, amount, balance_before, balance_after, event_id, device_id,"
            " vendor_id, created_at FROM cashless_ledger WHERE account_id = %s"
            ' ORDER BY ord_hlc, ord_device COLLATE "C", ord_seq',
            (account_id,),
        ),
        "conflicts": await _rows(
            conn,
            f"SELECT {_CONFLICT_COLS} FROM conflict WHERE subject_type = 'account'"
            " AND subject_id = %s ORDER BY conflict.id",
            (account_id,),
        ),
    }


async def account_by_tag(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, tag_hash: bytes
) -> uuid.UUID:
    """The account id of a tag hash, or NotFound."""
    cur = await conn.execute(
        "SELECT id FROM cashless_account WHERE festival_id = %s AND tag_hash = %s",
        (festival_id, tag_hash),
    )
    rec = await cur.fetchone()
    if rec is None:
        raise NotFound("no wristband with that tag")
    return uuid.UUID(str(rec[0]))
