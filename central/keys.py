"""Per-festival Ed25519 signing keys: create, rotate, revoke, and sign ticket codes.

Rotation adds a key with the next key_id and makes it the one that signs; older keys
stay valid for verification on devices until revoked, so codes already handed out keep
working. Only public keys are replicated.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import AsyncConnection

from central import audit
from central.errors import NotFound
from central.rows import fetch_one, fetch_opt, signing_key_row
from sync import ticketcode
from sync.catalog import SigningKeyRow
from sync.vocab import TicketType


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The key that signs a festival's new codes."""

    key_id: int
    private_key: Ed25519PrivateKey


async def create_key(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, *, actor: str
) -> SigningKeyRow:
    """Add a new signing key (the next key_id), publish its public half; it signs from now on."""
    async with conn.transaction():
        # The festival row lock serialises key_id allocation between concurrent rotations.
        await fetch_one(conn, "SELECT id FROM festival WHERE id = %s FOR UPDATE", (festival_id,))
        private = Ed25519PrivateKey.generate()
        raw_private = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        rec = await fetch_one(
            conn,
            "INSERT INTO signing_key (festival_id, key_id, public_key, private_key) "
            "SELECT %s, coalesce(max(key_id), 0) + 1, %s, %s FROM signing_key "
            "WHERE festival_id = %s RETURNING *",
            (festival_id, ticketcode.public_bytes(private), raw_private, festival_id),
        )
        row = signing_key_row(rec)
        seq = await audit.published(
            conn,
            festival_id,
            "signing_key",
            row,
            actor=actor,
            action="signing_key.create",
            entity_type="signing_key",
            entity_id=f"{festival_id}:{row.key_id}",
        )
    return row.model_copy(update={"seq": seq})


rotate_key = create_key


async def revoke_key(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, key_id: int, *, actor: str
) -> SigningKeyRow:
    """Revoke a key: devices then refuse every code it signed."""
    async with conn.transaction():
        rec = await fetch_opt(
            conn,
            "UPDATE signing_key SET revoked = true WHERE festival_id = %s AND key_id = %s "
            "RETURNING *",
            (festival_id, key_id),
        )
        if rec is None:
            raise NotFound(f"no signing key {key_id} for festival {festival_id}")
        row = signing_key_row(rec)
        seq = await audit.published(
            conn,
            festival_id,
            "signing_key",
            row,
            actor=actor,
            action="signing_key.revoke",
            entity_type="signing_key",
            entity_id=f"{festival_id}:{key_id}",
            old=row.model_copy(update={"revoked": False}),
        )
    return row.model_copy(update={"seq": seq})


async def current_key(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> SigningKey:
    """The newest unrevoked key of a festival; NotFound when it has none."""
    rec = await fetch_opt(
        conn,
        "SELECT key_id, private_key FROM signing_key WHERE festival_id = %s AND NOT revoked "
        "ORDER BY key_id DESC LIMIT 1",
        (festival_id,),
    )
    if rec is None:
        raise NotFound(f"festival {festival_id} has no usable signing key")
    private = Ed25519PrivateKey.from_private_bytes(bytes(rec["private_key"]))
    return SigningKey(key_id=rec["key_id"], private_key=private)


async def public_keys(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> dict[int, bytes]:
    """Unrevoked public keys by key_id (what a device verifies against)."""
    cur = await conn.execute(
        "SELECT key_id, public_key FROM signing_key WHERE festival_id = %s AND NOT revoked",
        (festival_id,),
    )
    return {int(k): bytes(p) for k, p in await cur.fetchall()}


def sign(
    key: SigningKey,
    *,
    festival_id: uuid.UUID,
    ticket_id: uuid.UUID,
    ticket_type: TicketType,
    code_version: int,
    valid_from: int | None,
    valid_until: int | None,
) -> str:
    """The QR text of a signed ticket code (`sync.ticketcode` format)."""
    return ticketcode.encode(
        key.private_key,
        key_id=key.key_id,
        festival_id=festival_id,
        ticket_id=ticket_id,
        ticket_type=ticket_type,
        code_version=code_version,
        valid_from=valid_from,
        valid_until=valid_until,
    )
