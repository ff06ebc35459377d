"""Console sessions, for admins: who is logged in, from where, until when; end one.

Not a festival's page: it is linked beside the user's name for a role that may list users
(`Action.VIEW_USERS`); ending a session needs `Action.REVOKE_USER`. An admin of one festival
sees that festival's users' sessions only.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from central.auth import Action, require
from central.console import sessions
from central.console.web import PREFIX, ViewerDep, central_state, render

router = APIRouter()
PATH = "/sessions"


@router.get(PATH)
async def session_list(request: Request, who: ViewerDep) -> Response:
    """The live sessions, oldest first."""
    require(who.user, Action.VIEW_USERS)
    async with central_state(request).pool.connection() as conn:
        shown = await sessions.list_sessions(conn, scope=who.user.festival_id)
    return render(
        request, who, "sessions.html", sessions=shown, current="sessions",
        may_end=who.may(Action.REVOKE_USER), own=who.session.id,
    )  # fmt: skip


@router.post(PATH + "/{session}/end")
async def session_end(request: Request, session: str, who: ViewerDep) -> Response:
    """End a session: its cookie is refused from its next request on."""
    require(who.user, Action.REVOKE_USER)
    async with central_state(request).pool.connection() as conn:
        await sessions.revoke_session(
            conn, session, actor=who.user.actor, scope=who.user.festival_id
        )
    return RedirectResponse(f"{PREFIX}{PATH}", status_code=303)
