"""Ops endpoints under ``/v1/ops/festivals/…``, each checked against the role matrix.

Tickets, wristbands and conflicts, which name the festival by slug or id, have modules of
their own (`central.api.ops_tickets`, `ops_wristbands`, `ops_conflicts`); the app mounts
this module's `router`, which carries theirs.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from central import enrol, ops
from central.api import ops_conflicts, ops_tickets, ops_wristbands
from central.api.deps import OpsDep, StateDep, parse_uuid
from central.api.errors import ApiError
from central.api.text import PgText
from central.auth import Action, OpsPrincipal, require
from sync.protocol import MAX_BIGINT, ErrorBody

router = APIRouter(prefix="/v1/ops/festivals/{festival_id}", tags=["ops"])
Json = dict[str, Any]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422)
}


class EnrolCodeRequest(BaseModel):
    """What a new device will be enrolled as."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["gate", "bar", "topup"]
    zone_id: uuid.UUID | None = None
    vendor_id: uuid.UUID | None = None
    ttl_s: int = Field(3600, ge=60, le=7 * 24 * 3600)


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


@router.get("/devices", responses=_ERRORS)
async def list_devices(festival_id: PgText, who: OpsDep, st: StateDep) -> list[Json]:
    """Devices: last seen, sync lag, pending events, clock skew, revoked."""
    fid = _festival(festival_id, who, Action.VIEW_DEVICES)
    async with st.pool.connection() as conn:
        return await ops.list_devices(conn, fid)


@router.post("/devices/{device_id}/revoke", responses=_ERRORS)
async def revoke_device(festival_id: PgText, device_id: PgText, who: OpsDep, st: StateDep) -> Json:
    """Revoke a device; its token is refused from the next request on."""
    fid = _festival(festival_id, who, Action.REVOKE_DEVICE)
    did = await _owned(st, "device", device_id, fid)
    async with st.pool.connection() as conn:
        await enrol.revoke_device(conn, did, actor=who.actor)
    return {"device_id": str(did), "revoked": True}


@router.post("/enrol-codes", responses=_ERRORS)
async def create_enrol_code(
    festival_id: PgText, body: EnrolCodeRequest, who: OpsDep, st: StateDep
) -> Json:
    """A one-time enrol code for a new device (shown once)."""
    fid = _festival(festival_id, who, Action.CREATE_ENROL_CODE)
    async with st.pool.connection() as conn:
        code = await enrol.create_enrol_code(
            conn, festival_id=fid, role=body.role, zone_id=body.zone_id,
            vendor_id=body.vendor_id, ttl_s=body.ttl_s, actor=who.actor,
        )  # fmt: skip
    return {"code": code, "role": body.role, "ttl_s": body.ttl_s}


@router.get("/zones/occupancy", responses=_ERRORS)
async def zone_occupancy(festival_id: PgText, who: OpsDep, st: StateDep) -> list[Json]:
    """Occupancy and capacity per zone."""
    fid = _festival(festival_id, who, Action.VIEW_OCCUPANCY)
    async with st.pool.connection() as conn:
        return await ops.zone_occupancy(conn, fid)


@router.get("/entries", responses=_ERRORS)
async def entries(
    festival_id: PgText,
    who: OpsDep,
    st: StateDep,
    bucket_s: Annotated[int, Query(ge=60, le=86400)] = 300,
) -> list[Json]:
    """Entries and exits per zone and gate over time."""
    fid = _festival(festival_id, who, Action.VIEW_ENTRIES)
    async with st.pool.connection() as conn:
        return await ops.entries_over_time(conn, fid, bucket_s=bucket_s)


@router.get("/sales", responses=_ERRORS)
async def sales(festival_id: PgText, who: OpsDep, st: StateDep) -> list[Json]:
    """Sales count and amount per vendor."""
    fid = _festival(festival_id, who, Action.VIEW_SALES)
    async with st.pool.connection() as conn:
        return await ops.sales_per_vendor(conn, fid)


@router.get("/devices/{device_id}/log", responses=_ERRORS)
async def device_log(
    festival_id: PgText,
    device_id: PgText,
    who: OpsDep,
    st: StateDep,
    after_seq: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[Json]:
    """A device's log lines."""
    fid = _festival(festival_id, who, Action.VIEW_DEVICE_LOG)
    did = await _owned(st, "device", device_id, fid)
    async with st.pool.connection() as conn:
        return await ops.device_log(conn, fid, did, after_seq=after_seq, limit=limit)


# Each part's routes carry their full path already: added as they are (include_router would
# put this router's prefix in front of them).
for _part in (ops_tickets.router, ops_wristbands.router, ops_conflicts.router):
    router.routes.extend(_part.routes)
