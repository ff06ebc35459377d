"""Ops reports under ``/v1/ops/festivals/{festival_id}``: occupancy, entries, sales."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from central import reports
from central.api.deps import OpsDep, StateDep
from central.api.ops import _ERRORS, Json, _festival
from central.api.text import PgText
from central.auth import Action

router = APIRouter(prefix="/v1/ops/festivals/{festival_id}", tags=["ops"])


@router.get("/zones/occupancy", responses=_ERRORS)
async def zone_occupancy(festival_id: PgText, who: OpsDep, st: StateDep) -> list[Json]:
    """Occupancy and capacity per zone."""
    fid = _festival(festival_id, who, Action.VIEW_OCCUPANCY)
    async with st.pool.connection() as conn:
        return await reports.zone_occupancy(conn, fid)


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
        return await reports.entries_over_time(conn, fid, bucket_s=bucket_s)


@router.get("/sales", responses=_ERRORS)
async def sales(festival_id: PgText, who: OpsDep, st: StateDep) -> list[Json]:
    """Sales count and amount per vendor."""
    fid = _festival(festival_id, who, Action.VIEW_SALES)
    async with st.pool.connection() as conn:
        return await reports.sales_per_vendor(conn, fid)
