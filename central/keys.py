"""Per-festival Ed25519 signing keys: create, rotate, revoke, and sign ticket codes.

Rotation adds a key with the next key_id and makes it the one that signs; older keys
stay valid for verification on devices until revoked, so codes already handed out keep
working. Revoking the key that signs rotates first: a festival always has a key to sign
with. Only public keys are replicated. Private keys are stored wrapped by central's
key-encryption key (`central.kek`), never in the clear.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from central import catalog_write, views
from central.errors import Contradiction, NotFound
from central.kek import Kek, KekError, active
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
    async with catalog_write.write(conn, actor=actor) as w:
        # The festival row lock serialises key_id allocation between concurrent rotations.
        await fetch_one(conn, "SELECT id FROM festival WHERE id = %s FOR UPDATE", (festival_id,))
        private = Ed25519PrivateKey.generate()
        raw_private = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        kek = await _usable_kek(conn)
        next_id = await fetch_one(
            conn,
            "SELECT coalesce(max(key_id), 0) + 1 AS k FROM signing_key WHERE festival_id = %s",
            (festival_id,),
        )
        key_id = next_id["k"]
        rec = await fetch_one(
            conn,
            "INSERT INTO signing_key (festival_id, key_id, public_key, wrapped_key, kek_id) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING *",
            (festival_id, key_id, ticketcode.public_bytes(private),
             kek.wrap(raw_private, _aad(festival_id, key_id)), kek.kek_id),
        )  # fmt: skip
        return await w.publish(
            festival_id, "signing_key", signing_key_row(rec), action="signing_key.create",
            entity_type="signing_key", entity_id=f"{festival_id}:{rec['key_id']}",
        )  # fmt: skip


rotate_key = create_key


async def revoke_key(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, key_id: int, *, actor: str
) -> SigningKeyRow:
    """Revoke a key: devices then refuse every code it signed. The key that signs new codes
    is first replaced by a new one (a rotation, in the same transaction): a festival always
    has a key to sign with. Already revoked: Contradiction ``already_revoked``, nothing stored."""
    async with catalog_write.write(conn, actor=actor) as w:
        # The festival row lock orders this against rotations (`create_key` takes it too).
        await fetch_one(conn, "SELECT id FROM festival WHERE id = %s FOR UPDATE", (festival_id,))
        old = await fetch_opt(
            conn,
            "SELECT revoked FROM signing_key WHERE festival_id = %s AND key_id = %s",
            (festival_id, key_id),
        )
        if old is None:
            raise NotFound(f"no signing key {key_id} in this festival")
        if old["revoked"]:
            raise Contradiction(f"signing key {key_id} is already revoked", "already_revoked")
        if await current_key_id(conn, festival_id) == key_id:
            await create_key(conn, festival_id, actor=actor)
        rec = await fetch_one(
            conn,
            "UPDATE signing_key SET revoked = true WHERE festival_id = %s AND key_id = %s "
            "RETURNING *",
            (festival_id, key_id),
        )
        row = signing_key_row(rec)
        return await w.publish(
            festival_id, "signing_key", row, action="signing_key.revoke",
            entity_type="signing_key", entity_id=f"{festival_id}:{key_id}",
            old=row.model_copy(update={"revoked": False}),
        )  # fmt: skip


class KeyView(BaseModel):
    """A festival's signing key as ops see it (its public half only)."""

    key_id: int = Field(ge=0)
    public_key: str = Field(pattern="^[0-9a-f]{64}$", description="Ed25519, hex")
    created_at: datetime
    revoked: bool
    signing: bool = Field(description="the key that signs new codes")


class KeyRevocation(BaseModel):
    """A revoked key and the key that signs from now on (new if the revoked one signed)."""

    revoked: KeyView
    signing: KeyView
    rotated: bool = Field(description="a new key was made because the revoked one signed")


_KEYS = """
SELECT key_id, encode(public_key, 'hex') AS public_key, created_at, revoked,
       key_id = (SELECT max(key_id) FROM signing_key WHERE festival_id = %(fid)s
                 AND NOT revoked) AS signing
FROM signing_key WHERE festival_id = %(fid)s ORDER BY key_id
"""


async def list_keys(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> list[KeyView]:
    """The festival's signing keys, oldest first; the newest unrevoked one signs."""
    return await views.festival_models(conn, festival_id, KeyView, _KEYS, {})


async def rotate(conn: AsyncConnection[Any], festival_id: uuid.UUID, *, actor: str) -> KeyView:
    """Add a key that signs new codes from now on; older keys verify until revoked."""
    row = await rotate_key(conn, festival_id, actor=actor)
    return next(k for k in await list_keys(conn, festival_id) if k.key_id == row.key_id)


async def revoke(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, key_id: int, *, actor: str
) -> KeyRevocation:
    """`revoke_key`, as ops see its outcome."""
    before = await current_key_id(conn, festival_id)
    await revoke_key(conn, festival_id, key_id, actor=actor)
    found = {k.key_id: k for k in await list_keys(conn, festival_id)}
    signing = next(k for k in found.values() if k.signing)
    return KeyRevocation(revoked=found[key_id], signing=signing, rotated=before == key_id)


async def current_key_id(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> int | None:
    """The key_id that signs the festival's new codes (None: none does)."""
    cur = await conn.execute(
        "SELECT max(key_id) FROM signing_key WHERE festival_id = %s AND NOT revoked",
        (festival_id,),
    )
    rec = await cur.fetchone()
    return None if rec is None else rec[0]


async def current_key(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> SigningKey:
    """The newest unrevoked key of a festival; NotFound when it has none."""
    rec = await fetch_opt(
        conn,
        "SELECT festival_id, key_id, private_key, wrapped_key, kek_id FROM signing_key "
        "WHERE festival_id = %s AND NOT revoked ORDER BY key_id DESC LIMIT 1",
        (festival_id,),
    )
    if rec is None:
        raise NotFound(f"festival {festival_id} has no usable signing key")
    private = Ed25519PrivateKey.from_private_bytes(_private_bytes(rec, active()))
    return SigningKey(key_id=rec["key_id"], private_key=private)


async def _usable_kek(conn: AsyncConnection[Any]) -> Kek:
    """This process's KEK, if it is the one the stored keys are wrapped by: a central still
    running with the KEK a rotation replaced must not wrap new keys with it."""
    kek = active()
    cur = await conn.execute(
        "SELECT kek_id FROM signing_key WHERE kek_id <> %s LIMIT 1", (kek.kek_id,)
    )
    rec = await cur.fetchone()
    if rec is not None:
        raise KekError(
            f"signing keys are wrapped by key-encryption key {rec[0]}, but central's is"
            f" {kek.kek_id}: wrong KEK (kek_file / FESTGATE_CENTRAL_KEK; restart central"
            " after `kek rotate`)"
        )
    return kek


def _aad(festival_id: uuid.UUID, key_id: int) -> bytes:
    # The key's identity, bound to its ciphertext: a wrapped key moved to another row fails.
    return f"festgate signing key {festival_id}/{key_id}".encode()


def _private_bytes(rec: dict[str, Any], kek: Kek) -> bytes:
    """The raw private key of a signing_key row, plain (not yet wrapped) or opened by `kek`."""
    if rec["private_key"] is not None:
        return bytes(rec["private_key"])
    what = f"signing key {rec['key_id']} of festival {rec['festival_id']}"
    if rec["kek_id"] != kek.kek_id:
        raise KekError(
            f"{what} is wrapped by key-encryption key {rec['kek_id']}, but central's is"
            f" {kek.kek_id}: wrong KEK (kek_file / FESTGATE_CENTRAL_KEK)"
        )
    return kek.unwrap(bytes(rec["wrapped_key"]), _aad(rec["festival_id"], rec["key_id"]), what)


_ALL_KEYS = (
    "SELECT festival_id, key_id, private_key, wrapped_key, kek_id FROM signing_key "
    "ORDER BY festival_id, key_id FOR UPDATE"
)
_STORE_WRAPPED = (
    "UPDATE signing_key SET private_key = NULL, wrapped_key = %s, kek_id = %s "
    "WHERE festival_id = %s AND key_id = %s"
)


async def rewrap_keys(conn: AsyncConnection[Any], old: Kek | None, new: Kek) -> int:
    """Store every signing key wrapped by `new`: plain ones, and those `old` wraps (KekError
    for one that `old` does not open, so nothing changes). The caller's transaction holds
    them all; returns how many rows changed."""
    # Till commit, no key is added (wrapped by the old KEK) beside the ones re-wrapped here.
    await conn.execute("LOCK TABLE signing_key IN EXCLUSIVE MODE")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_ALL_KEYS)
        found = await cur.fetchall()
    changed = 0
    for row in found:
        if row["kek_id"] == new.kek_id:
            continue  # already wrapped by the new KEK (a rotation run twice)
        raw = _private_bytes(row, old or new)
        blob = new.wrap(raw, _aad(row["festival_id"], row["key_id"]))
        await conn.execute(_STORE_WRAPPED, (blob, new.kek_id, row["festival_id"], row["key_id"]))
        changed += 1
    return changed


async def check_keys(conn: AsyncConnection[Any], kek: Kek) -> int:
    """Wrap the plain keys left from before keys were kept wrapped (and commit), after
    checking that `kek` is the one every wrapped key names (KekError, one line, if not).
    Central does this when it starts; returns how many keys it wrapped."""
    cur = await conn.execute(
        "SELECT DISTINCT kek_id FROM signing_key WHERE kek_id IS NOT NULL AND kek_id <> %s",
        (kek.kek_id,),
    )
    other = [r[0] for r in await cur.fetchall()]
    if other:
        raise KekError(
            f"signing keys are wrapped by key-encryption key {', '.join(other)}, but central's"
            f" is {kek.kek_id}: wrong KEK (kek_file / FESTGATE_CENTRAL_KEK)"
        )
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT festival_id, key_id, private_key, wrapped_key, kek_id FROM signing_key "
            "WHERE private_key IS NOT NULL FOR UPDATE"
        )
        plain = await cur.fetchall()
        for fid, key_id, raw, _, _ in plain:
            blob = kek.wrap(bytes(raw), _aad(fid, key_id))
            await conn.execute(_STORE_WRAPPED, (blob, kek.kek_id, fid, key_id))
    return len(plain)


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
