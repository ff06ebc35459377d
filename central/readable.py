"""How ops read a festival's rows: times in its time zone, money in its currency, names for ids.

The ops views (`central.ticket_ops`, `central.wristband_ops`, `central.ops`) build their
answers with a `Local` of the festival, so the API and the CLI show the same things: a time
is a datetime carrying the festival's UTC offset (ISO 8601 in JSON), an amount stays
integer cents beside the festival's currency, and a device, zone, vendor or category is
named beside its id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import AsyncConnection
from pydantic import BaseModel

from central.errors import NotFound
from sync.hlc import wall_ms_of


def money(cents: int, currency: str) -> str:
    """An amount of cents as people read it: ``12.50 EUR``, ``-3.05 EUR``."""
    whole, part = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}{whole}.{part:02d} {currency}"


def time_zone(name: str) -> tuple[str, tzinfo]:
    """A festival's stored time zone (its name and the zone), UTC if this machine's tz
    database lacks it: its views still answer."""
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC", UTC


def short(rid: object) -> str:
    """The first eight characters of an id: enough for people to tell rows apart."""
    return str(rid)[:8]


# Every named row of a festival, by id. A device enrolled without a name is called by its
# role and the start of its id, as `festgate status` shows it.
_NAMES = """
SELECT id, coalesce(nullif(name, ''), role || ' ' || left(id::text, 8)) FROM device
 WHERE festival_id = %(fid)s
UNION ALL SELECT id, name FROM zone WHERE festival_id = %(fid)s
UNION ALL SELECT id, name FROM vendor WHERE festival_id = %(fid)s
UNION ALL SELECT id, name FROM ticket_category WHERE festival_id = %(fid)s
"""


@dataclass(frozen=True, slots=True)
class Local:
    """One festival as ops read it: its time zone, its currency, its rows' names."""

    festival_id: uuid.UUID
    timezone: str
    zone: tzinfo
    currency: str
    names: dict[str, str]

    @overload
    def at(self, value: datetime) -> datetime: ...
    @overload
    def at(self, value: datetime | None) -> datetime | None: ...
    def at(self, value: datetime | None) -> datetime | None:
        """A database time in the festival's time zone."""
        return None if value is None else value.astimezone(self.zone)

    def at_ms(self, ms: int | None) -> datetime | None:
        """Unix milliseconds in the festival's time zone."""
        return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).astimezone(self.zone)

    def at_hlc(self, hlc: int | None) -> datetime | None:
        """When a fact happened (its HLC's physical part) in the festival's time zone."""
        return None if hlc is None else self.at_ms(wall_ms_of(hlc))

    def money(self, cents: int) -> str:
        """Cents in the festival's currency: ``12.50 EUR``."""
        return money(cents, self.currency)

    def name(self, rid: object) -> str | None:
        """The name of a device, zone, vendor or category of the festival (None: no id)."""
        if rid is None:
            return None
        return self.names.get(str(rid), short(rid))


async def local(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> Local:
    """Read how the festival shows times, money and names."""
    cur = await conn.execute(
        "SELECT timezone, currency FROM festival WHERE id = %s", (festival_id,)
    )
    rec = await cur.fetchone()
    if rec is None:
        raise NotFound(f"no festival {festival_id}")
    name, zone = time_zone(rec[0])
    currency = rec[1]
    cur = await conn.execute(_NAMES, {"fid": festival_id})
    names = {str(rid): str(n) for rid, n in await cur.fetchall()}
    return Local(festival_id, name, zone, currency, names)


class AuditEntry(BaseModel):
    """One audit-log entry about a row: who did what, when, the old and the new value."""

    at: datetime
    actor: str
    action: str
    old_value: Any = None
    new_value: Any = None


async def audit_trail(
    conn: AsyncConnection[Any], where: Local, entities: list[tuple[str, str]]
) -> list[AuditEntry]:
    """The audit entries of these (entity type, entity id) pairs, oldest first."""
    cur = await conn.execute(
        "SELECT at, actor, action, old_value, new_value FROM audit_log"
        " WHERE (entity_type, entity_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
        " ORDER BY at, id",
        ([t for t, _ in entities], [i for _, i in entities]),
    )
    return [
        AuditEntry(at=where.at(at), actor=actor, action=action, old_value=old, new_value=new)
        for at, actor, action, old, new in await cur.fetchall()
    ]
