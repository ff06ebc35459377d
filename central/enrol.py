"""Device enrolment: one-time codes bound to a festival and role, exchanged for a device token.

A site tech creates a code (``XXXX-XXXX-XXXX``, 60 random bits, short-lived) and types it
on the device; the device trades it once for its id and a bearer token. Central stores only
``sha256`` of both. Ops list and revoke unused codes by a short random id (the code itself
is shown once); a revoked code enrols nothing. Devices are revoked in `central.devices`.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, errors
from pydantic import BaseModel, Field

from central import audit, refs, views
from central.auth import DEVICE_PREFIX, new_token, token_hash
from central.errors import CatalogError, Contradiction, NotFound
from config.vocab import Role

# Crockford base32: no I, L, O, U, so a code read aloud or off a screen is typed right.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_CHARS = 12
MAX_TTL_S = 7 * 24 * 3600
# A code's short id: 40 random bits, so ids rarely clash (a clash is retried).
REF_CHARS = 8
REF_PATTERN = r"^[0-9A-Z]{8}$"
ID_ATTEMPTS = 3


class EnrolError(CatalogError):
    """The code is unknown, used or expired (deliberately not saying which)."""


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What a device gets back for a valid code; the token is shown this once."""

    device_id: uuid.UUID
    token: str
    festival_id: uuid.UUID
    role: str
    zone_id: uuid.UUID | None
    vendor_id: uuid.UUID | None


def normalize_code(code: str) -> str:
    """Upper-case, without separators, with look-alike letters mapped as Crockford does."""
    cleaned = code.strip().upper().replace("-", "").replace(" ", "")
    return cleaned.translate(str.maketrans("ILO", "110"))


class EnrolCodeView(BaseModel):
    """An enrol code as ops list it: by its short id (the code itself is shown once)."""

    id: str = Field(pattern=REF_PATTERN, description="short public id (not the code)")
    role: Role
    zone_id: uuid.UUID | None
    zone: str | None
    vendor_id: uuid.UUID | None
    vendor: str | None
    created_at: datetime
    created_by: str | None
    expires_at: datetime
    expires_in_s: int = Field(description="seconds left (negative: expired)")
    revoked_at: datetime | None


class NewEnrolCode(EnrolCodeView):
    """A code just made: the only time its text is shown."""

    code: str = Field(description="what the site tech types on the device, shown once")
    ttl_s: int = Field(ge=1, le=MAX_TTL_S)


_INSERT = (
    "INSERT INTO enrol_code (code_hash, ref, festival_id, role, zone_id, vendor_id, expires_at,"
    " created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


def _new_code() -> tuple[str, str]:
    """A fresh code (``XXXX-XXXX-XXXX``) and its short id, both random and unrelated."""
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(CODE_CHARS))
    ref = "".join(secrets.choice(_ALPHABET) for _ in range(REF_CHARS))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_CHARS, 4)), ref


async def _insert(conn: AsyncConnection[Any], values: tuple[Any, ...]) -> tuple[str, str]:
    """Insert a fresh code with `values` (festival, role, zone, vendor, expiry, maker)."""
    for _ in range(ID_ATTEMPTS - 1):
        code, ref = _new_code()
        try:
            async with conn.transaction():  # a savepoint: an id another code has is retried
                await conn.execute(_INSERT, (token_hash(normalize_code(code)), ref, *values))
            return code, ref
        except errors.UniqueViolation:
            pass
    code, ref = _new_code()
    await conn.execute(_INSERT, (token_hash(normalize_code(code)), ref, *values))
    return code, ref


async def create_enrol_code(
    conn: AsyncConnection[Any],
    *,
    festival_id: uuid.UUID,
    role: str,
    zone_id: uuid.UUID | None,
    vendor_id: uuid.UUID | None,
    ttl_s: int,
    actor: str = "cli",
) -> str:
    """A new one-time enrol code for a device of `role` (a gate needs a zone, a bar a vendor);
    stored as its hash with a short id, audited."""
    if role not in tuple(Role):
        raise CatalogError(f"role must be one of {', '.join(Role)}")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise CatalogError(f"ttl_s must be between 1 and {MAX_TTL_S}")
    if role == Role.GATE and zone_id is None:
        raise CatalogError("a gate device needs a zone")
    if role == Role.BAR and vendor_id is None:
        raise CatalogError("a bar device needs a vendor")
    checks: list[tuple[str, str, tuple[uuid.UUID, ...]]] = [
        ("festival", "SELECT 1 FROM festival WHERE id = %s AND deleted_at IS NULL", (festival_id,))
    ]
    if zone_id is not None:
        checks.append(
            (
                "zone",
                "SELECT 1 FROM zone WHERE id = %s AND festival_id = %s",
                (zone_id, festival_id),
            )
        )
    if vendor_id is not None:
        checks.append(
            ("vendor", "SELECT 1 FROM vendor WHERE id = %s AND festival_id = %s",
             (vendor_id, festival_id))
        )  # fmt: skip
    expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
    async with conn.transaction():
        for what, query, params in checks:
            cur = await conn.execute(query, params)
            if await cur.fetchone() is None:
                raise NotFound(f"no {what} {params[0]} in this festival")
        code, ref = await _insert(conn, (festival_id, role, zone_id, vendor_id, expires, actor))
        await audit.record(
            conn, actor=actor, action="device.enrol_code", entity_type="festival",
            entity_id=festival_id, festival_id=festival_id,
            new={"id": ref, "role": role, "zone_id": zone_id, "vendor_id": vendor_id,
                 "expires_at": expires},
        )  # fmt: skip
    return code


async def issue_enrol_code(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    *,
    role: str,
    zone: str | None,
    vendor: str | None,
    ttl_s: int,
    actor: str,
) -> NewEnrolCode:
    """A new one-time enrol code, its zone or vendor by name (or id), with its short id."""
    zone_id = await refs.zone(conn, festival_id, zone) if zone else None
    vendor_id = await refs.vendor(conn, festival_id, vendor) if vendor else None
    code = await create_enrol_code(
        conn, festival_id=festival_id, role=role, zone_id=zone_id, vendor_id=vendor_id,
        ttl_s=ttl_s, actor=actor,
    )  # fmt: skip
    cur = await conn.execute(
        "SELECT ref FROM enrol_code WHERE code_hash = %s", (token_hash(normalize_code(code)),)
    )
    (ref,) = await cur.fetchone() or ("",)
    (view,) = await _views(conn, festival_id, ref)
    return NewEnrolCode(**view.model_dump(), code=code, ttl_s=ttl_s)


_VIEW = """
SELECT c.ref AS id, c.role, c.zone_id, z.name AS zone, c.vendor_id, v.name AS vendor,
       c.created_at, c.created_by, c.expires_at,
       ceil(extract(epoch FROM c.expires_at - now()))::bigint AS expires_in_s, c.revoked_at
FROM enrol_code c LEFT JOIN zone z ON z.id = c.zone_id LEFT JOIN vendor v ON v.id = c.vendor_id
WHERE c.festival_id = %(fid)s AND (c.ref = %(ref)s OR %(ref)s::text IS NULL
      AND c.used_at IS NULL AND c.revoked_at IS NULL AND c.expires_at > now())
ORDER BY c.expires_at, c.ref
"""


async def _views(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, ref: str | None
) -> list[EnrolCodeView]:
    return await views.festival_models(conn, festival_id, EnrolCodeView, _VIEW, {"ref": ref})


async def list_enrol_codes(
    conn: AsyncConnection[Any], festival_id: uuid.UUID
) -> list[EnrolCodeView]:
    """The festival's codes that still work (unused, unexpired, unrevoked), soonest first."""
    return await _views(conn, festival_id, None)


async def revoke_enrol_code(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, ref: str, *, actor: str
) -> EnrolCodeView:
    """Revoke a code by its short id (or the code itself) so no device can enrol with it.

    A code that can no longer enrol (used, revoked, expired) is a Contradiction with a code
    saying why, and nothing is stored.
    """
    key = normalize_code(ref)
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT ref, used_at IS NOT NULL, revoked_at IS NOT NULL, expires_at <= now()"
            " FROM enrol_code WHERE festival_id = %s AND (ref = %s OR code_hash = %s) FOR UPDATE",
            (festival_id, key, token_hash(key)),
        )
        rec = await cur.fetchone()
        if rec is None:
            raise NotFound(f"no enrol code {ref!r} in this festival")
        found, used, revoked, expired = rec
        for gone, code, why in (
            (used, "already_used", "was used"),
            (revoked, "already_revoked", "is already revoked"),
            (expired, "expired", "has expired"),
        ):
            if gone:
                raise Contradiction(f"enrol code {found} {why}", code)
        await conn.execute("UPDATE enrol_code SET revoked_at = now() WHERE ref = %s", (found,))
        await audit.record(
            conn, actor=actor, action="enrol_code.revoke", entity_type="enrol_code",
            entity_id=found, old={"revoked_at": None}, new={"revoked": True},
            festival_id=festival_id,
        )  # fmt: skip
    (view,) = await _views(conn, festival_id, found)
    return view


async def enrol(conn: AsyncConnection[Any], *, code: str, name: str = "") -> Enrolment:
    """Trade a valid code for a new device and its token; the code is spent even on retry."""
    device_id = uuid.uuid4()
    token = new_token(DEVICE_PREFIX)
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE enrol_code SET used_at = now() WHERE code_hash = %s AND used_at IS NULL"
            " AND revoked_at IS NULL AND expires_at > now()"
            " RETURNING festival_id, role, zone_id, vendor_id",
            (token_hash(normalize_code(code)),),
        )
        rec = await cur.fetchone()
        if rec is None:
            raise EnrolError("enrol code unknown, used or expired")
        festival_id, role, zone_id, vendor_id = rec
        await conn.execute(
            "INSERT INTO device (id, festival_id, name, role, zone_id, vendor_id, token_hash)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (device_id, festival_id, name[:200], role, zone_id, vendor_id, token_hash(token)),
        )
        await conn.execute(
            "UPDATE enrol_code SET device_id = %s WHERE code_hash = %s",
            (device_id, token_hash(normalize_code(code))),
        )
        await audit.record(
            conn, actor=f"device:{device_id}", action="device.enrol", entity_type="device",
            entity_id=device_id, festival_id=festival_id,
            new={"name": name, "role": role, "zone_id": zone_id, "vendor_id": vendor_id},
        )  # fmt: skip
    return Enrolment(device_id, token, festival_id, role, zone_id, vendor_id)
