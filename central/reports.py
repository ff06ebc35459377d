"""Reports: zone occupancy, entries over time, sales per vendor; by name, in local time.

Entries and exits are bucketed by the festival's own clock (`festival.timezone`), so a day
bucket starts at local midnight and a bucket's time reads as the gate's wall clock.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from central import views
from central.devices import LABEL_SQL
from sync import facts
from sync.vocab import EventKind


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
_ENTRIES = f"""
SELECT date_bin(%(bucket_s)s * interval '1 s', a.at AT TIME ZONE %(tz)s, TIMESTAMP '2000-01-01')
         AT TIME ZONE %(tz)s AS bucket,
       a.zone_id, z.name AS zone, a.device_id, {LABEL_SQL} AS gate,
       count(*) FILTER (WHERE a.action = 'ENTRY') AS entries,
       count(*) FILTER (WHERE a.action = 'EXIT') AS exits
FROM zone_access_log a JOIN zone z ON z.id = a.zone_id JOIN device d ON d.id = a.device_id
WHERE a.festival_id = %(fid)s
GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 3, 5, 4
"""
# Sales are the ledger's payments: approved sales at bar devices (the vendor is the
# device's) and any payment central booked itself with a vendor (`cashless_entry`, unrolled
# here so the devices' sales are summed per device first).
_SALES = f"""
WITH s AS (
  SELECT d.vendor_id, count(*) AS sales, sum(e.amount) AS amount
  FROM device_event e JOIN device d ON d.id = e.device_id
  WHERE e.festival_id = %(fid)s AND {facts.sql_in("e.kind", [EventKind.SALE])}
    AND e.account_id IS NOT NULL AND e.status = 'applied'
    AND {facts.admits_sql("money", "e.")} AND e.amount > 0
  GROUP BY d.vendor_id
  UNION ALL
  SELECT vendor_id, count(*), -sum(amount) FROM cashless_transaction
  WHERE festival_id = %(fid)s AND type = 'PAYMENT' AND vendor_id IS NOT NULL
  GROUP BY vendor_id)
SELECT v.id AS vendor_id, v.name AS vendor, coalesce(sum(s.sales), 0)::bigint AS sales,
       coalesce(sum(s.amount), 0)::bigint AS amount, f.currency
FROM vendor v JOIN festival f ON f.id = v.festival_id LEFT JOIN s ON s.vendor_id = v.id
WHERE v.festival_id = %(fid)s GROUP BY v.id, v.name, f.currency ORDER BY v.name, v.id
"""


async def zone_occupancy(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> list[ZoneOccupancy]:
    """Each zone's capacity and occupancy (central's view: tickets believed inside)."""
    return await views.festival_models(conn, festival_id, ZoneOccupancy, _OCCUPANCY, {})


async def entries_over_time(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, *, bucket_s: int = 300
) -> list[EntryBucket]:
    """Entries and exits per zone and gate per local time bucket (by when they happened)."""
    params = {"bucket_s": bucket_s}
    return await views.festival_models(conn, festival_id, EntryBucket, _ENTRIES, params)


async def sales_per_vendor(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> list[VendorSales]:
    """Sales count and amount (positive, with the currency) per vendor, from the ledger."""
    return await views.festival_models(conn, festival_id, VendorSales, _SALES, {})
