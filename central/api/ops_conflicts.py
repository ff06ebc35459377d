"""Ops routes for conflicts: list them by what they are about, show one with both facts
side by side, resolve one with a note (`central.ops` does each; these check who asks)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from central import ops
from central.api.deps import OpsDep, StateDep
from central.api.ops_scope import ERRORS, FESTIVAL_PREFIX, FestivalRef, festival_for
from central.auth import Action
from central.conflicts import ConflictKind
from central.ops import ConflictItem, ConflictShow, ConflictState, SubjectType
from sync.protocol import PgText

router = APIRouter(prefix=f"{FESTIVAL_PREFIX}/conflicts", tags=["conflicts"])


def _ref(about: str) -> object:
    return Query(min_length=1, max_length=500, description=about)


class ResolveRequest(BaseModel):
    """How ops settled a conflict."""

    model_config = ConfigDict(extra="forbid")
    note: PgText = Field(min_length=1, max_length=2000)


@router.get("", responses=ERRORS)
async def list_conflicts(
    festival: FestivalRef,
    who: OpsDep,
    st: StateDep,
    state: ConflictState = "open",
    kind: ConflictKind | None = None,
    subject: Annotated[SubjectType | None, Query(description="what they are about")] = None,
    ticket: Annotated[PgText | None, _ref("about this ticket (id, code or reference)")] = None,
    wristband: Annotated[PgText | None, _ref("about this wristband (tag UID or id)")] = None,
    device: Annotated[PgText | None, _ref("about this device or its facts (name or id)")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    open_only: Annotated[
        bool | None, Query(deprecated=True, description="before state: false is state=all")
    ] = None,
) -> list[ConflictItem]:
    """Conflicts with both facts, newest first (open ones unless `state` says otherwise)."""
    if open_only is not None:
        state = "open" if open_only else "all"
    async with st.pool.connection() as conn:
        fid = await festival_for(conn, festival, who, Action.VIEW_CONFLICTS)
        where = await ops.conflict_filter(
            conn, fid, state=state, kind=kind, subject_type=subject, ticket=ticket,
            wristband=wristband, device=device, limit=limit,
        )  # fmt: skip
        return await ops.list_conflicts(conn, fid, where)


@router.get("/{conflict_id}", responses=ERRORS)
async def show_conflict(
    festival: FestivalRef, conflict_id: uuid.UUID, who: OpsDep, st: StateDep
) -> ConflictShow:
    """One conflict (its id as the list gives it) with both facts side by side: devices and
    zones by name, times in the festival's time zone, what central knew then."""
    async with st.pool.connection() as conn:
        fid = await festival_for(conn, festival, who, Action.VIEW_CONFLICTS)
        return await ops.show_conflict(conn, fid, conflict_id)


@router.post("/{conflict_id}/resolve", responses=ERRORS)
async def resolve_conflict(
    festival: FestivalRef, conflict_id: uuid.UUID, body: ResolveRequest, who: OpsDep, st: StateDep
) -> ConflictItem:
    """Resolve a conflict with a note (one already resolved: 409 already_resolved)."""
    async with st.pool.connection() as conn:
        fid = await festival_for(conn, festival, who, Action.RESOLVE_CONFLICT)
        return await ops.resolve_conflict(conn, fid, conflict_id, actor=who.actor, note=body.note)
