"""Devices as ops see them: health (last seen, sync lag, pending events, clock skew), logs."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import AsyncConnection

from central.ops import Json, _rows


async def list_devices(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> list[Json]:
    """Devices with last seen, sync lag (feed head minus cursor), pending events, clock skew."""
    return await _rows(
        conn,
        "SELECT d.id, d.name, d.role, d.zone_id, d.vendor_id, d.enrolled_at, d.last_seen_at,"
        " d.last_push_at, d.acked_through, d.max_seq, d.cursor,"
        " greatest(coalesce(h.head, 0) - d.cursor, 0) AS sync_lag,"
        " d.pending_events, d.clock_offset_ms, d.revoked_at,"
        " (SELECT count(*) FROM conflict c WHERE c.subject_type = 'device'"
        "   AND c.subject_id = d.id AND c.resolved_at IS NULL) AS open_conflicts"
        " FROM device d LEFT JOIN feed_head h ON h.festival_id = d.festival_id"
        " WHERE d.festival_id = %s ORDER BY d.enrolled_at, d.id",
        (festival_id,),
    )


async def device_log(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    device_id: uuid.UUID,
    *,
    after_seq: int = 0,
    limit: int = 500,
) -> list[Json]:
    """A device's log lines (events of kind 'log') after a device_seq, oldest first."""
    return await _rows(
        conn,
        "SELECT device_seq, hlc, wall_ms, level, message, received_at FROM device_log"
        " WHERE festival_id = %s AND device_id = %s AND device_seq > %s"
        " ORDER BY device_seq LIMIT %s",
        (festival_id, device_id, after_seq, limit),
    )
