"""Ops endpoints above any one festival: the festivals one may see, and ops users (admins).

An admin limited to one festival sees and manages only that festival's users: it cannot add
a user of every festival, nor revoke one (404: to it, other users do not exist).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field

from central import festivals, refs, users
from central.api.deps import OpsDep, StateDep
from central.api.ops_scope import ERRORS, name_param
from central.auth import Action, OpsPrincipal, OpsRole, require
from central.errors import AuthError
from sync.protocol import Paths, PgText

router = APIRouter(prefix=Paths.OPS, tags=["ops: admin"])
UserRef = Annotated[str, name_param("user")]


class AddUserRequest(BaseModel):
    """A new ops user: its name, role, and the one festival it works on (none: all)."""

    model_config = ConfigDict(extra="forbid")
    name: PgText = Field(min_length=1, max_length=200)
    role: OpsRole
    festival: PgText | None = Field(None, min_length=1, max_length=100, description="slug or id")


@router.get("/festivals", response_model=list[festivals.FestivalSummary], responses=ERRORS)
async def list_festivals(who: OpsDep, st: StateDep) -> list[festivals.FestivalSummary]:
    """Live festivals the caller may see (its own, if it works on one), with code risk."""
    require(who, Action.VIEW_FESTIVAL)
    async with st.pool.connection() as conn:
        return await festivals.list_festivals(conn, who.festival_id)


async def _festival(
    conn: AsyncConnection[Any], who: OpsPrincipal, ref: str | None
) -> uuid.UUID | None:
    """The festival `ref` names (None: every festival), if `who` may manage its users."""
    fid = None if ref is None else await refs.festival(conn, ref)
    if who.festival_id is not None and fid != who.festival_id:
        raise AuthError(403, "forbidden", "you manage the users of your festival only")
    return fid


@router.get("/users", response_model=list[users.UserView], responses=ERRORS)
async def list_users(
    who: OpsDep,
    st: StateDep,
    festival: Annotated[
        PgText | None, Query(max_length=100, description="only this festival's (slug or id)")
    ] = None,
) -> list[users.UserView]:
    """Ops users (never their tokens), oldest first."""
    require(who, Action.VIEW_USERS)
    async with st.pool.connection() as conn:
        scope = who.festival_id if festival is None else await _festival(conn, who, festival)
        return await users.list_users(conn, scope)


@router.post("/users", response_model=users.NewUser, responses=ERRORS)
async def add_user(body: AddUserRequest, who: OpsDep, st: StateDep) -> users.NewUser:
    """Add an ops user; its token is in this answer only (409 ``name_taken``)."""
    require(who, Action.ADD_USER)
    async with st.pool.connection() as conn:
        fid = await _festival(conn, who, body.festival)
        return await users.add_user(
            conn, name=body.name, role=body.role, actor=who.actor, festival_id=fid
        )


@router.post("/users/{user}/revoke", response_model=users.UserView, responses=ERRORS)
async def revoke_user(user: UserRef, who: OpsDep, st: StateDep) -> users.UserView:
    """Revoke an ops user by name: its token is refused from its next request (409
    ``already_revoked``)."""
    require(who, Action.REVOKE_USER)
    async with st.pool.connection() as conn:
        return await users.revoke_user(conn, user, actor=who.actor, scope=who.festival_id)
