"""The console's front page: the festivals this person may open."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from central import festivals
from central.console.web import ViewerDep, central_state, render

router = APIRouter()


@router.get("/")
async def home(request: Request, who: ViewerDep) -> Response:
    """The festivals of the user's scope (all, for a user of no one festival)."""
    async with central_state(request).pool.connection() as conn:
        shown = await festivals.list_festivals(conn, who.user.festival_id)
    return render(request, who, "home.html", festivals=shown)
