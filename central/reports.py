"""Reports: zone occupancy, entries over time, sales per vendor."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from central import audit
from central.ops import Json, _rows


async def zone_occupancy(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> list[Json]:
    """Each zone's capacity and occupancy (central's view: tickets believed inside)."""
    return await _rows(
        conn,
        "SELECT id, name, capacity, greatest(occupancy, 0) AS occupancy FROM zone"
        " WHERE festival_id = %s ORDER BY name",
        (festival_id,),
    )


async def entries_over_time(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, *, bucket_s: int = 300
) -> list[Json]:
    """Entries and exits per zone and gate device per time bucket (by when they happened)."""
    return await _rows(
        conn,
        "SELECT to_timestamp(floor(extract(epoch FROM at) / %s) * %s) AS bucket,"
        " zone_id, device_id, count(*) FILTER (WHERE action = 'ENTRY') AS entries,"
        " count(*) FILTER (WHERE action = 'EXIT') AS exits"
        " FROM zone_access_log WHERE festival_id = %s"
        " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        (bucket_s, bucket_s, festival_id),
    )


# Sales are the ledger's payments: approved sales at bar devices (the vendor is the
# device's) and any payment central booked itself with a vendor (`cashless_entry`, unrolled
# here so the devices' sales are summed per device first).
_SALES = """
WITH s AS (
  SELECT d.vendor_id, count(*) AS sales, sum(e.amount) AS amount
  FROM device_event e JOIN device d ON d.id = e.device_id
  WHERE e.festival_id = %(fid)s AND e.kind = 'sale' AND e.account_id IS NOT NULL
    AND e.status = 'applied' AND e.verdict = 'approved' AND e.amount > 0
  GROUP BY d.vendor_id
  UNION ALL
  SELECT vendor_id, count(*), -sum(amount) FROM cashless_transaction
  WHERE festival_id = %(fid)s AND type = 'PAYMENT' AND vendor_id IS NOT NULL
  GROUP BY vendor_id)
SELECT v.id AS vendor_id, v.name, coalesce(sum(s.sales), 0)::bigint AS sales,
       coalesce(sum(s.amount), 0)::bigint AS amount
FROM vendor v LEFT JOIN s ON s.vendor_id = v.id
WHERE v.festival_id = %(fid)s GROUP BY v.id, v.name ORDER BY v.name
"""


async def sales_per_vendor(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> list[Json]:
    """Sales count and amount (cents, positive) per vendor, from the ledger."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SALES, {"fid": festival_id})
        return [audit.jsonable(r) for r in await cur.fetchall()]
