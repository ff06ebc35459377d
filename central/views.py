"""What ops views share: rows read as pydantic models, every time in the festival's zone.

Ops read a festival's times as its people live them: an answer's datetimes carry the
festival's `timezone` (and its offset), so "14:05" on a report is 14:05 at the gate
(`central.readable` says how a festival's zone is read).
"""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any, TypeVar

from psycopg import AsyncConnection
from pydantic import BaseModel

from central.errors import CatalogError, NotFound
from central.readable import time_zone
from central.rows import fetch_all

M = TypeVar("M", bound=BaseModel)


async def check_time_zone(conn: AsyncConnection[Any], name: str) -> None:
    """Refuse a zone that Python or PostgreSQL (which buckets reports in it) does not know."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CatalogError(f"unknown time zone {name!r} (an IANA name: Europe/Paris)") from None
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = %s)", (name,)
    )
    rec = await cur.fetchone()
    if rec is None or not rec[0]:
        raise CatalogError(f"PostgreSQL does not know the time zone {name!r}")


def in_zone(row: Mapping[str, Any], zone: tzinfo) -> dict[str, Any]:
    """A row with each datetime moved to `zone` (the same instant)."""
    return {k: v.astimezone(zone) if isinstance(v, datetime) else v for k, v in row.items()}


async def fetch_models(
    conn: AsyncConnection[Any],
    model: type[M],
    query: str,
    params: Mapping[str, Any],
    zone: tzinfo,
) -> list[M]:
    """Run `query` and read each row as `model`, its times in `zone`."""
    rows = await fetch_all(conn, query, dict(params))
    return [model.model_validate(in_zone(r, zone)) for r in rows]


async def festival_models(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    model: type[M],
    query: str,
    params: Mapping[str, Any],
) -> list[M]:
    """`fetch_models` for one festival: `params` gain ``fid`` and ``tz`` (its zone's name,
    for SQL that buckets by the festival's clock)."""
    cur = await conn.execute("SELECT timezone FROM festival WHERE id = %s", (festival_id,))
    rec = await cur.fetchone()
    if rec is None:
        raise NotFound(f"no festival {festival_id}")
    name, zone = time_zone(rec[0])
    return await fetch_models(conn, model, query, {**params, "fid": festival_id, "tz": name}, zone)
