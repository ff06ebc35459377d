"""`festgate-central conflict …`: list a festival's conflicts by what they are about, show
one with both facts side by side, resolve one with a note (`central.ops`, as the ops API).
``festgate-central conflicts -f X`` (mounted by `central.cli`) is `list_conflicts` too."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from psycopg import AsyncConnection
from pydantic import BaseModel
from rich.markup import escape

from central import ops
from central.cli_common import (
    FestivalOpt,
    JsonOpt,
    actor,
    console,
    emit,
    fail,
    festival_id,
    run,
    table,
)
from central.cli_ops import fields, section, shown, when
from central.conflict_view import FactSide
from central.conflicts import ConflictKind
from central.ops import ConflictItem, ConflictShow, ConflictState
from central.readable import short

app = typer.Typer(help="sync conflicts: list, show both facts, resolve", no_args_is_help=True)
MAX_NOTE = 2000  # as the API takes
IdArg = Annotated[str, typer.Argument(help="the conflict's id, or its start as the list shows it")]


class ConflictList(BaseModel):
    """The list as one JSON object."""

    conflicts: list[ConflictItem]


_SIDE_ROWS: tuple[tuple[str, str], ...] = (
    ("at", "at"), ("device", "device"), ("zone", "zone"), ("kind", "kind"),
    ("verdict", "verdict"), ("device seq", "device_seq"), ("seen seq", "catalog_seq"),
    ("amount", "amount"), ("central state", "state"), ("", "note"),
)  # fmt: skip


def list_conflicts(
    ctx: typer.Context,
    festival: FestivalOpt,
    all_: Annotated[bool, typer.Option("--all", help="resolved ones too")] = False,
    resolved: Annotated[bool, typer.Option("--resolved", help="only resolved ones")] = False,
    kind: Annotated[ConflictKind | None, typer.Option(help="only this kind")] = None,
    ticket: Annotated[str | None, typer.Option(help="about this ticket (any name)")] = None,
    wristband: Annotated[str | None, typer.Option(help="about this wristband (tag UID)")] = None,
    device: Annotated[str | None, typer.Option(help="about this device or its facts")] = None,
    limit: Annotated[int, typer.Option(min=1, max=5000)] = 500,
    as_json: JsonOpt = False,
) -> None:
    """List conflicts, newest first (open ones unless --all or --resolved)."""
    state: ConflictState = "resolved" if resolved else "all" if all_ else "open"

    async def work(conn: AsyncConnection[Any]) -> list[ConflictItem]:
        fid = await festival_id(conn, festival)
        where = await ops.conflict_filter(
            conn, fid, state=state, kind=kind, ticket=ticket, wristband=wristband,
            device=device, limit=limit,
        )  # fmt: skip
        return await ops.list_conflicts(conn, fid, where)

    found = run(ctx, work)
    if as_json:
        typer.echo(ConflictList(conflicts=found).model_dump_json())
        return
    columns: tuple[str, ...] = ("id", "kind", "found", "what", "resolved")
    rows: list[tuple[Any, ...]] = [
        (short(c.id), c.kind, when(c.created_at), f"{c.subject}: {c.summary}", when(c.resolved_at))
        for c in found
    ]
    if state == "open":  # none is resolved: room for what happened
        columns, rows = columns[:-1], [r[:-1] for r in rows]
    section(f"{len(found)} conflicts ({state})", columns, rows)


app.command("list")(list_conflicts)


def _sides(sides: list[FactSide]) -> None:
    """Both facts side by side: one column per side, one row per thing either records."""
    cells = [s.model_dump() | {"at": when(s.at)} for s in sides]
    rows = [
        (label, *(c[key] for c in cells))
        for label, key in _SIDE_ROWS
        if any(c[key] is not None for c in cells)
    ]
    table(("", *(s.label for s in sides)), rows)


def _print_show(found: ConflictShow) -> None:
    state = "open" if found.resolved_at is None else "resolved"
    console.print(f"[bold]{found.kind}[/bold] about {escape(found.subject)}: {state}")
    console.print(escape(found.summary), soft_wrap=True)
    fields([("id", found.id), ("found", when(found.created_at)), ("times in", found.timezone)])
    _sides(found.sides)
    if found.resolved_at is not None:
        resolved = f"{when(found.resolved_at)} by {found.resolved_by}"
        fields([("resolved", resolved), ("note", found.resolution_note)])


@app.command("show")
def show(
    ctx: typer.Context, conflict: IdArg, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Show one conflict with both facts side by side."""

    async def work(conn: AsyncConnection[Any]) -> ConflictShow:
        fid = await festival_id(conn, festival)
        return await ops.show_conflict(conn, fid, await ops.find_conflict(conn, fid, conflict))

    shown(as_json, run(ctx, work), _print_show)


@app.command("resolve")
def resolve(
    ctx: typer.Context,
    conflict: IdArg,
    festival: FestivalOpt,
    note: Annotated[str, typer.Option(help="how it was settled (kept with the conflict)")],
    as_json: JsonOpt = False,
) -> None:
    """Resolve a conflict with a note."""
    if not 0 < len(note.strip()) <= MAX_NOTE:
        fail(
            f"a resolution needs a note of 1 to {MAX_NOTE} characters", "bad_note", as_json=as_json
        )

    async def work(conn: AsyncConnection[Any]) -> ConflictItem:
        fid = await festival_id(conn, festival)
        found = await ops.find_conflict(conn, fid, conflict)
        return await ops.resolve_conflict(conn, fid, found, actor=actor(), note=note)

    done = run(ctx, work)
    human = f"conflict {done.id} ({done.kind}) resolved: {escape(done.resolution_note or '')}"
    emit(as_json, done.model_dump(mode="json"), human)
