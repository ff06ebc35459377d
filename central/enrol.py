"""Device enrolment: one-time codes bound to a festival and role, exchanged for a device token.

A site tech creates a code (``XXXX-XXXX-XXXX``, 60 random bits, short-lived) and types it
on the device; the device trades it once for its id and a bearer token. Central stores only
``sha256`` of both. Revoking a device refuses its token from the next request on.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from central import audit
from central.auth import DEVICE_PREFIX, new_token, token_hash
from central.errors import CatalogError, NotFound

ROLES = ("gate", "bar", "topup")
# Crockford base32: no I, L, O, U, so a code read aloud or off a screen is typed right.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_CHARS = 12
MAX_TTL_S = 7 * 24 * 3600


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
    """A new one-time enrol code for a device of `role` (a gate needs a zone, a bar a vendor)."""
    if role not in ROLES:
        raise CatalogError(f"role must be one of {', '.join(ROLES)}")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise CatalogError(f"ttl_s must be between 1 and {MAX_TTL_S}")
    if role == "gate" and zone_id is None:
        raise CatalogError("a gate device needs a zone")
    if role == "bar" and vendor_id is None:
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
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(CODE_CHARS))
    code = "-".join(raw[i : i + 4] for i in range(0, CODE_CHARS, 4))
    expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
    async with conn.transaction():
        for what, query, params in checks:
            cur = await conn.execute(query, params)
            if await cur.fetchone() is None:
                raise NotFound(f"no {what} {params[0]} in this festival")
        await conn.execute(
            "INSERT INTO enrol_code (code_hash, festival_id, role, zone_id, vendor_id, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (token_hash(normalize_code(code)), festival_id, role, zone_id, vendor_id, expires),
        )
        await audit.record(
            conn, actor=actor, action="device.enrol_code", entity_type="festival",
            entity_id=festival_id, festival_id=festival_id,
            new={"role": role, "zone_id": zone_id, "vendor_id": vendor_id, "expires_at": expires},
        )  # fmt: skip
    return code


async def enrol(conn: AsyncConnection[Any], *, code: str, name: str = "") -> Enrolment:
    """Trade a valid code for a new device and its token; the code is spent even on retry."""
    device_id = uuid.uuid4()
    token = new_token(DEVICE_PREFIX)
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE enrol_code SET used_at = now() WHERE code_hash = %s AND used_at IS NULL"
            " AND expires_at > now() RETURNING festival_id, role, zone_id, vendor_id",
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


async def revoke_device(conn: AsyncConnection[Any], device_id: uuid.UUID, *, actor: str) -> None:
    """Revoke a device: its token is refused from the next request on (and block-listed)."""
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE device SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL"
            " RETURNING token_hash, festival_id",
            (device_id,),
        )
        rec = await cur.fetchone()
        if rec is None:
            raise NotFound(f"no active device {device_id}")
        await conn.execute(
            "INSERT INTO revoked_token (token_hash) VALUES (%s) ON CONFLICT DO NOTHING", (rec[0],)
        )
        await audit.record(
            conn, actor=actor, action="device.revoke", entity_type="device",
            entity_id=device_id, festival_id=rec[1],
        )  # fmt: skip
