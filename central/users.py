"""Ops users: role-scoped API tokens, shown once and stored only as sha256; found by name;
console passwords, stored only as argon2id hashes."""

from __future__ import annotations

import asyncio
import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from central import audit, revocation, views
from central.auth import OPS_PREFIX, OpsRole, new_token, token_hash
from central.errors import CatalogError, Contradiction

UTC_ZONE = zoneinfo.ZoneInfo("UTC")
_ADD_LOCK = 0x6667_7573  # advisory lock key of `add_ops_user` ("fgus")


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
    """Create an ops user scoped to one festival (or all, with None) and return its token.

    Users are found by name, so a live (unrevoked) user's name is taken: Contradiction
    ``name_taken``. A revoked user's name may be given again.
    """
    token = new_token(OPS_PREFIX)
    user_id = uuid.uuid4()
    name = name.strip()
    async with conn.transaction():
        # Serialises adds, so two at once cannot both take a name (no index can say "live").
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ADD_LOCK,))
        cur = await conn.execute(
            "SELECT 1 FROM ops_user WHERE lower(name) = lower(%s) AND revoked_at IS NULL"
            " AND deleted_at IS NULL",
            (name,),
        )
        if await cur.fetchone() is not None:
            raise Contradiction(f"a user named {name!r} exists (revoke it first)", "name_taken")
        await conn.execute(
            "INSERT INTO ops_user (id, name, role, festival_id, token_hash) "
            "VALUES (%s, %s, %s, %s, %s)",
            (user_id, name, role, festival_id, token_hash(token)),
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


class UserView(BaseModel):
    """An ops user as admins see them (never their token)."""

    id: uuid.UUID
    name: str
    role: OpsRole
    festival_id: uuid.UUID | None = Field(description="the one festival it works on; none: all")
    festival: str | None = Field(description="that festival's slug")
    created_at: datetime
    revoked_at: datetime | None


class NewUser(UserView):
    """A user just added, with its token: shown this once, only its sha256 is kept."""

    token: str


# Users with no festival, and times, are not any festival's: their times are in UTC.
_USERS = """
SELECT u.id, u.name, u.role, u.festival_id, f.slug AS festival, u.created_at, u.revoked_at
FROM ops_user u LEFT JOIN festival f ON f.id = u.festival_id
WHERE u.deleted_at IS NULL AND (%(scope)s::uuid IS NULL OR u.festival_id = %(scope)s)
  AND (%(user)s::uuid IS NULL OR u.id = %(user)s)
ORDER BY u.created_at, u.id
"""
_SCOPE = "deleted_at IS NULL AND (%(scope)s::uuid IS NULL OR festival_id = %(scope)s)"


async def list_users(
    conn: AsyncConnection[Any], scope: uuid.UUID | None = None, user_id: uuid.UUID | None = None
) -> list[UserView]:
    """Ops users (those of festival `scope` only, when given), oldest first."""
    params = {"scope": scope, "user": user_id}
    return await views.fetch_models(conn, UserView, _USERS, params, UTC_ZONE)


async def add_user(
    conn: AsyncConnection[Any],
    *,
    name: str,
    role: OpsRole,
    actor: str,
    festival_id: uuid.UUID | None = None,
) -> NewUser:
    """`add_ops_user`, as admins see the new user (its token shown once)."""
    new = await add_ops_user(conn, name=name, role=role, actor=actor, festival_id=festival_id)
    (view,) = await list_users(conn, user_id=new.user_id)
    return NewUser(**view.model_dump(), token=new.token)


async def revoke_user(
    conn: AsyncConnection[Any], ref: str, *, actor: str, scope: uuid.UUID | None = None
) -> UserView:
    """Revoke a user by name or id (of festival `scope` only, when given): its token is
    refused from its next request. Already revoked: Contradiction ``already_revoked``."""
    async with conn.transaction():
        uid = await revocation.live(conn, "ops_user", ref, _SCOPE, {"scope": scope})
        await revocation.revoke_one(conn, "ops_user", uid, ref, actor=actor)
    (view,) = await list_users(conn, user_id=uid)
    return view


# Console passwords (issue 17). argon2id with argon2-cffi's defaults (RFC 9106's low-memory
# profile): hashing and verifying take tens of ms of CPU, so callers on the event loop run
# them in a worker thread (`asyncio.to_thread`).
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # a bound on the work one attempt may ask for
_HASHER = PasswordHasher()


def check_password_rules(password: str) -> None:
    """Refuse a password too short or too long (CatalogError, nothing stored)."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise CatalogError(
            f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters (got {len(password)})"
        )


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string) stored for a password."""
    check_password_rules(password)
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches the stored hash. With no hash (no such user, or none set)
    a dummy hash is verified all the same, so a refusal takes as long either way."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return _HASHER.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    # Made on first use: hashing at import would slow every CLI command down.
    return _HASHER.hash("festgate: no such user")


async def set_password(
    conn: AsyncConnection[Any], ref: str, password: str, *, actor: str
) -> UserView:
    """Give a live user (by name or id) a console password; its console sessions end (a
    new password is often set because the old one leaked). Audited without the hash."""
    hashed = await asyncio.to_thread(hash_password, password)
    async with conn.transaction():
        uid = await revocation.live(conn, "ops_user", ref, _SCOPE, {"scope": None})
        await conn.execute("UPDATE ops_user SET password_hash = %s WHERE id = %s", (hashed, uid))
        await conn.execute(
            "UPDATE ops_session SET revoked_at = now(), revoked_by = %s"
            " WHERE user_id = %s AND revoked_at IS NULL",
            (actor, uid),
        )
        await audit.record(
            conn, actor=actor, action="ops_user.password", entity_type="ops_user",
            entity_id=uid, new={"password": "set"},
        )  # fmt: skip
    (view,) = await list_users(conn, user_id=uid)
    return view
