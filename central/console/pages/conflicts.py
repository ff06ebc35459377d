"""**Conflicts**: what two devices (or a device and central) disagreed on, both facts side
by side (device by name, local time, verdict, what central knew then), and the outcome;
resolve one with a note.

Filters: kind, open or resolved, a device (by name), a ticket (code, outside code, holder
reference or id) or a wristband (tag UID). Read and written through `central.ops` (the ops
API's functions), which `central.conflict_view` reads into sides.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from psycopg import AsyncConnection

from central import devices, ops, readable, refs
from central.auth import Action
from central.conflict_view import FactSide, read
from central.conflicts import ConflictKind
from central.console.pages import forms
from central.console.web import Festival, Viewer, ViewerDep, central_state, festival_page, render

router = APIRouter()
PAGE = "conflicts"
SHOWN = 50  # conflicts on a page, newest first; older ones a page further
STATES = ("open", "resolved", "all")


@dataclass(frozen=True, slots=True)
class Shown:
    """One conflict with its sides read for the page."""

    item: ops.ConflictItem
    sides: list[FactSide]


def _filters(request: Request) -> dict[str, str]:
    q = request.query_params
    names = ("state", "kind", "device", "ticket", "wristband", "before")
    return {k: q.get(k, "").strip()[:500] for k in names}


@dataclass(frozen=True, slots=True)
class Listed:
    """A page of conflicts: those shown, how many the filters name, and the next page's."""

    shown: list[Shown]
    total: int
    older: str | None  # the ``before`` of the next page (None: this is the last)


async def _list(conn: AsyncConnection[Any], fest: Festival, f: dict[str, str]) -> Listed:
    state = f["state"] if f["state"] in STATES else "open"
    kind = ConflictKind(f["kind"]) if f["kind"] in ConflictKind.__members__.values() else None
    where = await ops.conflict_filter(
        conn, fest.id, state=state, kind=kind,  # type: ignore[arg-type]
        ticket=f["ticket"] or None, wristband=f["wristband"] or None,
        device=f["device"] or None, limit=SHOWN + 1,
    )  # fmt: skip
    total = await ops.count_conflicts(conn, fest.id, where)
    before = refs.as_uuid(f["before"]) if f["before"] else None
    local = await readable.local(conn, fest.id)
    items = await ops.list_conflicts(conn, fest.id, replace(where, before=before), local=local)
    older = str(items[SHOWN - 1].id) if len(items) > SHOWN else None
    shown = [Shown(c, read(c.kind, c.facts, c.detail, local)[1]) for c in items[:SHOWN]]
    return Listed(shown, total, older)


async def _page(
    request: Request, who: Viewer, conn: AsyncConnection[Any], fest: Festival,
    *, error: str = "", status: int = 200,
) -> Response:  # fmt: skip
    f = _filters(request)
    listed = Listed([], 0, None)
    try:
        listed = await _list(conn, fest, f)
    except forms.Refused as refused:  # a ticket or device the filter names is not there
        error, status = error or str(refused), 404 if status == 200 else status
    # The next page keeps the filters (not the page it came from).
    older = {k: v for k, v in f.items() if v and k != "before"} | {"before": listed.older or ""}
    return render(
        request, who, "pages/conflicts.html", status, festival=fest, current=PAGE,
        fmt=fest.formats, conflicts=listed.shown, total=listed.total, filters=f,
        older=urlencode(older) if listed.older else None, kinds=list(ConflictKind),
        devices=[d.name for d in await devices.list_devices(conn, fest.id)],
        may_resolve=who.may(Action.RESOLVE_CONFLICT), error=error,
        done=request.query_params.get("done", ""),
    )  # fmt: skip


@router.get("/f/{festival}/conflicts")
async def conflicts_page(request: Request, festival: str, who: ViewerDep) -> Response:
    """The conflicts the filters name, newest first, each with both facts."""
    async with central_state(request).pool.connection() as conn:
        fest = await festival_page(conn, who, festival, PAGE)
        return await _page(request, who, conn, fest)


@router.post("/f/{festival}/conflicts/{conflict}/resolve")
async def resolve(request: Request, festival: str, conflict: uuid.UUID, who: ViewerDep) -> Response:
    """Resolve a conflict with a note (audited); one resolved already is refused, shown why."""
    async with central_state(request).pool.connection() as conn:
        fest = await festival_page(conn, who, festival, PAGE)
        forms.allow(who, Action.RESOLVE_CONFLICT, fest)
        fields = await forms.posted(request)
        try:
            note = forms.text(fields, "note")
            await ops.resolve_conflict(conn, fest.id, conflict, actor=who.user.actor, note=note)
        except forms.Refused as refused:
            await conn.rollback()  # nothing of a refused write is kept
            return await _page(request, who, conn, fest, error=str(refused), status=409)
    return forms.back(fest, PAGE, "resolved", state="all")
