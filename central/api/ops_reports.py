"""Ops reports of a festival, by name and in its time zone: occupancy, entries, sales."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from central import reports
from central.api.deps import OpsDep, StateDep
from central.api.ops_scope import ERRORS, FESTIVAL_PREFIX, FestivalRef, festival_for
from central.auth import Action

router = APIRouter(prefix=FESTIVAL_PREFIX, tags=["ops: reports"])


@router.get("/zones/occupancy", response_model=list[reports.ZoneOccupancy], responses=ERRORS)
async def zone_occupancy(
    festival: FestivalRef, who: OpsDep, st: StateDep
) -> list[reports.ZoneOccupancy]:
    """Occupancy and capacity per zone."""
    async with st.pool.connection() as conn:
        fid = await festival_for(conn, festival, who, Action.VIEW_OCCUPANCY)
        return await reports.zone_occupancy(conn, fid)


@router.get("/entries", response_model=list[reports.EntryBucket], responses=ERRORS)
async def entries(
    festival: FestivalRef,
    who: OpsDep,
    st: StateDep,
    bucket_s: Annotated[
        int, Query(ge=60, le=86400, multiple_of=60, description="bucket length, whole minutes")
    ] = 300,
) -> list[reports.EntryBucket]:
    """Entries and exits per zone and gate (by name) per bucket of the festival's clock."""
    async with st.pool.connection() as conn:
        fid = await festival_for(conn, festival, who, Action.VIEW_ENTRIES)
        return await reports.entries_over_time(conn, fid, bucket_s=bucket_s)


@router.get("/sales", response_model=list[reports.VendorSales], responses=ERRORS)
async def sales(festival: FestivalRef, who: OpsDep, st: StateDep) -> list[reports.VendorSales]:
    """Sales count and amount (with the currency) per vendor."""
    async with st.pool.connection() as conn:
        fid = await festival_for(conn, festival, who, Action.VIEW_SALES)
        return await reports.sales_per_vendor(conn, fid)
