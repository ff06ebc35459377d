"""Devices as ops see them: health (last seen, sync lag, pending events, clock, software,
readers), log, revoke.

Every device is named as it was enrolled, its zone and vendor by their names too; times are
in the festival's time zone (`central.views`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from central import refs, revocation, views
from config.vocab import Role

# A live device asks for changes at least every 30 s (its long-poll, which also marks it
# seen) and pushes as soon as it has events; three missed polls make it offline.
ONLINE_WITHIN_S = 90
# How a device without a name shows (enrolled with none): the start of its id.
LABEL_SQL = "coalesce(nullif(d.name, ''), left(d.id::text, 8))"


class DeviceHealth(BaseModel):
    """A device as ops watch it: where it works, when central last heard of it, its lag."""

    id: uuid.UUID
    name: str = Field(description="as enrolled; the start of its id when it has none")
    role: Role
    zone_id: uuid.UUID | None
    zone: str | None = Field(description="the gate's zone")
    vendor_id: uuid.UUID | None
    vendor: str | None = Field(description="the bar's vendor")
    enrolled_at: datetime
    last_seen_at: datetime | None = Field(description="its last request to central")
    last_seen_s: int | None = Field(description="seconds since then (offline for so long)")
    online: bool = Field(description=f"seen within {ONLINE_WITHIN_S} s and not revoked")
    last_push_at: datetime | None
    acked_through: int = Field(description="highest contiguous device_seq central holds")
    max_seq: int = Field(description="highest device_seq central holds")
    cursor: int = Field(description="change-feed seq it last asked after")
    sync_lag: int = Field(ge=0, description="feed changes it has not asked for yet")
    pending_events: int | None = Field(description="unacknowledged events it said it holds")
    clock_offset_ms: int | None = Field(description="its wall clock minus central's")
    open_conflicts: int = Field(ge=0)
    revoked_at: datetime | None
    software_version: str | None = Field(description="the festgate version it last said it runs")
    readers: dict[str, bool] | None = Field(
        description="its readers, name → working, as it last said (None: never told)"
    )


class LogLine(BaseModel):
    """One line a device logged."""

    device_seq: int = Field(ge=1)
    at: datetime = Field(description="when the device logged it (its HLC time)")
    level: str
    message: str
    received_at: datetime


class DeviceDetail(DeviceHealth):
    """One device: its health, what it pushed, and its latest log lines."""

    events: int = Field(ge=0, description="events central holds from it")
    rejected_events: int = Field(ge=0, description="of which stored as rejected")
    recent_log: list[LogLine]


_HEALTH = f"""
SELECT d.id, {LABEL_SQL} AS name, d.role, d.zone_id, z.name AS zone, d.vendor_id,
       v.name AS vendor, d.enrolled_at, d.last_seen_at,
       floor(extract(epoch FROM now() - d.last_seen_at))::bigint AS last_seen_s,
       d.revoked_at IS NULL AND coalesce(d.last_seen_at > now() - %(online)s * interval '1 s',
                                         false) AS online,
       d.last_push_at, d.acked_through, d.max_seq, d.cursor,
       greatest(coalesce(h.head, 0) - d.cursor, 0) AS sync_lag, d.pending_events,
       d.clock_offset_ms, d.revoked_at, d.software_version, d.readers,
       (SELECT count(*) FROM conflict c WHERE c.subject_type = 'device'
          AND c.subject_id = d.id AND c.resolved_at IS NULL) AS open_conflicts
FROM device d LEFT JOIN zone z ON z.id = d.zone_id LEFT JOIN vendor v ON v.id = d.vendor_id
     LEFT JOIN feed_head h ON h.festival_id = d.festival_id
WHERE d.festival_id = %(fid)s AND (%(device)s::uuid IS NULL OR d.id = %(device)s)
ORDER BY d.enrolled_at, d.id
"""
_LOG = """
SELECT device_seq, to_timestamp((hlc >> 16) / 1000.0) AS at, level, message, received_at
FROM device_log WHERE festival_id = %(fid)s AND device_id = %(device)s
  AND device_seq > %(after)s ORDER BY device_seq {order} LIMIT %(limit)s
"""
RECENT_LOG = 20  # log lines `show_device` carries


async def list_devices(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, device_id: uuid.UUID | None = None
) -> list[DeviceHealth]:
    """The festival's devices (or one), oldest enrolment first, with their health."""
    params = {"online": ONLINE_WITHIN_S, "device": device_id}
    return await views.festival_models(conn, festival_id, DeviceHealth, _HEALTH, params)


async def show_device(conn: AsyncConnection[Any], festival_id: uuid.UUID, ref: str) -> DeviceDetail:
    """One device by name or id: health, its events' counts, its latest log lines."""
    did = await refs.device(conn, festival_id, ref)
    (health,) = await list_devices(conn, festival_id, did)
    cur = await conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'rejected') FROM device_event"
        " WHERE device_id = %s",
        (did,),
    )
    rec = await cur.fetchone()
    events, rejected = rec if rec is not None else (0, 0)
    recent = await _log(conn, festival_id, did, after_seq=0, limit=RECENT_LOG, newest=True)
    return DeviceDetail(
        **health.model_dump(), events=events, rejected_events=rejected, recent_log=recent[::-1]
    )


async def _log(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    device_id: uuid.UUID,
    *,
    after_seq: int,
    limit: int,
    newest: bool = False,
) -> list[LogLine]:
    query = _LOG.format(order="DESC" if newest else "ASC")
    params = {"device": device_id, "after": after_seq, "limit": limit}
    return await views.festival_models(conn, festival_id, LogLine, query, params)


async def device_log(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    ref: str,
    *,
    after_seq: int = 0,
    limit: int = 500,
) -> list[LogLine]:
    """A device's log lines (by its name or id) after a device_seq, oldest first."""
    did = await refs.device(conn, festival_id, ref)
    return await _log(conn, festival_id, did, after_seq=after_seq, limit=limit)


async def revoke_device(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, ref: str, *, actor: str
) -> DeviceHealth:
    """Revoke a device by name or id: its token is refused from its next request on (and
    block-listed); audited. Already revoked: Contradiction ``already_revoked``, nothing stored."""
    async with conn.transaction():
        scope = "festival_id = %(fid)s"
        did = await revocation.live(conn, "device", ref, scope, {"fid": festival_id})
        await revocation.revoke_one(conn, "device", did, ref, actor=actor)
    (health,) = await list_devices(conn, festival_id, did)
    return health
