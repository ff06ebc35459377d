"""**Lookup**: a ticket by the code scanned off it, an outside code, its holder reference or
id, with its whole history (scans, entries and exits, conflicts, audit) and the actions
(cancel, block, unblock, transfer, refund); a wristband by its tag UID with its ledger and
the actions (block, unblock, top up, refund).

Each action shows only for a role the matrix lets do it, and is refused (403, nothing
stored) for any other. Found through `central.refs`, read and written through
`central.ticket_ops` and `central.wristband_ops`, as the ops API does.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from psycopg import AsyncConnection

from central import refs, ticket_ops, wristband_ops
from central.auth import Action
from central.console.pages import audit, forms
from central.console.web import Festival, Viewer, ViewerDep, central_state, festival_page, render
from central.errors import NotFound

router = APIRouter()
PAGE = "lookup"
MAX_REF = 500
TICKET_ACTIONS: dict[str, Action] = {
    "cancel": Action.CANCEL_TICKET,
    "block": Action.BLOCK_TICKET,
    "unblock": Action.BLOCK_TICKET,
    "transfer": Action.TRANSFER_TICKET,
    "refund": Action.REFUND_TICKET,
}
WRISTBAND_ACTIONS: dict[str, Action] = {
    "block": Action.BLOCK_TAG,
    "unblock": Action.BLOCK_TAG,
    "topup": Action.TOPUP,
    "refund": Action.REFUND,
}


def finds_wristbands(who: Viewer) -> bool:
    """A wristband is looked up to see its ledger, or to block it (security may block a tag
    without seeing its money)."""
    return who.may(Action.VIEW_LEDGER) or who.may(Action.BLOCK_TAG)


async def _page(
    request: Request, who: Viewer, conn: AsyncConnection[Any], fest: Festival,
    *, error: str = "", status: int = 200, new_code: str | None = None, subject: str = "",
) -> Response:  # fmt: skip
    """The page; after a write (`subject`: ``ticket=ID`` or ``wristband=ID``) that one."""
    q = request.query_params
    kind, _, ref = subject.partition("=")
    ticket_ref = ref if kind == "ticket" else q.get("ticket", "").strip()[:MAX_REF]
    tag_ref = ref if kind == "wristband" else q.get("wristband", "").strip()[:MAX_REF]
    ticket = wristband = None
    try:
        if ticket_ref and who.may(Action.VIEW_TICKET):
            tid = await refs.ticket(conn, fest.id, ticket_ref)
            ticket = await ticket_ops.show(conn, fest.id, tid)
        elif tag_ref and finds_wristbands(who):
            aid = await refs.wristband(conn, fest.id, tag_ref)
            wristband = await wristband_ops.show(conn, fest.id, aid)
    except forms.Refused as refused:
        error, status = error or str(refused), 404 if status == 200 else status
    shown = ticket or wristband
    return render(
        request, who, "pages/lookup.html", status, festival=fest, current=PAGE,
        fmt=fest.formats, ticket_ref=ticket_ref, tag_ref=tag_ref, ticket=ticket,
        wristband=wristband, new_code=new_code, error=error,
        audit=[audit.row(a) for a in shown.audit] if shown is not None else [],
        done=q.get("done", ""), finds_tickets=who.may(Action.VIEW_TICKET),
        finds_wristbands=finds_wristbands(who), sees_ledger=who.may(Action.VIEW_LEDGER),
        may={name: who.may(a) for name, a in TICKET_ACTIONS.items()},
        may_tag={name: who.may(a) for name, a in WRISTBAND_ACTIONS.items()},
    )  # fmt: skip


@router.get("/f/{festival}/lookup")
async def lookup_page(request: Request, festival: str, who: ViewerDep) -> Response:
    """The search forms, and the ticket or wristband asked for."""
    async with central_state(request).pool.connection() as conn:
        fest = await festival_page(conn, who, festival, PAGE)
        return await _page(request, who, conn, fest)


Find = Callable[[AsyncConnection[Any], uuid.UUID, str], Awaitable[uuid.UUID]]
# Does one action on a row found: (conn, festival, row id, action, form, actor) -> a code to
# show this once (a transfer's), or None.
Write = Callable[
    [AsyncConnection[Any], Festival, uuid.UUID, str, dict[str, str], str], Awaitable[str | None]
]


async def _on_ticket(
    conn: AsyncConnection[Any], fest: Festival, tid: uuid.UUID, action: str,
    fields: dict[str, str], actor: str,
) -> str | None:  # fmt: skip
    if action == "cancel":
        await ticket_ops.cancel(conn, fest.id, tid, actor=actor)
    elif action == "block":
        reason = forms.text(fields, "reason")
        await ticket_ops.block(conn, fest.id, tid, reason=reason, actor=actor)
    elif action == "unblock":
        await ticket_ops.unblock(conn, fest.id, tid, actor=actor)
    elif action == "refund":
        await ticket_ops.refund(conn, fest.id, tid, actor=actor)
    else:
        holder = fields.get("holder_ref") or None
        moved = await ticket_ops.transfer(conn, fest.id, tid, actor=actor, holder_ref=holder)
        return moved.code
    return None


async def _on_wristband(
    conn: AsyncConnection[Any], fest: Festival, aid: uuid.UUID, action: str,
    fields: dict[str, str], actor: str,
) -> str | None:  # fmt: skip
    if action == "block":
        reason = forms.text(fields, "reason")
        await wristband_ops.block(conn, fest.id, aid, reason=reason, actor=actor)
    elif action == "unblock":
        await wristband_ops.unblock(conn, fest.id, aid, actor=actor)
    else:
        book = wristband_ops.topup if action == "topup" else wristband_ops.refund
        cents = forms.amount(fields, fest.formats.currency)
        await book(conn, fest.id, aid, cents, actor=actor)
    return None


async def _act(
    request: Request, who: Viewer, festival: str, kind: str, rid: uuid.UUID, action: str,
    actions: dict[str, Action], find: Find, write: Write,
) -> Response:  # fmt: skip
    """Check the role may do `action` (before anything is read from the form), find the row
    in this festival, do it; then the page again, saying what was done or why not."""
    subject = f"{kind}={rid}"
    async with central_state(request).pool.connection() as conn:
        fest = await festival_page(conn, who, festival, PAGE)
        if action not in actions:
            raise NotFound(f"no action {action!r} on a {kind}")
        forms.allow(who, actions[action], fest)
        fields = await forms.posted(request)
        try:
            found = await find(conn, fest.id, str(rid))
            code = await write(conn, fest, found, action, fields, who.user.actor)
        except forms.Refused as refused:
            await conn.rollback()  # nothing of a refused write is kept
            return await _page(
                request, who, conn, fest, error=str(refused), status=409, subject=subject
            )
        if code is not None:
            return await _page(request, who, conn, fest, new_code=code, subject=subject)
    return forms.back(fest, PAGE, action, **{kind: str(rid)})


@router.post("/f/{festival}/lookup/ticket/{ticket}/{action}")
async def ticket_action(
    request: Request, festival: str, ticket: uuid.UUID, action: str, who: ViewerDep
) -> Response:
    """Cancel, block, unblock, transfer or refund a ticket of this festival."""
    return await _act(
        request, who, festival, "ticket", ticket, action, TICKET_ACTIONS, refs.ticket, _on_ticket
    )


@router.post("/f/{festival}/lookup/wristband/{account}/{action}")
async def wristband_action(
    request: Request, festival: str, account: uuid.UUID, action: str, who: ViewerDep
) -> Response:
    """Block, unblock, top up or refund a wristband of this festival."""
    return await _act(
        request, who, festival, "wristband", account, action, WRISTBAND_ACTIONS,
        refs.wristband, _on_wristband,
    )  # fmt: skip
