"""Reports: zone occupancy, entries over time, sales per vendor (and per product over
time, net of refunds); by name, in local time.

Entries and exits are bucketed by the festival's own clock (`festival.timezone`), so a day
bucket starts at local midnight and a bucket's time reads as the gate's wall clock.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from central import rollups, views
from central.devices import LABEL_SQL


class ZoneOccupancy(BaseModel):
    """A zone's capacity and the tickets central believes inside."""

    zone_id: uuid.UUID
    zone: str
    capacity: int | None = Field(description="none: unlimited")
    occupancy: int = Field(ge=0)


class EntryBucket(BaseModel):
    """Entries and exits through one gate into one zone during one time bucket."""

    bucket: datetime = Field(description="the bucket's start, in the festival's time zone")
    zone_id: uuid.UUID
    zone: str
    device_id: uuid.UUID
    gate: str = Field(description="the gate device's name")
    entries: int = Field(ge=0)
    exits: int = Field(ge=0)


class VendorSales(BaseModel):
    """A vendor's sales: how many and how much (minor units of the festival's currency)."""

    vendor_id: uuid.UUID
    vendor: str
    sales: int = Field(ge=0)
    amount: int = Field(ge=0, description="minor units (cents) of `currency`")
    currency: str = Field(pattern="^[A-Z]{3}$")


_OCCUPANCY = """
SELECT id AS zone_id, name AS zone, capacity, greatest(occupancy, 0) AS occupancy FROM zone
WHERE festival_id = %(fid)s ORDER BY name, id
"""
# date_bin on the local wall-clock time, then back to an instant: buckets start at local
# midnight, on the hour, etc. (In the hour a clock goes back, both passes share a bucket.)
# Read from the running totals per minute (`central.rollups`); a bucket is whole minutes.
_ENTRIES = f"""
SELECT date_bin(%(bucket_s)s * interval '1 s', g.minute AT TIME ZONE %(tz)s,
                TIMESTAMP '2000-01-01') AT TIME ZONE %(tz)s AS bucket,
       g.zone_id, z.name AS zone, g.device_id, {LABEL_SQL} AS gate,
       sum(g.entries)::bigint AS entries, sum(g.exits)::bigint AS exits
FROM gate_by_minute g JOIN zone z ON z.id = g.zone_id JOIN device d ON d.id = g.device_id
WHERE g.festival_id = %(fid)s
GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 3, 5, 4
"""
# Sales are the ledger's payments at a vendor: approved sales at its bars and payments
# central booked with it; the running totals keep their count and gross amount on each
# vendor's "no product" line (`central.rollups`).
_SALES = """
SELECT v.id AS vendor_id, v.name AS vendor, coalesce(sum(s.sales), 0)::bigint AS sales,
       coalesce(sum(s.gross), 0)::bigint AS amount, f.currency
FROM vendor v JOIN festival f ON f.id = v.festival_id
LEFT JOIN sales_by_quarter s ON s.vendor_id = v.id AND s.product_id IS NULL
WHERE v.festival_id = %(fid)s GROUP BY v.id, v.name, f.currency ORDER BY v.name, v.id
"""


async def zone_occupancy(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> list[ZoneOccupancy]:
    """Each zone's capacity and occupancy (central's view: tickets believed inside)."""
    return await views.festival_models(conn, festival_id, ZoneOccupancy, _OCCUPANCY, {})


async def entries_over_time(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, *, bucket_s: int = 300
) -> list[EntryBucket]:
    """Entries and exits per zone and gate per local time bucket (whole minutes) by when
    they happened."""
    if bucket_s % 60:
        raise ValueError(f"an entries bucket is whole minutes, not {bucket_s} s")
    params = {"bucket_s": bucket_s}
    return await views.festival_models(conn, festival_id, EntryBucket, _ENTRIES, params)


async def sales_per_vendor(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> list[VendorSales]:
    """Sales count and amount (positive, with the currency) per vendor, from the ledger."""
    return await views.festival_models(conn, festival_id, VendorSales, _SALES, {})


class ProductSales(BaseModel):
    """One vendor's net sales of one product during one time bucket: sales less refunds."""

    bucket: datetime = Field(description="the bucket's start, in the festival's time zone")
    vendor_id: uuid.UUID
    vendor: str
    product_id: uuid.UUID | None = Field(description="none: sales by amount, not by product")
    product: str | None
    quantity: int = Field(description="items sold less items refunded")
    amount: int = Field(description="minor units (cents): sold less refunded")
    currency: str = Field(pattern="^[A-Z]{3}$")


# Net sales per vendor and product, from the running totals per quarter hour
# (`central.rollups`, which says what counts), bucketed as `_ENTRIES` does.
_PRODUCT_SALES = """
SELECT date_bin(%(bucket_s)s * interval '1 s', s.quarter AT TIME ZONE %(tz)s,
                TIMESTAMP '2000-01-01') AT TIME ZONE %(tz)s AS bucket,
       s.vendor_id, v.name AS vendor, s.product_id, p.name AS product,
       sum(s.quantity)::bigint AS quantity, sum(s.amount)::bigint AS amount, f.currency
FROM sales_by_quarter s JOIN vendor v ON v.id = s.vendor_id
JOIN festival f ON f.id = s.festival_id LEFT JOIN product p ON p.id = s.product_id
WHERE s.festival_id = %(fid)s
GROUP BY 1, 2, 3, 4, 5, f.currency HAVING sum(s.quantity) <> 0 OR sum(s.amount) <> 0
ORDER BY 1, 3, 2, 5 NULLS LAST, 4
"""


async def product_sales_over_time(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, *, bucket_s: int = 3600
) -> list[ProductSales]:
    """Net sales (sold less refunded) per vendor and product per local time bucket (whole
    quarter hours)."""
    if bucket_s % rollups.QUARTER_S:
        raise ValueError(f"a sales bucket is whole quarter hours, not {bucket_s} s")
    params = {"bucket_s": bucket_s}
    return await views.festival_models(conn, festival_id, ProductSales, _PRODUCT_SALES, params)
