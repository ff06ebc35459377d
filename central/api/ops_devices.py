"""Ops endpoints for a festival's devices and enrol codes, by name: health, log, revoke."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from central import devices, enrol
from central.api.deps import OpsDep, StateDep
from central.api.ops_scope import ERRORS, FESTIVAL_PREFIX, FestivalRef, in_festival, name_param
from central.auth import Action
from config.vocab import Role
from sync.protocol import MAX_BIGINT, PgText

router = APIRouter(prefix=FESTIVAL_PREFIX, tags=["ops: devices"])
DeviceRef = Annotated[str, name_param("device")]
CodeRef = Annotated[str, name_param("enrol code's short id (or the code)", 64)]


class EnrolCodeRequest(BaseModel):
    """What a new device will be enrolled as: a gate at a zone, a bar for a vendor."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    zone: PgText | None = Field(None, min_length=1, max_length=200, description="name or id")
    vendor: PgText | None = Field(None, min_length=1, max_length=200, description="name or id")
    ttl_s: int = Field(3600, ge=60, le=enrol.MAX_TTL_S, description="seconds it stays valid")


@router.get("/devices", response_model=list[devices.DeviceHealth], responses=ERRORS)
async def list_devices(
    festival: FestivalRef, who: OpsDep, st: StateDep
) -> list[devices.DeviceHealth]:
    """Devices by name: zone or vendor, last seen, online, sync lag, pending events, clock."""
    return await in_festival(st, festival, who, Action.VIEW_DEVICES, devices.list_devices)


@router.get("/devices/{device}", response_model=devices.DeviceDetail, responses=ERRORS)
async def show_device(
    festival: FestivalRef, device: DeviceRef, who: OpsDep, st: StateDep
) -> devices.DeviceDetail:
    """One device: its health, its events' counts and its latest log lines."""
    act = partial(devices.show_device, ref=device)
    return await in_festival(st, festival, who, Action.VIEW_DEVICES, act)


@router.get("/devices/{device}/log", response_model=list[devices.LogLine], responses=ERRORS)
async def device_log(
    festival: FestivalRef,
    device: DeviceRef,
    who: OpsDep,
    st: StateDep,
    after_seq: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[devices.LogLine]:
    """A device's log lines after a device_seq, oldest first."""
    act = partial(devices.device_log, ref=device, after_seq=after_seq, limit=limit)
    return await in_festival(st, festival, who, Action.VIEW_DEVICE_LOG, act)


@router.post("/devices/{device}/revoke", response_model=devices.DeviceHealth, responses=ERRORS)
async def revoke_device(
    festival: FestivalRef, device: DeviceRef, who: OpsDep, st: StateDep
) -> devices.DeviceHealth:
    """Revoke a device: its token is refused from its next request on (409 if it already is)."""
    act = partial(devices.revoke_device, ref=device, actor=who.actor)
    return await in_festival(st, festival, who, Action.REVOKE_DEVICE, act)


@router.post("/enrol-codes", response_model=enrol.NewEnrolCode, responses=ERRORS)
async def create_enrol_code(
    festival: FestivalRef, body: EnrolCodeRequest, who: OpsDep, st: StateDep
) -> enrol.NewEnrolCode:
    """A one-time enrol code for a new device: the code is shown this once."""
    act = partial(
        enrol.issue_enrol_code, role=body.role, zone=body.zone, vendor=body.vendor,
        ttl_s=body.ttl_s, actor=who.actor,
    )  # fmt: skip
    return await in_festival(st, festival, who, Action.CREATE_ENROL_CODE, act)


@router.get("/enrol-codes", response_model=list[enrol.EnrolCodeView], responses=ERRORS)
async def list_enrol_codes(
    festival: FestivalRef, who: OpsDep, st: StateDep
) -> list[enrol.EnrolCodeView]:
    """Enrol codes that still work (unused, unexpired, unrevoked), by short id."""
    return await in_festival(st, festival, who, Action.VIEW_ENROL_CODES, enrol.list_enrol_codes)


@router.post("/enrol-codes/{code}/revoke", response_model=enrol.EnrolCodeView, responses=ERRORS)
async def revoke_enrol_code(
    festival: FestivalRef, code: CodeRef, who: OpsDep, st: StateDep
) -> enrol.EnrolCodeView:
    """Revoke an unused code (409 ``already_used``, ``already_revoked`` or ``expired``)."""
    act = partial(enrol.revoke_enrol_code, ref=code, actor=who.actor)
    return await in_festival(st, festival, who, Action.REVOKE_ENROL_CODE, act)
