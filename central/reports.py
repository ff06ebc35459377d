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


# Approved sales at bars, by the basket's lines (``items``: product, quantity, price) when a
# line is readable; what a basket's readable lines do not explain (a sale by amount, an
# unreadable line) is the vendor's "no product" line, so every amount adds up to the
# ledger's. A bar's refund of a sale (``refund_of``) takes that sale's lines back, in the
# bucket of when it was refunded; a payment central booked with a vendor is a "no product"
# sale. Times are when it happened (the HLC's wall clock), bucketed as `_ENTRIES` does.
_IS_SALE = facts.sql_in("e.kind", [EventKind.SALE])
_PRODUCT_SALES = f"""
WITH ev AS (
  SELECT e.event_id, to_timestamp((e.hlc >> 16) / 1000.0) AS at, d.vendor_id,
         CASE WHEN {_IS_SALE} THEN 1 ELSE -1 END AS sign, e.amount AS total,
         CASE WHEN {_IS_SALE} THEN e.payload -> 'items' ELSE s.payload -> 'items' END AS items
  FROM device_event e JOIN device d ON d.id = e.device_id
  LEFT JOIN device_event s ON {facts.sql_in("e.kind", [EventKind.REFUND])}
       AND {facts.sql_in("s.kind", [EventKind.SALE])}
       AND s.event_id = payload_uuid(e.payload ->> 'refund_of') AND s.device_id = e.device_id
  WHERE e.festival_id = %(fid)s AND {facts.sql_in("e.kind", [EventKind.SALE, EventKind.REFUND])}
    AND d.vendor_id IS NOT NULL AND e.status = 'applied'
    AND {facts.admits_sql("money", "e.")} AND e.amount > 0),
items AS (
  SELECT ev.event_id, payload_uuid(i ->> 'product_id') AS product_id,
         (i ->> 'qty')::bigint AS qty, (i ->> 'price')::bigint AS price
  FROM ev CROSS JOIN LATERAL jsonb_array_elements(
         CASE WHEN jsonb_typeof(ev.items) = 'array' THEN ev.items ELSE '[]'::jsonb END) i
  WHERE jsonb_typeof(i) = 'object' AND i ->> 'qty' ~ '^[0-9]{{1,6}}$'
    AND i ->> 'price' ~ '^[0-9]{{1,10}}$' AND payload_uuid(i ->> 'product_id') IS NOT NULL),
explained AS (SELECT event_id, sum(qty * price) AS amount FROM items GROUP BY event_id),
lines AS (
  SELECT ev.at, ev.vendor_id, it.product_id, ev.sign * it.qty AS qty,
         ev.sign * it.qty * it.price AS amount
  FROM ev JOIN items it ON it.event_id = ev.event_id
  UNION ALL
  SELECT ev.at, ev.vendor_id, NULL, 0, ev.sign * (ev.total - coalesce(x.amount, 0))
  FROM ev LEFT JOIN explained x ON x.event_id = ev.event_id
  UNION ALL
  SELECT created_at, vendor_id, NULL, 0, abs(amount) FROM cashless_transaction
  WHERE festival_id = %(fid)s AND type = 'PAYMENT' AND vendor_id IS NOT NULL)
SELECT date_bin(%(bucket_s)s * interval '1 s', l.at AT TIME ZONE %(tz)s, TIMESTAMP '2000-01-01')
         AT TIME ZONE %(tz)s AS bucket,
       l.vendor_id, v.name AS vendor, l.product_id, p.name AS product,
       sum(l.qty)::bigint AS quantity, sum(l.amount)::bigint AS amount, f.currency
FROM lines l JOIN vendor v ON v.id = l.vendor_id JOIN festival f ON f.id = v.festival_id
LEFT JOIN product p ON p.id = l.product_id
WHERE v.festival_id = %(fid)s
GROUP BY 1, 2, 3, 4, 5, f.currency HAVING sum(l.qty) <> 0 OR sum(l.amount) <> 0
ORDER BY 1, 3, 2, 5 NULLS LAST, 4
"""


async def product_sales_over_time(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, *, bucket_s: int = 3600
) -> list[ProductSales]:
    """Net sales (sold less refunded) per vendor and product per local time bucket."""
    params = {"bucket_s": bucket_s}
    return await views.festival_models(conn, festival_id, ProductSales, _PRODUCT_SALES, params)
