"""Ops endpoints under ``/v1/ops/festivals/{festival_id}``, each checked against the role matrix."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from central import cashless, catalog, classify, ops, tickets
from central.api.deps import OpsDep, StateDep, parse_uuid
from central.api.errors import ApiError
from central.api.text import PgText
from central.auth import Action, OpsPrincipal, require
from central.errors import NotFound
from central.ingest import festival_lock
from sync.hashing import tag_hash
from sync.protocol import ErrorBody

router = APIRouter(prefix="/v1/ops/festivals/{festival_id}", tags=["ops"])
Json = dict[str, Any]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422)
}


class ResolveRequest(BaseModel):
    """How ops settled a conflict."""

    model_config = ConfigDict(extra="forbid")
    note: PgText = Field(min_length=1, max_length=2000)


class ReasonRequest(BaseModel):
    """Why a ticket or wristband is being blocked or cancelled."""

    model_config = ConfigDict(extra="forbid")
    reason: PgText = Field("", max_length=200)


class AmountRequest(BaseModel):
    """An amount of money in cents."""

    model_config = ConfigDict(extra="forbid")
    amount: int = Field(gt=0, le=10**9)


def _festival(festival_id: str, who: OpsPrincipal, action: Action) -> uuid.UUID:
    fid = parse_uuid(festival_id, "festival_id")
    require(who, action, fid)
    return fid


async def _owned(st: StateDep, table: str, row_id: str, fid: uuid.UUID) -> uuid.UUID:
    """A row id of this festival (404 otherwise: other festivals' rows do not exist here)."""
    rid = parse_uuid(row_id, f"{table} id")
    async with st.pool.connection() as conn:
        cur = await conn.execute(f"SELECT festival_id FROM {table} WHERE id = %s", (rid,))
        rec = await cur.fetchone()
    if rec is None or rec[0] != fid:
        raise ApiError(404, "not_found", f"no {table} {rid} in this festival")
    return rid


@router.get("/conflicts", responses=_ERRORS)
async def list_conflicts(
    festival_id: PgText,
    who: OpsDep,
    st: StateDep,
    open_only: bool = True,
    kind: PgText | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[Json]:
    """Conflicts with both facts, newest first."""
    fid = _festival(festival_id, who, Action.VIEW_CONFLICTS)
    async with st.pool.connection() as conn:
        return await ops.list_conflicts(conn, fid, open_only=open_only, kind=kind, limit=limit)


@router.post("/conflicts/{conflict_id}/resolve", responses=_ERRORS)
async def resolve_conflict(
    festival_id: PgText, conflict_id: uuid.UUID, body: ResolveRequest, who: OpsDep, st: StateDep
) -> Json:
    """Resolve a conflict (its id as the list gives it) with a note."""
    fid = _festival(festival_id, who, Action.RESOLVE_CONFLICT)
    async with st.pool.connection() as conn:
        return await ops.resolve_conflict(conn, fid, conflict_id, actor=who.actor, note=body.note)


@router.get("/tickets/{ticket_id}", responses=_ERRORS)
async def ticket_history(festival_id: PgText, ticket_id: PgText, who: OpsDep, st: StateDep) -> Json:
    """A ticket's state, scans, access log, conflicts and audit trail."""
    fid = _festival(festival_id, who, Action.VIEW_TICKET)
    async with st.pool.connection() as conn:
        return await ops.ticket_history(conn, fid, parse_uuid(ticket_id, "ticket id"))


async def _account_id(st: StateDep, fid: uuid.UUID, ref: str) -> uuid.UUID:
    """An account by id, or by a wristband's tag UID (hex) hashed with the festival key."""
    try:
        return await _owned(st, "cashless_account", str(uuid.UUID(ref)), fid)
    except ValueError:
        pass
    async with st.pool.connection() as conn:
        cur = await conn.execute("SELECT hash_key FROM festival WHERE id = %s", (fid,))
        rec = await cur.fetchone()
        if rec is None:
            raise NotFound("no such festival")
        try:
            digest = tag_hash(bytes(rec[0]), ref)
        except ValueError:
            raise ApiError(422, "invalid_request", "expected an account id or a tag UID") from None
        return await ops.account_by_tag(conn, fid, digest)


@router.get("/accounts/{account_ref}/ledger", responses=_ERRORS)
async def account_ledger(
    festival_id: PgText, account_ref: PgText, who: OpsDep, st: StateDep
) -> Json:
    """A wristband's ledger (by account id or tag UID)."""
    fid = _festival(festival_id, who, Action.VIEW_LEDGER)
    aid = await _account_id(st, fid, account_ref)
    async with st.pool.connection() as conn:
        return await ops.account_ledger(conn, fid, aid)


@router.post("/tickets/{ticket_id}/cancel", responses=_ERRORS)
async def cancel_ticket(festival_id: PgText, ticket_id: PgText, who: OpsDep, st: StateDep) -> Json:
    """Cancel a ticket (gates refuse it from their next sync)."""
    fid = _festival(festival_id, who, Action.CANCEL_TICKET)
    tid = await _owned(st, "ticket", ticket_id, fid)
    async with st.pool.connection() as conn:
        row = await tickets.cancel_ticket(conn, tid, actor=who.actor)
    return row.model_dump(mode="json")


@router.post("/tickets/{ticket_id}/block", responses=_ERRORS)
async def block_ticket(
    festival_id: PgText, ticket_id: PgText, body: ReasonRequest, who: OpsDep, st: StateDep
) -> Json:
    """Put a ticket on the block list."""
    fid = _festival(festival_id, who, Action.BLOCK_TICKET)
    tid = await _owned(st, "ticket", ticket_id, fid)
    async with st.pool.connection() as conn:
        row = await catalog.block(
            conn, fid, kind="ticket", ref=str(tid), reason=body.reason, actor=who.actor
        )
    return row.model_dump(mode="json")


async def _account_write(
    st: StateDep, fid: uuid.UUID, aid: uuid.UUID, who: OpsPrincipal, what: str, amount: int = 0
) -> Json:
    """One ops write to an account, then its rules re-run (a top-up may clear a debt hold)."""
    async with st.pool.connection() as conn, conn.transaction():
        await festival_lock(conn, fid)
        if what == "block":
            await cashless.set_blocked(conn, aid, True, actor=who.actor)
        elif what == "unblock":
            await cashless.set_blocked(conn, aid, False, actor=who.actor)
        elif what == "topup":
            await cashless.topup(conn, aid, amount, actor=who.actor)
        else:
            await cashless.refund(conn, aid, amount, actor=who.actor)
        await classify.classify_accounts(conn, fid, [aid])
        result = await ops.account_ledger(conn, fid, aid)
    account: Json = result["account"]
    return account


@router.post("/accounts/{account_ref}/block", responses=_ERRORS)
async def block_account(
    festival_id: PgText, account_ref: PgText, who: OpsDep, st: StateDep
) -> Json:
    """Block a wristband."""
    fid = _festival(festival_id, who, Action.BLOCK_TAG)
    return await _account_write(st, fid, await _account_id(st, fid, account_ref), who, "block")


@router.post("/accounts/{account_ref}/unblock", responses=_ERRORS)
async def unblock_account(
    festival_id: PgText, account_ref: PgText, who: OpsDep, st: StateDep
) -> Json:
    """Unblock a wristband (a debt hold stays until the debt is paid)."""
    fid = _festival(festival_id, who, Action.BLOCK_TAG)
    return await _account_write(st, fid, await _account_id(st, fid, account_ref), who, "unblock")


@router.post("/accounts/{account_ref}/topup", responses=_ERRORS)
async def topup_account(
    festival_id: PgText, account_ref: PgText, body: AmountRequest, who: OpsDep, st: StateDep
) -> Json:
    """Top up a wristband at the ops desk."""
    fid = _festival(festival_id, who, Action.TOPUP)
    aid = await _account_id(st, fid, account_ref)
    return await _account_write(st, fid, aid, who, "topup", body.amount)


@router.post("/accounts/{account_ref}/refund", responses=_ERRORS)
async def refund_account(
    festival_id: PgText, account_ref: PgText, body: AmountRequest, who: OpsDep, st: StateDep
) -> Json:
    """Pay money back from a wristband at the ops desk."""
    fid = _festival(festival_id, who, Action.REFUND)
    aid = await _account_id(st, fid, account_ref)
    return await _account_write(st, fid, aid, who, "refund", body.amount)
