"""What the ops commands (`ticket`, `wristband`, `conflict`) share: acting on one row a
festival's people name, and printing times, money and audit trails for people."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from psycopg import AsyncConnection
from pydantic import BaseModel
from rich.markup import escape

from central.cli_common import console, festival_id, run, table
from central.ops import ConflictItem
from central.readable import AuditEntry, money, short

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
ReasonOpt = Annotated[str, typer.Option(help="why, for the block list (200 characters)")]
Finder = Callable[[AsyncConnection[Any], uuid.UUID, str], Awaitable[uuid.UUID]]
Act = Callable[[AsyncConnection[Any], uuid.UUID, uuid.UUID], Awaitable[T]]


def act_on(ctx: typer.Context, festival: str, find: Finder, ref: str, act: Act[T]) -> T:
    """Find the festival and the row `ref` names there (`central.refs`), then `act` on it,
    in one transaction."""

    async def work(conn: AsyncConnection[Any]) -> T:
        fid = await festival_id(conn, festival)
        return await act(conn, fid, await find(conn, fid, ref))

    return run(ctx, work)


def shown(as_json: bool, found: M, show: Callable[[M], None]) -> None:
    """Print what a show command found: one JSON object, or `show` for people."""
    if as_json:
        typer.echo(found.model_dump_json())
    else:
        show(found)


def when(at: datetime | None) -> str | None:
    """A time as people read it; it already carries the festival's time zone."""
    return None if at is None else at.strftime("%Y-%m-%d %H:%M:%S")


def cents(amount: int | None, currency: str) -> str | None:
    """Cents in the festival's currency (None stays None)."""
    return None if amount is None else money(amount, currency)


def fields(rows: Iterable[tuple[str, object]]) -> None:
    """Print name/value lines (None as "-")."""
    for name, value in rows:
        console.print(f"{name:12} {escape('-' if value is None else str(value))}", soft_wrap=True)


NOWRAP = ("at", "id", "kind", "found", "resolved")  # columns people copy or scan down


def section(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A titled table, or a line saying there is none."""
    if rows:
        table(columns, rows, title=title, nowrap=NOWRAP)
    else:
        console.print(f"{title}: none")


def history_sections(conflicts: Sequence[ConflictItem], audit: Sequence[AuditEntry]) -> None:
    """The end of a ticket's or a wristband's show: its conflicts, then who changed it,
    when, and what."""
    section(
        "conflicts",
        ("id", "kind", "what", "resolved"),
        [(c.id, c.kind, c.summary, when(c.resolved_at)) for c in conflicts],
    )
    section("audit", ("at", "who", "action"), [(when(a.at), a.actor, a.action) for a in audit])


def who_line(kind: str, rid: object, what: str) -> str:
    """The first line of a show: what the row is, with the start of its id."""
    return f"[bold]{kind} {short(rid)}[/bold] {escape(what)}"
