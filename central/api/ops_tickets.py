"""Ops routes for one ticket, found by what ops have in hand: show, cancel, block, unblock,
transfer or resell, refund (`central.ticket_ops` does each; these check who asks)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from central import refs, ticket_ops
from central.api.deps import OpsDep, StateDep
from central.api.ops_scope import (
    ERRORS,
    FESTIVAL_PREFIX,
    FestivalRef,
    ReasonRequest,
    acting_on,
)
from central.auth import Action
from central.ticket_ops import TicketDone, TicketShow
from sync.protocol import PgText

MAX_REF = 500  # a signed code is under 200 characters; holder references are free text
router = APIRouter(prefix=f"{FESTIVAL_PREFIX}/tickets", tags=["tickets"])
_WHICH = (
    "the ticket: its id, its signed code as scanned (an older version too), its outside code "
    "or the holder reference it was sold under"
)
TicketRef = Annotated[PgText, Path(description=_WHICH, min_length=1, max_length=MAX_REF)]


class TransferRequest(BaseModel):
    """Who holds a transferred or resold ticket now, and an outside ticket's new code."""

    model_config = ConfigDict(extra="forbid")
    holder_ref: PgText | None = Field(
        None, min_length=1, max_length=200, description="the new holder's order or reference"
    )
    code: PgText | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="an outside ticket's new code (default: a random one); a signed ticket "
        "always gets a newly signed code",
    )
    accept_weak_code: bool = Field(
        False, description="take a new outside code too weak to survive offline guessing"
    )


@router.get("", responses=ERRORS)
async def find_ticket(
    festival: FestivalRef,
    find: Annotated[PgText, Query(description=_WHICH, min_length=1, max_length=MAX_REF)],
    who: OpsDep,
    st: StateDep,
) -> TicketShow:
    """A ticket with its history, found by a reference a path cannot carry (one with a /)."""
    return await acting_on(
        st, festival, who, Action.VIEW_TICKET, refs.ticket, find, ticket_ops.show
    )


@router.get("/{ticket}", responses=ERRORS)
async def show_ticket(
    festival: FestivalRef, ticket: TicketRef, who: OpsDep, st: StateDep
) -> TicketShow:
    """A ticket's state, scans, access log, conflicts and audit trail."""
    return await acting_on(
        st, festival, who, Action.VIEW_TICKET, refs.ticket, ticket, ticket_ops.show
    )


@router.post("/{ticket}/block", responses=ERRORS)
async def block_ticket(
    festival: FestivalRef,
    ticket: TicketRef,
    who: OpsDep,
    st: StateDep,
    body: ReasonRequest | None = None,
) -> TicketDone:
    """Put a ticket on the block list (a ticket already there: 409 already_blocked)."""
    act = partial(ticket_ops.block, reason=body.reason if body else "", actor=who.actor)
    return await acting_on(st, festival, who, Action.BLOCK_TICKET, refs.ticket, ticket, act)


@router.post("/{ticket}/transfer", responses=ERRORS)
async def transfer_ticket(
    festival: FestivalRef,
    ticket: TicketRef,
    who: OpsDep,
    st: StateDep,
    body: TransferRequest | None = None,
) -> TicketDone:
    """Transfer or resell a sold ticket: its new code comes back this once, and devices
    refuse the old one once they have the change (a signed code as ``revoked``)."""
    req = body or TransferRequest()
    act = partial(
        ticket_ops.transfer, actor=who.actor, holder_ref=req.holder_ref, new_code=req.code,
        accept_weak_code=req.accept_weak_code,
    )  # fmt: skip
    return await acting_on(st, festival, who, Action.TRANSFER_TICKET, refs.ticket, ticket, act)


def _plain(action: Action, act: Callable[..., Awaitable[TicketDone]], doc: str) -> Any:
    """The route of an action on a ticket that takes nothing but who asks."""

    async def route(
        festival: FestivalRef, ticket: TicketRef, who: OpsDep, st: StateDep
    ) -> TicketDone:
        return await acting_on(
            st, festival, who, action, refs.ticket, ticket, partial(act, actor=who.actor)
        )

    route.__doc__ = doc
    return route


_PLAIN = (
    ("cancel", Action.CANCEL_TICKET, ticket_ops.cancel,
     "Cancel a ticket: gates refuse it from their next sync (one cancelled: 409 wrong_status)."),
    ("unblock", Action.BLOCK_TICKET, ticket_ops.unblock,
     "Take a ticket off the block list (one not there: 409 not_blocked)."),
    ("refund", Action.REFUND_TICKET, ticket_ops.refund,
     "Mark a cancelled ticket refunded (any other: 409 wrong_status)."),
)  # fmt: skip
for _name, _action, _act, _doc in _PLAIN:
    router.add_api_route(
        f"/{{ticket}}/{_name}", _plain(_action, _act, _doc), methods=["POST"],
        responses=ERRORS, name=f"{_name}_ticket",
    )  # fmt: skip
