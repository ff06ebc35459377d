"""Ops users: role-scoped API tokens, shown once and stored only as sha256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import AsyncConnection

from central import audit
from central.errors import NotFound
from central.rows import fetch_opt

OpsRole = Literal["ADMIN", "ORGANIZER", "STAFF", "CASHIER", "SECURITY"]
OPS_TOKEN_PREFIX = "fgo_"  # noqa: S105 - a public marker, not a secret


def hash_token(token: str) -> bytes:
    """sha256 of a token's UTF-8 text: all central ever stores of an ops or device token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class NewOpsUser:
    """An ops user just created, with its token (never retrievable again)."""

    user_id: uuid.UUID
    name: str
    role: OpsRole
    festival_id: uuid.UUID | None
    token: str


async def add_ops_user(
    conn: AsyncConnection[Any],
    *,
    name: str,
    role: OpsRole,
    actor: str,
    festival_id: uuid.UUID | None = None,
) -> NewOpsUser:
    """Create an ops user scoped to one festival (or all, with None) and return its token."""
    token = OPS_TOKEN_PREFIX + secrets.token_urlsafe(32)
    user_id = uuid.uuid4()
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO ops_user (id, name, role, festival_id, token_hash) "
            "VALUES (%s, %s, %s, %s, %s)",
            (user_id, name, role, festival_id, hash_token(token)),
        )
        await audit.record(
            conn,
            actor=actor,
            action="ops_user.create",
            entity_type="ops_user",
            entity_id=user_id,
            new={"name": name, "role": role, "festival_id": festival_id},
            festival_id=festival_id,
        )
    return NewOpsUser(user_id, name, role, festival_id, token)


async def revoke_ops_user(conn: AsyncConnection[Any], user_id: uuid.UUID, *, actor: str) -> None:
    """Revoke an ops user's token (it also goes on the token block list)."""
    async with conn.transaction():
        rec = await fetch_opt(
            conn,
            "UPDATE ops_user SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL "
            "RETURNING token_hash, festival_id",
            (user_id,),
        )
        if rec is None:
            raise NotFound(f"no active ops user {user_id}")
        await conn.execute(
            "INSERT INTO revoked_token (token_hash) VALUES (%s) ON CONFLICT DO NOTHING",
            (rec["token_hash"],),
        )
        await audit.record(
            conn,
            actor=actor,
            action="ops_user.revoke",
            entity_type="ops_user",
            entity_id=user_id,
            festival_id=rec["festival_id"],
        )
