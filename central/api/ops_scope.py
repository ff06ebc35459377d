"""What every ops route shares: the festival its path names (slug or id), checked against
the caller's role; the row it acts on, found by name; the error answers it may give."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Path
from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field

from central import refs
from central.api.deps import StateDep
from central.auth import Action, OpsPrincipal, require
from sync.protocol import NUL_FREE_PATTERN, ErrorBody, Paths, PgText

T = TypeVar("T")
FestivalRef = Annotated[
    PgText, Path(description="the festival's slug or id", min_length=1, max_length=100)
]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422)
}
FESTIVAL_PREFIX = Paths.OPS_FESTIVAL
Finder = Callable[[AsyncConnection[Any], uuid.UUID, str], Awaitable[uuid.UUID]]
Act = Callable[[AsyncConnection[Any], uuid.UUID, uuid.UUID], Awaitable[T]]
Scoped = Callable[[AsyncConnection[Any], uuid.UUID], Awaitable[T]]


class ReasonRequest(BaseModel):
    """Why a ticket or a wristband is blocked."""

    model_config = ConfigDict(extra="forbid")
    reason: PgText = Field("", max_length=200)


def name_param(what: str, max_length: int = 200) -> Any:
    """A path parameter naming a row as people do: its name (or id), without a NUL."""
    return Path(
        min_length=1, max_length=max_length, pattern=NUL_FREE_PATTERN,
        description=f"the {what}'s name or id",
    )  # fmt: skip


async def festival_for(
    conn: AsyncConnection[Any], festival: str, who: OpsPrincipal, action: Action
) -> uuid.UUID:
    """The festival a route names, once the caller may do `action` on it. The role is
    checked first: a caller who may not act learns nothing of which festivals exist."""
    require(who, action)
    fid = await refs.festival(conn, festival)
    require(who, action, fid)
    return fid


async def in_festival(
    st: StateDep, festival: str, who: OpsPrincipal, action: Action, act: Scoped[T]
) -> T:
    """Check the caller may do `action` on the festival (`festival_for`), then `act` with
    its id; all on one connection, committed at the end."""
    async with st.pool.connection() as conn:
        return await act(conn, await festival_for(conn, festival, who, action))


async def acting_on(
    st: StateDep,
    festival: str,
    who: OpsPrincipal,
    action: Action,
    find: Finder,
    ref: str,
    act: Act[T],
) -> T:
    """Check the caller may do `action` on the festival, `find` the row `ref` names there
    (`central.refs`), then `act` on it; all on one connection, committed at the end."""

    async def found(conn: AsyncConnection[Any], fid: uuid.UUID) -> T:
        return await act(conn, fid, await find(conn, fid, ref))

    return await in_festival(st, festival, who, action, found)
