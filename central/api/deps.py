"""What routes share: app state, the caller's principal, protocol headers."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from central.api.longpoll import FeedWaiters
from central.auth import (
    Action,
    DevicePrincipal,
    OpsPrincipal,
    Principal,
    authenticate,
    bearer,
    require,
)
from central.errors import ApiError
from central.turns import Turns
from config.central import CentralConfig
from sync.protocol import MAX_BATCH, MAX_PAYLOAD_BYTES

# The largest push body when `CentralConfig.max_push_bytes` is unset: a full batch of the
# largest events, with room for each event's other fields.
MAX_PUSH_BYTES = MAX_BATCH * (MAX_PAYLOAD_BYTES + 1024)


@dataclass
class AppState:
    """Everything a route needs from the running app."""

    pool: AsyncConnectionPool
    waiters: FeedWaiters
    settings: CentralConfig
    history: str  # the identity of the history it serves (`central.history`), read at start
    turns: Turns = field(default_factory=Turns)  # pushes queued for an ingest lock


def state(request: Request) -> AppState:
    """The app's state (set up by the lifespan)."""
    st: AppState | None = getattr(request.app.state, "central", None)
    if st is None:
        raise ApiError(503, "not_ready", "central is starting")
    return st


StateDep = Annotated[AppState, Depends(state)]
AuthHeader = Annotated[str | None, Header(alias="Authorization")]


def now_ms() -> int:
    """Central's wall clock in unix ms."""
    return time.time_ns() // 1_000_000


async def principal_of(conn: AsyncConnection[Any], authorization: str | None) -> Principal:
    """Authenticate a request's bearer token on `conn`."""
    return await authenticate(conn, bearer(authorization))


async def device_principal(st: StateDep, authorization: AuthHeader = None) -> DevicePrincipal:
    """The calling device; an ops token here is 403."""
    async with st.pool.connection() as conn:
        who = await principal_of(conn, authorization)
    if not isinstance(who, DevicePrincipal):
        raise ApiError(403, "forbidden", "sync endpoints take a device token")
    return who


async def ops_principal(st: StateDep, authorization: AuthHeader = None) -> OpsPrincipal:
    """The calling ops user; a device token here is 403."""
    async with st.pool.connection() as conn:
        who = await principal_of(conn, authorization)
    if not isinstance(who, OpsPrincipal):
        require(who, Action.VIEW_CONFLICTS)  # raises: devices may not call ops endpoints
        raise ApiError(403, "forbidden", "ops endpoints take an ops token")
    return who


DeviceDep = Annotated[DevicePrincipal, Depends(device_principal)]
OpsDep = Annotated[OpsPrincipal, Depends(ops_principal)]
