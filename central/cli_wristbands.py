"""`festgate-central wristband …`: show a wristband with its ledger, block, unblock, top up,
refund. The wristband is named by its tag UID (hex, as a reader or a phone shows it) or its
account's id; amounts are in cents. Each command calls `central.wristband_ops`, as the ops
API does."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import typer

from central import refs, wristband_ops
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
from central.readable import money, short
from central.wristband_ops import WristbandDone, WristbandShow
from sync.vocab import MAX_AMOUNT

app = typer.Typer(help="wristbands, by tag UID or account id", no_args_is_help=True)
TagArg = Annotated[str, typer.Argument(help="tag UID (hex, colons allowed) or account id")]
Amount = Annotated[int, typer.Argument(help="amount in cents", min=1, max=MAX_AMOUNT)]


def _state(blocked: bool, held: bool, listed: bool) -> str:
    if not blocked:
        return "usable"
    why = [w for w, on in (("on the block list", listed), ("held for debt", held)) if on]
    return f"blocked ({', '.join(why) or 'by hand'})"


def _on_wristband(ctx: typer.Context, festival: str, tag: str, act: Act[WristbandDone]) -> None:
    """Act on the wristband and print what it is now."""
    done = act_on(ctx, festival, refs.wristband, tag, act)
    human = (
        f"wristband {short(done.id)}: balance {money(done.balance, done.currency)}, "
        f"{_state(done.blocked, done.held, done.listed)}; devices know once they have change "
        f"{done.seq}"
    )
    emit(wants_json(ctx), done.model_dump(mode="json"), human)


def _print_show(found: WristbandShow) -> None:
    a = found.account
    console.print(who_line("wristband", a.id, money(a.balance, a.currency)))
    fields(
        [
            ("id", a.id),
            ("balance", money(a.balance, a.currency)),
            ("debt", money(a.debt, a.currency)),
            ("state", _state(a.blocked, a.held, a.listed)),
            ("reason", a.block_reason if a.listed else None),
            ("times in", found.timezone),
        ]
    )
    section(
        "ledger",
        ("at", "type", "amount", "before", "after", "device", "vendor"),
        [
            (
                when(e.at), e.type, cents(e.amount, a.currency),
                cents(e.balance_before, a.currency), cents(e.balance_after, a.currency),
                e.device, e.vendor,
            )
            for e in found.ledger
        ],
    )  # fmt: skip
    history_sections(found.conflicts, found.audit)


@app.command("show")
def show(ctx: typer.Context, tag: TagArg, festival: FestivalOpt, as_json: JsonOpt = False) -> None:
    """Show a wristband: balance, state, ledger (before and after each entry), conflicts."""
    found = act_on(ctx, festival, refs.wristband, tag, wristband_ops.show)
    shown(as_json, found, _print_show)


@app.command("block")
def block(
    ctx: typer.Context,
    tag: TagArg,
    festival: FestivalOpt,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Put a wristband on the block list (lost, stolen): every device refuses it."""
    _on_wristband(ctx, festival, tag, partial(wristband_ops.block, reason=reason, actor=actor()))


@app.command("unblock")
def unblock(
    ctx: typer.Context, tag: TagArg, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Unblock a wristband (a debt hold stays until a top-up clears the debt)."""
    _on_wristband(ctx, festival, tag, partial(wristband_ops.unblock, actor=actor()))


@app.command("topup")
def topup(
    ctx: typer.Context, tag: TagArg, amount: Amount, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Top up a wristband at the ops desk."""
    _on_wristband(ctx, festival, tag, partial(wristband_ops.topup, amount=amount, actor=actor()))


@app.command("refund")
def refund(
    ctx: typer.Context, tag: TagArg, amount: Amount, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Pay money back from a wristband at the ops desk (never more than its balance)."""
    _on_wristband(ctx, festival, tag, partial(wristband_ops.refund, amount=amount, actor=actor()))
