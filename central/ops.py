"""Ops views and the conflict resolution write: what the ops API and the CLI show.

Conflicts come as `ConflictItem` models (names beside ids, times in the festival's time
zone, one summary line); the device and report views return plain JSON values (ids and
times as strings). Everything is scoped to one festival.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from central import audit, conflict_view, readable, refs
from central.conflict_store import refresh_suspicious
from central.conflict_view import FactSide
from central.conflicts import ConflictKind
from central.errors import Ambiguous, Contradiction, NotFound
from central.ingest import festival_lock
from central.rows import fetch_all

Json = dict[str, Any]
ConflictState = Literal["open", "resolved", "all"]
SubjectType = Literal["ticket", "account", "device"]
SHORT_ID = 8  # characters of a conflict's id that people may give for all of it


class ConflictItem(BaseModel):
    """A conflict as ops list it: what, about whom, in one line, and both stored facts."""

    id: uuid.UUID = Field(description="its random ref, not the internal key")
    kind: ConflictKind
    subject_type: SubjectType
    subject_id: uuid.UUID
    subject: str = Field(description="in words: 'device north-1', 'ticket 1a2b3c4d (Weekend)'")
    summary: str = Field(description="what happened in one line (times in the festival's zone)")
    natural_key: str
    event_ids: list[uuid.UUID]
    facts: dict[str, Any] = Field(description="as the rule recorded them (`central.conflicts`)")
    detail: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None


class ConflictShow(ConflictItem):
    """One conflict with both facts side by side, readable."""

    timezone: str
    sides: list[FactSide]


@dataclass(frozen=True, slots=True)
class ConflictFilter:
    """Which conflicts to list (each field narrows; None: any)."""

    state: ConflictState = "open"
    kind: ConflictKind | None = None
    subject_type: SubjectType | None = None
    subject_id: uuid.UUID | None = None
    device_id: uuid.UUID | None = None  # about this device, or one of its facts is involved
    limit: int = 500
    before: uuid.UUID | None = None  # only those listed after this one (its id): a next page


async def conflict_filter(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    *,
    state: ConflictState = "open",
    kind: ConflictKind | None = None,
    subject_type: SubjectType | None = None,
    ticket: str | None = None,
    wristband: str | None = None,
    device: str | None = None,
    limit: int = 500,
) -> ConflictFilter:
    """A filter from the names people use: a ticket as `central.refs.ticket` finds it, a
    wristband by tag UID, a device by name (any of them by id)."""
    subject_id = None
    if ticket is not None:
        subject_type, subject_id = "ticket", await refs.ticket(conn, festival_id, ticket)
    elif wristband is not None:
        subject_type, subject_id = "account", await refs.wristband(conn, festival_id, wristband)
    return ConflictFilter(
        state=state,
        kind=kind,
        subject_type=subject_type,
        subject_id=subject_id,
        device_id=None if device is None else await refs.device(conn, festival_id, device),
        limit=limit,
    )


# Order by ``c.id`` (the bigserial): creation order, unlike the random ref shown as `id`.
_CONFLICTS = """
SELECT c.ref, c.kind, c.natural_key, c.subject_type, c.subject_id, c.event_ids, c.facts,
       c.detail, c.created_at, c.updated_at, c.resolved_at, c.resolved_by, c.resolution_note,
       cat.name AS category
FROM conflict c
LEFT JOIN ticket t ON c.subject_type = 'ticket' AND t.id = c.subject_id
LEFT JOIN ticket_category cat ON cat.id = t.category_id
WHERE c.festival_id = %(fid)s
"""
_FILTERS = """
  AND (%(state)s = 'all' OR (%(state)s = 'open') = (c.resolved_at IS NULL))
  AND (%(kind)s::text IS NULL OR c.kind = %(kind)s)
  AND (%(stype)s::text IS NULL OR c.subject_type = %(stype)s)
  AND (%(sid)s::uuid IS NULL OR c.subject_id = %(sid)s)
  AND (%(dev)s::uuid IS NULL OR c.subject_id = %(dev)s OR EXISTS (SELECT 1 FROM device_event e
       WHERE e.event_id = ANY(c.event_ids) AND e.device_id = %(dev)s))
"""
_PAGE = """
  AND (%(before)s::uuid IS NULL
       OR (c.created_at, c.id)
          < (SELECT b.created_at, b.id FROM conflict b WHERE b.ref = %(before)s))
ORDER BY c.created_at DESC, c.id DESC LIMIT %(limit)s
"""
_COUNT = "SELECT count(*) FROM conflict c WHERE c.festival_id = %(fid)s"


def _item(rec: Json, where: readable.Local) -> ConflictItem:
    summary, _ = conflict_view.read(rec["kind"], rec["facts"], rec["detail"], where)
    return ConflictItem(
        id=rec["ref"],
        kind=rec["kind"],
        subject_type=rec["subject_type"],
        subject_id=rec["subject_id"],
        subject=conflict_view.subject(
            rec["subject_type"], rec["subject_id"], where, rec["category"]
        ),
        summary=summary,
        natural_key=rec["natural_key"],
        event_ids=rec["event_ids"],
        facts=rec["facts"],
        detail=rec["detail"],
        created_at=where.at(rec["created_at"]),
        updated_at=where.at(rec["updated_at"]),
        resolved_at=where.at(rec["resolved_at"]),
        resolved_by=rec["resolved_by"],
        resolution_note=rec["resolution_note"],
    )


async def list_conflicts(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    where: ConflictFilter | None = None,
    *,
    local: readable.Local | None = None,
) -> list[ConflictItem]:
    """A festival's conflicts, newest first, each with both facts (open ones by default);
    `local` when the caller has read the festival's already."""
    params = _params(festival_id, where or ConflictFilter())
    local = local or await readable.local(conn, festival_id)
    rows = await fetch_all(conn, _CONFLICTS + _FILTERS + _PAGE, params)
    return [_item(r, local) for r in rows]


async def count_conflicts(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, where: ConflictFilter
) -> int:
    """How many conflicts `where` names, on every page."""
    cur = await conn.execute(_COUNT + _FILTERS, _params(festival_id, where))
    rec = await cur.fetchone()
    return int(rec[0]) if rec else 0


def _params(festival_id: uuid.UUID, f: ConflictFilter) -> dict[str, Any]:
    return {
        "fid": festival_id, "state": f.state, "kind": f.kind, "stype": f.subject_type,
        "sid": f.subject_id, "dev": f.device_id, "limit": f.limit, "before": f.before,
    }  # fmt: skip


async def history(
    conn: AsyncConnection[Any],
    local: readable.Local,
    subject_type: SubjectType,
    subject_id: uuid.UUID,
    entities: list[tuple[str, str]],
) -> tuple[list[ConflictItem], list[readable.AuditEntry]]:
    """How a ticket or an account came to be: every conflict about it (resolved ones too)
    and the audit trail of `entities` (its rows), as a show ends."""
    every = ConflictFilter(state="all", subject_type=subject_type, subject_id=subject_id)
    conflicts = await list_conflicts(conn, local.festival_id, every, local=local)
    return conflicts, await readable.audit_trail(conn, local, entities)


async def _conflict(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, conflict_id: uuid.UUID, lock: str = ""
) -> Json:
    query = f"{_CONFLICTS} AND c.ref = %(ref)s {lock}"
    found = await fetch_all(conn, query, {"fid": festival_id, "ref": conflict_id})
    if not found:
        raise NotFound(f"no conflict {conflict_id} in this festival")
    return found[0]


async def find_conflict(conn: AsyncConnection[Any], festival_id: uuid.UUID, ref: str) -> uuid.UUID:
    """A conflict by its id, or by the start of it (8 characters or more) as people copy it
    from a list; NotFound or Ambiguous otherwise."""
    rid = refs.as_uuid(ref)
    if rid is not None:
        return rid
    start = ref.strip().lower()
    if len(start) < SHORT_ID or start.strip("0123456789abcdef-"):
        raise NotFound(f"{ref!r} is no conflict id (nor its first {SHORT_ID} characters)")
    cur = await conn.execute(
        "SELECT ref FROM conflict WHERE festival_id = %s AND ref::text LIKE %s ORDER BY id",
        (festival_id, start + "%"),
    )
    found = [r[0] for r in await cur.fetchall()]
    if len(found) > 1:
        raise Ambiguous(f"{len(found)} conflicts start with {ref!r}: give more of the id")
    if not found:
        raise NotFound(f"no conflict {ref!r} in this festival")
    return uuid.UUID(str(found[0]))


async def show_conflict(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, conflict_id: uuid.UUID
) -> ConflictShow:
    """One conflict (by its id, the `ref`) with both facts side by side."""
    local = await readable.local(conn, festival_id)
    rec = await _conflict(conn, festival_id, conflict_id)
    _, sides = conflict_view.read(rec["kind"], rec["facts"], rec["detail"], local)
    item = _item(rec, local)
    return ConflictShow(**item.model_dump(), timezone=local.timezone, sides=sides)


async def resolve_conflict(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    conflict_id: uuid.UUID,
    *,
    actor: str,
    note: str,
) -> ConflictItem:
    """Mark a conflict (by its id, the `ref`) resolved with a note (audited). One already
    resolved is a Contradiction (``already_resolved``); another festival's is NotFound.

    A resolved clock skew remembers how far the device had pushed, so only later skewed
    events open a new one; a resolved duplicate entry may clear the ticket's suspicion.
    """
    async with conn.transaction():
        await festival_lock(conn, festival_id)  # same lock order as ingest (tickets, feed)
        old = await _conflict(conn, festival_id, conflict_id, "FOR UPDATE OF c")
        if old["resolved_at"] is not None:
            raise Contradiction(
                f"conflict {conflict_id} was resolved by {old['resolved_by']}: "
                f"{old['resolution_note']}",
                "already_resolved",
            )
        detail = dict(old["detail"])
        if old["kind"] == "clock_skew":
            cur = await conn.execute(
                "SELECT max_seq FROM device WHERE id = %s", (old["subject_id"],)
            )
            rec = await cur.fetchone()
            detail["resolved_through"] = int(rec[0]) if rec else 0
        await conn.execute(
            "UPDATE conflict SET resolved_at = now(), resolved_by = %s, resolution_note = %s,"
            " detail = %s WHERE ref = %s",
            (actor, note, Jsonb(detail), conflict_id),
        )
        if old["kind"] == "duplicate_entry":
            await refresh_suspicious(conn, festival_id, [old["subject_id"]])
        await audit.record(
            conn, actor=actor, action="conflict.resolve", entity_type="conflict",
            entity_id=conflict_id, old={"resolved_at": None},
            new={"resolved_by": actor, "note": note}, festival_id=festival_id,
        )  # fmt: skip
        new = await _conflict(conn, festival_id, conflict_id)
        return _item(new, await readable.local(conn, festival_id))
