"""Ops endpoints for devices and enrol codes under ``/v1/ops/festivals/{festival_id}``."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from central import devices, enrol
from central.api.deps import OpsDep, StateDep
from central.api.ops import _ERRORS, Json, _festival, _owned
from central.api.text import PgText
from central.auth import Action
from sync.protocol import MAX_BIGINT

router = APIRouter(prefix="/v1/ops/festivals/{festival_id}", tags=["ops"])


class EnrolCodeRequest(BaseModel):
    """What a new device will be enrolled as."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["gate", "bar", "topup"]
    zone_id: uuid.UUID | None = None
    vendor_id: uuid.UUID | None = None
    ttl_s: int = Field(3600, ge=60, le=7 * 24 * 3600)


@router.get("/devices", responses=_ERRORS)
async def list_devices(festival_id: PgText, who: OpsDep, st: StateDep) -> list[Json]:
    """Devices: last seen, sync lag, pending events, clock skew, revoked."""
    fid = _festival(festival_id, who, Action.VIEW_DEVICES)
    async with st.pool.connection() as conn:
        return await devices.list_devices(conn, fid)


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
        return await devices.device_log(conn, fid, did, after_seq=after_seq, limit=limit)
