"""What ops views share: rows read as pydantic models, every time in the festival's zone.

Ops read a festival's times as its people live them: an answer's datetimes carry the
festival's `timezone` (and its offset), so "14:05" on a report is 14:05 at the gate.
"""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from pydantic import BaseModel

from central.errors import CatalogError, NotFound

M = TypeVar("M", bound=BaseModel)
FALLBACK_ZONE = "UTC"


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """A time zone by its IANA name, or CatalogError."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CatalogError(f"unknown time zone {name!r} (an IANA name: Europe/Paris)") from None


async def check_time_zone(conn: AsyncConnection[Any], name: str) -> None:
    """Refuse a zone that Python or PostgreSQL (which buckets reports in it) does not know."""
    time_zone(name)
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = %s)", (name,)
    )
    rec = await cur.fetchone()
    if rec is None or not rec[0]:
        raise CatalogError(f"PostgreSQL does not know the time zone {name!r}")


def zone_or_utc(name: str) -> zoneinfo.ZoneInfo:
    """A stored festival's zone, UTC if what is stored is no zone (its reports still run)."""
    try:
        return time_zone(name)
    except CatalogError:
        return zoneinfo.ZoneInfo(FALLBACK_ZONE)


async def festival_zone(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> zoneinfo.ZoneInfo:
    """The festival's time zone."""
    cur = await conn.execute("SELECT timezone FROM festival WHERE id = %s", (festival_id,))
    rec = await cur.fetchone()
    if rec is None:
        raise NotFound(f"no festival {festival_id}")
    return zone_or_utc(rec[0])


def in_zone(row: Mapping[str, Any], zone: zoneinfo.ZoneInfo) -> dict[str, Any]:
    """A row with each datetime moved to `zone` (the same instant)."""
    return {k: v.astimezone(zone) if isinstance(v, datetime) else v for k, v in row.items()}


async def fetch_models(
    conn: AsyncConnection[Any],
    model: type[M],
    query: str,
    params: Mapping[str, Any] | tuple[Any, ...],
    zone: zoneinfo.ZoneInfo,
) -> list[M]:
    """Run `query` and read each row as `model`, its times in `zone`."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return [model.model_validate(in_zone(r, zone)) for r in await cur.fetchall()]


async def festival_models(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    model: type[M],
    query: str,
    params: Mapping[str, Any],
) -> list[M]:
    """`fetch_models` for one festival: `params` gain ``fid`` and ``tz`` (its zone's name)."""
    zone = await festival_zone(conn, festival_id)
    return await fetch_models(
        conn, model, query, {**params, "fid": festival_id, "tz": zone.key}, zone
    )
