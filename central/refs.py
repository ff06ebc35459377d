"""Find a festival's rows by the names people use: slugs, names, scanned codes, tag UIDs.

Ops type what they see: a festival's slug, a zone's or a vendor's name, a device's name, a
code read off a ticket, a wristband's UID. Each finder takes that or the row's id and gives
the id, or raises `NotFound` (nothing by that name here) or `Ambiguous` (several rows have
that name: the message lists their ids, which always work). Names compare case-insensitively;
rows of other festivals and deleted rows are never found.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import AsyncConnection

from central import catalog
from central.errors import Ambiguous, NotFound
from sync import hashing, ticketcode

SHOWN_IDS = 5  # ids listed when a name is ambiguous


def as_uuid(ref: str | uuid.UUID) -> uuid.UUID | None:
    """`ref` as a uuid when it is one (any spelling uuid.UUID reads), else None."""
    if isinstance(ref, uuid.UUID):
        return ref
    try:
        return uuid.UUID(ref.strip())
    except ValueError:
        return None


def _one(what: str, ref: str, ids: list[uuid.UUID]) -> uuid.UUID:
    """The single id found for `ref`, or the error that says why there is not one."""
    if not ids:
        raise NotFound(f"no {what} {ref!r} in this festival")
    if len(ids) > 1:
        shown = ", ".join(str(i) for i in ids[:SHOWN_IDS])
        more = f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else ""
        raise Ambiguous(f"{len(ids)} {what}s match {ref!r}: use the id ({shown}{more})")
    return ids[0]


async def _ids(conn: AsyncConnection[Any], query: str, params: tuple[Any, ...]) -> list[uuid.UUID]:
    cur = await conn.execute(query, params)
    return [r[0] for r in await cur.fetchall()]


async def festival(conn: AsyncConnection[Any], ref: str | uuid.UUID) -> uuid.UUID:
    """A live festival by slug or id."""
    rec = await catalog.get_festival(conn, ref)
    fid: uuid.UUID = rec["id"]
    return fid


# Tables found by their `name` column within a festival, and what people call their rows.
_NAMED = {"zone": "zone", "vendor": "vendor", "device": "device", "ticket_category": "category"}


async def named(
    conn: AsyncConnection[Any], table: str, festival_id: uuid.UUID, ref: str | uuid.UUID
) -> uuid.UUID:
    """A zone, vendor, device or ticket category of the festival by name or id."""
    what = _NAMED[table]  # KeyError for any other table: names are never interpolated freely
    rid = as_uuid(ref)
    if rid is not None:
        query = f"SELECT id FROM {table} WHERE festival_id = %s AND id = %s"
        return _one(what, str(ref), await _ids(conn, query, (festival_id, rid)))
    query = f"SELECT id FROM {table} WHERE festival_id = %s AND lower(name) = lower(%s) ORDER BY id"
    return _one(what, str(ref), await _ids(conn, query, (festival_id, str(ref).strip())))


async def zone(conn: AsyncConnection[Any], festival_id: uuid.UUID, ref: str) -> uuid.UUID:
    """A zone by name or id."""
    return await named(conn, "zone", festival_id, ref)


async def vendor(conn: AsyncConnection[Any], festival_id: uuid.UUID, ref: str) -> uuid.UUID:
    """A vendor by name or id."""
    return await named(conn, "vendor", festival_id, ref)


async def device(conn: AsyncConnection[Any], festival_id: uuid.UUID, ref: str) -> uuid.UUID:
    """An enrolled device by the name it was enrolled with, or its id."""
    return await named(conn, "device", festival_id, ref)


async def user(
    conn: AsyncConnection[Any], ref: str, festival_id: uuid.UUID | None = None
) -> uuid.UUID:
    """An ops user (not deleted) by name or id; with `festival_id`, one who works on that
    festival (its own users and those of every festival)."""
    scope = "" if festival_id is None else " AND (festival_id = %s OR festival_id IS NULL)"
    extra: tuple[Any, ...] = () if festival_id is None else (festival_id,)
    rid = as_uuid(ref)
    if rid is not None:
        query = f"SELECT id FROM ops_user WHERE deleted_at IS NULL AND id = %s{scope}"
        return _one("user", ref, await _ids(conn, query, (rid, *extra)))
    query = (
        "SELECT id FROM ops_user WHERE deleted_at IS NULL AND lower(name) = lower(%s)"
        f"{scope} ORDER BY id"
    )
    return _one("user", ref, await _ids(conn, query, (ref.strip(), *extra)))


async def _hash_key(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> bytes:
    cur = await conn.execute("SELECT hash_key FROM festival WHERE id = %s", (festival_id,))
    rec = await cur.fetchone()
    if rec is None:
        raise NotFound(f"no festival {festival_id}")
    return bytes(rec[0])


async def ticket(conn: AsyncConnection[Any], festival_id: uuid.UUID, ref: str) -> uuid.UUID:
    """A ticket by what ops have in hand: its id, the signed code read off it (any version:
    an old code still names its ticket), an outside system's code, or the holder reference
    it was sold under."""
    rid = as_uuid(ref)
    if rid is not None:
        query = "SELECT id FROM ticket WHERE festival_id = %s AND id = %s"
        found = await _ids(conn, query, (festival_id, rid))
        if found:  # else an outside code or a reference that happens to read as a uuid
            return found[0]
    if ticketcode.looks_signed(ref.strip()):
        try:
            code = ticketcode.decode(ref.strip())
        except ticketcode.MalformedCode:
            raise NotFound(f"{ref[:24]!r}… is not a readable signed code") from None
        if code.festival_id != festival_id:
            raise NotFound("that signed code is another festival's")
        query = "SELECT id FROM ticket WHERE festival_id = %s AND id = %s"
        return _one("ticket", ref, await _ids(conn, query, (festival_id, code.ticket_id)))
    # An outside code is hashed exactly as scanned; a holder reference is compared as typed.
    digest = hashing.code_hash(await _hash_key(conn, festival_id), ref)
    query = (
        "SELECT id FROM ticket WHERE festival_id = %s AND code_hash = %s"
        " UNION SELECT id FROM ticket WHERE festival_id = %s AND holder_ref = %s ORDER BY 1"
    )
    return _one("ticket", ref, await _ids(conn, query, (festival_id, digest, festival_id, ref)))


async def wristband(conn: AsyncConnection[Any], festival_id: uuid.UUID, ref: str) -> uuid.UUID:
    """A wristband's account by its tag UID (hex, as a reader or a phone shows it) or id."""
    rid = as_uuid(ref)
    if rid is not None:
        query = "SELECT id FROM cashless_account WHERE festival_id = %s AND id = %s"
        return _one("wristband", ref, await _ids(conn, query, (festival_id, rid)))
    try:
        digest = hashing.tag_hash(await _hash_key(conn, festival_id), ref)
    except ValueError:
        raise NotFound(f"{ref!r} is neither a wristband id nor a tag UID (hex)") from None
    query = "SELECT id FROM cashless_account WHERE festival_id = %s AND tag_hash = %s"
    return _one("wristband", ref, await _ids(conn, query, (festival_id, digest)))
