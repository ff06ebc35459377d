"""Console sessions in PostgreSQL: log in with a password, look a cookie up, log out, list
and revoke; and the limit on failed logins.

The cookie holds a random token; only its sha256 is stored (`central.auth.token_hash`), so
a copy of the table opens no session. Every request looks its session up (no cache), so a
logout, a revoked session or a revoked user is refused from the next request on.

Failed logins are limited per user name and per address: an attempt is stored *before* the
password is checked (so a burst of parallel attempts cannot all slip under the limit while
argon2 works) and deleted again when it succeeds; once a limit is reached, an attempt is
refused without checking the password and without storing anything.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from central import audit, users, views
from central.auth import OpsPrincipal, token_hash
from central.errors import NotFound

SESSION_HOURS = 12  # one ops shift; then log in again
SEEN_EVERY_S = 60  # last_seen_at is written at most this often per session
FAILURE_WINDOW_S = 15 * 60
MAX_USER_FAILURES = 5  # per user name in the window: a guessed password is slow to find
MAX_IP_FAILURES = 20  # per address: one machine trying many names
SHORT_ID = 8  # characters of a session id an admin may give for all of it
_LIMIT_LOCK = 0x6667_6C67  # advisory lock key of the count-then-store step ("fglg")


class LoginRefused(Exception):
    """A refused login: a stable code and what the person should know."""

    def __init__(self, code: str, retry_after_s: int = 0) -> None:
        super().__init__(code)
        self.code = code
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Session:
    """A live console session and the user it belongs to."""

    id: uuid.UUID
    user: OpsPrincipal
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just made, with the token its cookie carries (never stored)."""

    session: Session
    token: str


class SessionView(BaseModel):
    """A session as admins list it (never its token)."""

    id: uuid.UUID
    user: str
    role: str
    ip: str
    user_agent: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = Field(description="logged out or revoked")
    revoked_by: str | None


_FAILURES = """
SELECT count(*) FILTER (WHERE user_name = %(name)s),
       count(*) FILTER (WHERE ip = %(ip)s),
       coalesce(extract(epoch FROM min(at) - now())::int, 0) + %(window)s
FROM ops_login_failure
WHERE at > now() - %(window)s * interval '1 s' AND (user_name = %(name)s OR ip = %(ip)s)
"""
_USER = """
SELECT id, name, role, festival_id, password_hash FROM ops_user
WHERE lower(name) = %(name)s AND revoked_at IS NULL AND deleted_at IS NULL
"""
_LOOKUP = """
SELECT s.id, s.csrf_token, s.expires_at, u.id, u.name, u.role, u.festival_id,
       s.last_seen_at < now() - %(seen)s * interval '1 s'
FROM ops_session s JOIN ops_user u ON u.id = s.user_id
WHERE s.token_hash = %(hash)s AND s.revoked_at IS NULL AND s.expires_at > now()
  AND u.revoked_at IS NULL AND u.deleted_at IS NULL
"""
_LIST = """
SELECT s.id, u.name AS user, u.role, s.ip, s.user_agent, s.created_at, s.last_seen_at,
       s.expires_at, s.revoked_at, s.revoked_by
FROM ops_session s JOIN ops_user u ON u.id = s.user_id
WHERE (%(all)s OR (s.revoked_at IS NULL AND s.expires_at > now()))
  AND (%(user)s::text IS NULL OR lower(u.name) = lower(%(user)s))
  AND (%(sid)s::uuid IS NULL OR s.id = %(sid)s)
  AND (%(scope)s::uuid IS NULL OR u.festival_id = %(scope)s)
ORDER BY s.created_at, s.id
"""


async def _count_attempt(conn: AsyncConnection[Any], name: str, ip: str) -> int:
    """Store an attempt unless a limit is reached (LoginRefused); returns its row id."""
    async with conn.transaction():
        # Serialises the count and the insert, so two attempts cannot both be the fifth.
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LIMIT_LOCK,))
        # Failures a day old count for nothing any more: the table stays small.
        await conn.execute("DELETE FROM ops_login_failure WHERE at < now() - interval '1 day'")
        params = {"name": name, "ip": ip, "window": FAILURE_WINDOW_S}
        cur = await conn.execute(_FAILURES, params)
        rec = await cur.fetchone()
        assert rec is not None
        by_user, by_ip, retry_s = rec
        if by_user >= MAX_USER_FAILURES or by_ip >= MAX_IP_FAILURES:
            raise LoginRefused("too_many_failures", max(1, int(retry_s)))
        cur = await conn.execute(
            "INSERT INTO ops_login_failure (user_name, ip) VALUES (%s, %s) RETURNING id",
            (name, ip),
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def login(
    conn: AsyncConnection[Any], name: str, password: str, *, ip: str, user_agent: str
) -> NewSession:
    """Check a user's password and open a session; LoginRefused ``bad_credentials`` (the
    same for an unknown user, a wrong password and a user with none) or
    ``too_many_failures``. `conn` must not be in a transaction."""
    key = name.strip().lower()[:200]
    ip = ip[:100]
    attempt = await _count_attempt(conn, key, ip)
    cur = await conn.execute(_USER, {"name": key})
    rec = await cur.fetchone()
    await conn.commit()  # no transaction held open while argon2 works
    stored = rec[4] if rec is not None else None
    if not await asyncio.to_thread(users.verify_password, stored, password):
        raise LoginRefused("bad_credentials")
    assert rec is not None
    user = OpsPrincipal(rec[0], rec[1], rec[2], rec[3])
    token, csrf, sid = secrets.token_urlsafe(32), secrets.token_urlsafe(32), uuid.uuid4()
    async with conn.transaction():
        await conn.execute("DELETE FROM ops_login_failure WHERE id = %s", (attempt,))
        cur = await conn.execute(
            "INSERT INTO ops_session (id, token_hash, user_id, csrf_token, ip, user_agent,"
            " expires_at) VALUES (%s, %s, %s, %s, %s, %s, now() + %s * interval '1 hour')"
            " RETURNING expires_at",
            (sid, token_hash(token), user.id, csrf, ip, user_agent[:500], SESSION_HOURS),
        )
        made = await cur.fetchone()
        assert made is not None
        await audit.record(
            conn, actor=user.actor, action="ops_session.create", entity_type="ops_session",
            entity_id=sid, new={"ip": ip, "user_agent": user_agent[:500]},
        )  # fmt: skip
    return NewSession(Session(sid, user, csrf, made[0]), token)


async def session_of(conn: AsyncConnection[Any], token: str) -> Session | None:
    """The live session a cookie's token opens (None: unknown, expired, ended, or its user
    revoked); notes when it was last seen (at most every SEEN_EVERY_S)."""
    if not token or len(token) > 100:
        return None
    cur = await conn.execute(_LOOKUP, {"hash": token_hash(token), "seen": SEEN_EVERY_S})
    rec = await cur.fetchone()
    if rec is None:
        return None
    if rec[7]:
        await conn.execute("UPDATE ops_session SET last_seen_at = now() WHERE id = %s", (rec[0],))
    return Session(rec[0], OpsPrincipal(rec[3], rec[4], rec[5], rec[6]), rec[1], rec[2])


async def end_session(conn: AsyncConnection[Any], session_id: uuid.UUID, *, actor: str) -> bool:
    """End a live session (a logout, or an admin's revoke); False if it had ended."""
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE ops_session SET revoked_at = now(), revoked_by = %s"
            " WHERE id = %s AND revoked_at IS NULL RETURNING user_id",
            (actor, session_id),
        )
        if await cur.fetchone() is None:
            return False
        await audit.record(
            conn, actor=actor, action="ops_session.end", entity_type="ops_session",
            entity_id=session_id,
        )  # fmt: skip
    return True


async def list_sessions(
    conn: AsyncConnection[Any],
    user: str | None = None,
    *,
    include_ended: bool = False,
    session_id: uuid.UUID | None = None,
    scope: uuid.UUID | None = None,
) -> list[SessionView]:
    """Console sessions (of one user, by name; of festival `scope`'s users), oldest first:
    the live ones unless `include_ended`. Times in UTC: a session belongs to no festival."""
    params = {"all": include_ended, "user": user, "sid": session_id, "scope": scope}
    return await views.fetch_models(conn, SessionView, _LIST, params, users.UTC_ZONE)


async def revoke_session(
    conn: AsyncConnection[Any], ref: str, *, actor: str, scope: uuid.UUID | None = None
) -> SessionView:
    """End a live session (of festival `scope`'s users, when given) by its id, or the start
    of it (8 characters or more) as an admin copies it from the list; NotFound unless
    exactly one live session matches."""
    ref = ref.strip().lower()
    if not SHORT_ID <= len(ref) <= 36 or ref.strip("0123456789abcdef-"):
        raise NotFound(f"no live session {ref!r} (give 8 or more characters of its id)")
    cur = await conn.execute(
        "SELECT s.id FROM ops_session s JOIN ops_user u ON u.id = s.user_id"
        " WHERE s.id::text LIKE %(ref)s AND s.revoked_at IS NULL AND s.expires_at > now()"
        " AND (%(scope)s::uuid IS NULL OR u.festival_id = %(scope)s)",
        {"ref": ref + "%", "scope": scope},
    )
    found = await cur.fetchall()
    if len(found) != 1:
        raise NotFound(f"no single live session {ref!r} ({len(found)} match)")
    sid: uuid.UUID = found[0][0]
    await end_session(conn, sid, actor=actor)
    (view,) = await list_sessions(conn, include_ended=True, session_id=sid)
    return view
