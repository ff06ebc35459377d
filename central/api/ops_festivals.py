"""Ops endpoints for running a festival, by name: show or delete it, its vendors, its keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from central import festivals, keys, vendors
from central.api.deps import OpsDep, StateDep
from central.api.ops_scope import ERRORS, FESTIVAL_PREFIX, FestivalRef, festival_for, name_param
from central.auth import Action

router = APIRouter(prefix=FESTIVAL_PREFIX, tags=["ops: festival"])
VendorRef = Annotated[str, name_param("vendor")]
KeyId = Annotated[int, Path(ge=0, lt=2**31, description="the key's key_id")]


@router.get("", response_model=festivals.FestivalDetail, responses=ERRORS)
async def show_festival(
    festival: FestivalRef, who: OpsDep, st: StateDep
) -> festivals.FestivalDetail:
    """A festival: settings, counts, signing keys, and what its outside codes risk."""
    async with st.pool.connection() as conn:
        fid = await festival_for(conn, festival, who, Action.VIEW_FESTIVAL)
        return await festivals.show_festival(conn, fid)


@router.delete("", response_model=festivals.FestivalDeleted, responses=ERRORS)
async def delete_festival(
    festival: FestivalRef,
    who: OpsDep,
    st: StateDep,
    revoke_devices: Annotated[
        bool, Query(description="revoke its devices too (else 409 while any is live)")
    ] = False,
) -> festivals.FestivalDeleted:
    """Soft-delete a festival (admins): its unused enrol codes are revoked with it; while a
    device is not revoked, 409 ``festival_has_devices`` unless ``revoke_devices``."""
    async with st.pool.connection() as conn:
        fid = await festival_for(conn, festival, who, Action.DELETE_FESTIVAL)
        return await festivals.delete_festival(
            conn, fid, actor=who.actor, revoke_devices=revoke_devices
        )


@router.get("/vendors", response_model=list[vendors.VendorView], responses=ERRORS)
async def list_vendors(
    festival: FestivalRef, who: OpsDep, st: StateDep
) -> list[vendors.VendorView]:
    """Vendors: open or closed, products, bar devices."""
    async with st.pool.connection() as conn:
        fid = await festival_for(conn, festival, who, Action.VIEW_VENDORS)
        return await vendors.list_vendors(conn, fid)


async def _set_open(
    festival: str, vendor: str, is_open: bool, who: OpsDep, st: StateDep
) -> vendors.VendorView:
    async with st.pool.connection() as conn:
        fid = await festival_for(conn, festival, who, Action.OPEN_VENDOR)
        return await vendors.set_open(conn, fid, vendor, is_open, actor=who.actor)


@router.post("/vendors/{vendor}/open", response_model=vendors.VendorView, responses=ERRORS)
async def open_vendor(
    festival: FestivalRef, vendor: VendorRef, who: OpsDep, st: StateDep
) -> vendors.VendorView:
    """Open a vendor: its bars sell again from their next sync (409 ``already_open``)."""
    return await _set_open(festival, vendor, True, who, st)


@router.post("/vendors/{vendor}/close", response_model=vendors.VendorView, responses=ERRORS)
async def close_vendor(
    festival: FestivalRef, vendor: VendorRef, who: OpsDep, st: StateDep
) -> vendors.VendorView:
    """Close a vendor: its bars answer ``vendor_closed`` from their next sync (409
    ``already_closed``)."""
    return await _set_open(festival, vendor, False, who, st)


@router.get("/keys", response_model=list[keys.KeyView], responses=ERRORS)
async def list_keys(festival: FestivalRef, who: OpsDep, st: StateDep) -> list[keys.KeyView]:
    """Signing keys (public halves), oldest first; the newest unrevoked one signs."""
    async with st.pool.connection() as conn:
        fid = await festival_for(conn, festival, who, Action.VIEW_KEYS)
        return await keys.list_keys(conn, fid)


@router.post("/keys/rotate", response_model=keys.KeyView, responses=ERRORS)
async def rotate_key(festival: FestivalRef, who: OpsDep, st: StateDep) -> keys.KeyView:
    """Add a key that signs new codes from now on; older ones verify until revoked."""
    async with st.pool.connection() as conn:
        fid = await festival_for(conn, festival, who, Action.ROTATE_KEY)
        return await keys.rotate(conn, fid, actor=who.actor)


@router.post("/keys/{key_id}/revoke", response_model=keys.KeyRevocation, responses=ERRORS)
async def revoke_key(
    festival: FestivalRef, key_id: KeyId, who: OpsDep, st: StateDep
) -> keys.KeyRevocation:
    """Revoke a key: devices refuse every code it signed. Revoking the key that signs makes
    a new one first; 409 ``already_revoked`` if it is."""
    async with st.pool.connection() as conn:
        fid = await festival_for(conn, festival, who, Action.REVOKE_KEY)
        return await keys.revoke(conn, fid, key_id, actor=who.actor)
