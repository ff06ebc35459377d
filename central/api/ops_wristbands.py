"""Ops routes for one wristband, found by its tag UID (or its account's id): show with its
ledger, block, unblock, top up, refund (`central.wristband_ops` does each; these check who
asks). The ``/accounts/{ref}/…`` paths of before stay as aliases, out of the schema."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from central import refs, wristband_ops
from central.api.deps import OpsDep, StateDep
from central.api.ops_scope import (
    ERRORS,
    FESTIVAL_PREFIX,
    FestivalRef,
    ReasonRequest,
    acting_on,
)
from central.auth import Action
from central.wristband_ops import WristbandDone, WristbandShow
from sync.protocol import PgText
from sync.vocab import MAX_AMOUNT

router = APIRouter(prefix=FESTIVAL_PREFIX, tags=["wristbands"])
TagRef = Annotated[
    PgText,
    Path(
        description="the wristband: its tag UID in hex (colons and spaces allowed) or its "
        "account's id",
        min_length=1,
        max_length=100,
    ),
]
# The `/accounts/{ref}/…` paths of before issue 15: kept working, left out of the schema.
OLD = "/accounts/{tag}"


class AmountRequest(BaseModel):
    """An amount of money in cents."""

    model_config = ConfigDict(extra="forbid")
    amount: int = Field(gt=0, le=MAX_AMOUNT, description="cents")


@router.get("/wristbands/{tag}", responses=ERRORS)
@router.get(f"{OLD}/ledger", include_in_schema=False, deprecated=True)
async def show_wristband(
    festival: FestivalRef, tag: TagRef, who: OpsDep, st: StateDep
) -> WristbandShow:
    """A wristband's account, its ledger (balance before and after each entry), conflicts
    and audit trail."""
    return await acting_on(
        st, festival, who, Action.VIEW_LEDGER, refs.wristband, tag, wristband_ops.show
    )


@router.post("/wristbands/{tag}/block", responses=ERRORS)
@router.post(f"{OLD}/block", include_in_schema=False, deprecated=True)
async def block_wristband(
    festival: FestivalRef,
    tag: TagRef,
    who: OpsDep,
    st: StateDep,
    body: ReasonRequest | None = None,
) -> WristbandDone:
    """Put a wristband's tag on the block list (one already there: 409 already_blocked)."""
    act = partial(wristband_ops.block, reason=body.reason if body else "", actor=who.actor)
    return await acting_on(st, festival, who, Action.BLOCK_TAG, refs.wristband, tag, act)


@router.post("/wristbands/{tag}/unblock", responses=ERRORS)
@router.post(f"{OLD}/unblock", include_in_schema=False, deprecated=True)
async def unblock_wristband(
    festival: FestivalRef, tag: TagRef, who: OpsDep, st: StateDep
) -> WristbandDone:
    """Unblock a wristband (a debt hold stays until the debt is paid: 409 held_for_debt)."""
    act = partial(wristband_ops.unblock, actor=who.actor)
    return await acting_on(st, festival, who, Action.BLOCK_TAG, refs.wristband, tag, act)


@router.post("/wristbands/{tag}/topup", responses=ERRORS)
@router.post(f"{OLD}/topup", include_in_schema=False, deprecated=True)
async def topup_wristband(
    festival: FestivalRef, tag: TagRef, body: AmountRequest, who: OpsDep, st: StateDep
) -> WristbandDone:
    """Top up a wristband at the ops desk."""
    act = partial(wristband_ops.topup, amount=body.amount, actor=who.actor)
    return await acting_on(st, festival, who, Action.TOPUP, refs.wristband, tag, act)


@router.post("/wristbands/{tag}/refund", responses=ERRORS)
@router.post(f"{OLD}/refund", include_in_schema=False, deprecated=True)
async def refund_wristband(
    festival: FestivalRef, tag: TagRef, body: AmountRequest, who: OpsDep, st: StateDep
) -> WristbandDone:
    """Pay money back from a wristband at the ops desk (beyond its balance: 409
    insufficient_balance, nothing stored)."""
    act = partial(wristband_ops.refund, amount=body.amount, actor=who.actor)
    return await acting_on(st, festival, who, Action.REFUND, refs.wristband, tag, act)
