"""Vendors as ops see them, and opening or closing one by name (bars learn it by the feed)."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from central import catalog, refs, views


class VendorView(BaseModel):
    """A vendor: whether it sells now, what it sells, the bars that sell for it."""

    id: uuid.UUID
    name: str
    type: catalog.VendorType
    is_open: bool
    commission_rate_bp: int = Field(ge=0, le=10_000, description="basis points")
    products: int = Field(ge=0)
    devices: int = Field(ge=0, description="its bar devices, not revoked")


_VENDORS = """
SELECT v.id, v.name, v.type, v.is_open, v.commission_rate_bp,
       (SELECT count(*) FROM product p WHERE p.vendor_id = v.id) AS products,
       (SELECT count(*) FROM device d WHERE d.vendor_id = v.id AND d.revoked_at IS NULL)
         AS devices
FROM vendor v WHERE v.festival_id = %(fid)s AND (%(vendor)s::uuid IS NULL OR v.id = %(vendor)s)
ORDER BY v.name, v.id
"""


async def list_vendors(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, vendor_id: uuid.UUID | None = None
) -> list[VendorView]:
    """The festival's vendors (or one) by name."""
    params = {"vendor": vendor_id}
    return await views.festival_models(conn, festival_id, VendorView, _VENDORS, params)


async def set_open(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, ref: str, is_open: bool, *, actor: str
) -> VendorView:
    """Open or close a vendor by name or id (`catalog.set_vendor_open`: feed and audit)."""
    vid = await refs.vendor(conn, festival_id, ref)
    await catalog.set_vendor_open(conn, vid, is_open, actor=actor)
    (view,) = await list_vendors(conn, festival_id, vid)
    return view
