"""What festival-scoped ops routes share: the festival a path names, once the caller may act.

A path names its festival as people do, by slug (or id): ``/v1/ops/festivals/summer/…``.
The role check comes first (403), then the festival is looked up (404); a caller limited to
one festival gets 403 for any other, existing or not, so it learns nothing of them.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Path
from psycopg import AsyncConnection

from central import refs
from central.api.text import NUL_FREE_PATTERN
from central.auth import Action, AuthError, OpsPrincipal, require
from central.errors import NotFound
from sync.protocol import ErrorBody

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422)
}
FESTIVAL_PREFIX = "/v1/ops/festivals/{festival}"


def name_param(what: str, max_length: int = 200) -> Any:
    """A path parameter naming a row as people do: its name (or id), without a NUL."""
    return Path(
        min_length=1, max_length=max_length, pattern=NUL_FREE_PATTERN,
        description=f"the {what}'s name or id",
    )  # fmt: skip


FestivalRef = Annotated[str, name_param("festival (slug)", 100)]


async def festival_in(
    conn: AsyncConnection[Any], who: OpsPrincipal, ref: str, action: Action
) -> uuid.UUID:
    """The id of the festival `ref` names (slug or id), once `who` may do `action` on it."""
    require(who, action)
    try:
        fid = await refs.festival(conn, ref)
    except NotFound:
        if who.festival_id is not None:
            raise AuthError(403, "forbidden", "not allowed on this festival") from None
        raise
    require(who, action, fid)
    return fid
