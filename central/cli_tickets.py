"""`festgate-central ticket …`: show a ticket with its history, cancel, block, unblock,
transfer or resell, refund. The ticket is named as ops have it in hand: its id, the signed
code read off it (an older version too), an outside code or its holder reference.
Each command calls `central.ticket_ops`, as the ops API does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated

import typer
from rich.markup import escape

from central import refs, ticket_ops
from central.cli_common import FestivalOpt, JsonOpt, actor, console, emit, wants_json
from central.cli_ops import (
    Act,
    ReasonOpt,
    act_on,
    cents,
    fields,
    history_sections,
    section,
    shown,
    when,
    who_line,
)
from central.readable import short
from central.ticket_ops import TicketDone, TicketShow

app = typer.Typer(
    help="tickets, by id, scanned code, outside code or holder reference", no_args_is_help=True
)
TicketArg = Annotated[
    str,
    typer.Argument(help="ticket id, signed code as scanned, outside code or holder reference"),
]


def _on_ticket(ctx: typer.Context, festival: str, ticket: str, act: Act[TicketDone]) -> None:
    """Act on the ticket and print what it is now (and a transfer's new code)."""
    done = act_on(ctx, festival, refs.ticket, ticket, act)
    blocked = ", blocked" if done.blocked else ""
    human = (
        f"ticket {short(done.id)} ({escape(done.category)}): {done.status}{blocked}; "
        f"devices know once they have change {done.seq}"
    )
    if done.code is not None:
        human += "\nnew code, shown once (the old one is revoked):"
    emit(wants_json(ctx), done.model_dump(mode="json"), human)
    if done.code is not None and not wants_json(ctx):
        typer.echo(done.code)  # on a line of its own, never wrapped: people copy it


def _print_show(found: TicketShow) -> None:
    t = found.ticket
    console.print(who_line("ticket", t.id, f"{t.category} ({t.ticket_type}), {t.status}"))
    fields(
        [
            ("id", t.id),
            ("code", f"{t.code_kind}, version {t.code_version}"),
            ("holder", t.holder_ref),
            ("price", cents(t.purchase_price, t.currency)),
            ("blocked", f"yes: {t.block_reason or 'no reason given'}" if t.blocked else "no"),
            ("suspicious", "yes: an open duplicate entry" if t.suspicious else "no"),
            ("used at", when(t.used_at)),
            ("times in", found.timezone),
        ]
    )
    section(
        "scans",
        ("at", "device", "zone", "kind", "verdict", "seen seq"),
        [(when(s.at), s.device, s.zone, s.kind, s.verdict, s.catalog_seq) for s in found.events],
    )
    section(
        "access log",
        ("at", "action", "zone", "device"),
        [(when(m.at), m.action, m.zone, m.device) for m in found.access_log],
    )
    history_sections(found.conflicts, found.audit)


@app.command("show")
def show(
    ctx: typer.Context, ticket: TicketArg, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Show a ticket: state, scans, access log, conflicts and audit trail."""
    found = act_on(ctx, festival, refs.ticket, ticket, ticket_ops.show)
    shown(as_json, found, _print_show)


@app.command("block")
def block(
    ctx: typer.Context,
    ticket: TicketArg,
    festival: FestivalOpt,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Put a ticket on the block list every device refuses."""
    _on_ticket(ctx, festival, ticket, partial(ticket_ops.block, reason=reason, actor=actor()))


@app.command("transfer")
def transfer(
    ctx: typer.Context,
    ticket: TicketArg,
    festival: FestivalOpt,
    holder: Annotated[str | None, typer.Option(help="the new holder's order or reference")] = None,
    code: Annotated[
        str | None, typer.Option(help="an outside ticket's new code (default: a random one)")
    ] = None,
    accept_weak_code: Annotated[
        bool, typer.Option(help="take a new outside code too weak to survive offline guessing")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Transfer or resell a sold ticket: prints its new code once; the old one is revoked."""
    act = partial(
        ticket_ops.transfer, actor=actor(), holder_ref=holder, new_code=code,
        accept_weak_code=accept_weak_code,
    )  # fmt: skip
    _on_ticket(ctx, festival, ticket, act)


def _plain(act: Callable[..., Awaitable[TicketDone]], doc: str) -> Callable[..., None]:
    """The command of an action on a ticket that takes nothing but the ticket."""

    def command(
        ctx: typer.Context, ticket: TicketArg, festival: FestivalOpt, as_json: JsonOpt = False
    ) -> None:
        _on_ticket(ctx, festival, ticket, partial(act, actor=actor()))

    command.__doc__ = doc
    return command


for _name, _act, _doc in (
    ("cancel", ticket_ops.cancel, "Cancel a ticket: gates refuse it once they have the change."),
    ("unblock", ticket_ops.unblock, "Take a ticket off the block list."),
    ("refund", ticket_ops.refund, "Mark a cancelled ticket refunded."),
):
    app.command(_name)(_plain(_act, _doc))
