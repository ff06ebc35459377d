"""`festgate-central festival`: create, list, show, delete festivals; add ticket categories."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import typer
from psycopg import AsyncConnection

from central import catalog, festivals, keys
from central.cli_common import (
    FestivalOpt,
    JsonOpt,
    actor,
    console,
    emit,
    err_console,
    fail,
    festival_id,
    run,
)
from central.cli_ops import fields, shown, when
from central.cli_show import listing, to_json
from central.readable import money
from sync.vocab import TicketType

app = typer.Typer(help="festivals", no_args_is_help=True)
FestivalArg = Annotated[str, typer.Argument(help="festival slug or id")]
WEAK_WARNING = (
    "[bold red]{weak} weak outside codes[/]: a stolen device's hash key lets a thief guess"
    " valid ones offline (docs/security.md)"
)


@app.command("create")
def festival_create(
    ctx: typer.Context,
    name: str,
    slug: Annotated[str, typer.Option(help="short unique name: a-z, 0-9 and -")],
    starts_at: Annotated[datetime | None, typer.Option(help="start, ISO 8601")] = None,
    ends_at: Annotated[datetime | None, typer.Option(help="end, ISO 8601")] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone its reports use")] = "Europe/Paris",
    currency: str = "EUR",
    offline_allowance: Annotated[
        int, typer.Option(help="offline spend per wristband, cents")
    ] = 2000,
    as_json: JsonOpt = False,
) -> None:
    """Create a festival (with its hash key and first signing key)."""

    async def work(conn: AsyncConnection[Any]) -> dict[str, Any]:
        row = await catalog.create_festival(
            conn, name=name, slug=slug, starts_at=starts_at, ends_at=ends_at, timezone=timezone,
            currency=currency, offline_allowance=offline_allowance, actor=actor(),
        )  # fmt: skip
        key = await keys.current_key(conn, uuid.UUID(row.id))
        return {"id": row.id, "slug": slug, "name": name, "key_id": key.key_id}

    out = run(ctx, work)
    emit(as_json, out, f"festival [bold]{slug}[/bold] created: {out['id']}")


@app.command("category")
def festival_category(
    ctx: typer.Context,
    name: str,
    festival: FestivalOpt,
    type_: Annotated[
        TicketType, typer.Option("--type", help="STANDARD, VIP, BACKSTAGE, CAMPING, PARKING, COMBO")
    ] = TicketType.STANDARD,
    price: Annotated[int, typer.Option(help="price in cents")] = 0,
    valid_from: Annotated[datetime | None, typer.Option(help="valid from, ISO 8601")] = None,
    valid_until: Annotated[datetime | None, typer.Option(help="valid until, ISO 8601")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a ticket category: its type decides the zones its tickets open."""

    async def work(conn: AsyncConnection[Any]) -> dict[str, Any]:
        row = await catalog.create_category(
            conn, await festival_id(conn, festival), name=name, type=type_, price=price,
            valid_from=valid_from, valid_until=valid_until, actor=actor(),
        )  # fmt: skip
        return {"id": row.id, "name": row.name, "type": row.type.value}

    out = run(ctx, work)
    emit(as_json, out, f"category [bold]{name}[/bold] ({out['type']}) created: {out['id']}")


@app.command("list")
def festival_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List festivals, with how many outside codes are too weak for offline guessing."""
    found = run(ctx, festivals.list_festivals)
    listing(
        as_json, "festivals", found,
        ("slug", "name", "status", "tickets", "outside codes", "weak", "lowest bits"),
        lambda f: (f.slug, f.name, f.status, f.tickets, f.outside_codes.codes,
                   f.outside_codes.weak, f.outside_codes.lowest_bits),
    )  # fmt: skip
    weak = sum(f.outside_codes.weak for f in found)
    if weak and not as_json:
        err_console.print(WEAK_WARNING.format(weak=weak), soft_wrap=True)


@app.command("show")
def festival_show(ctx: typer.Context, festival: FestivalArg, as_json: JsonOpt = False) -> None:
    """Show one festival: settings, counts, signing keys and its outside codes' strength."""

    async def work(conn: AsyncConnection[Any]) -> festivals.FestivalDetail:
        return await festivals.show_festival(conn, festival)

    shown(as_json, run(ctx, work), _show)


def _show(f: festivals.FestivalDetail) -> None:
    codes = f.outside_codes
    signing = ", ".join(
        f"{k.key_id}{' (revoked)' if k.revoked else ''}{' (signs)' if k.signing else ''}"
        for k in f.signing_keys
    )
    fields(
        [
            ("slug", f.slug), ("name", f.name), ("id", f.id), ("status", f.status),
            ("starts", when(f.starts_at)), ("ends", when(f.ends_at)), ("time zone", f.timezone),
            ("currency", f.currency), ("offline allowance", money(f.offline_allowance, f.currency)),
            ("zones", f.zones), ("vendors", f.vendors), ("devices", f.devices),
            ("tickets", f.tickets), ("signing keys", signing),
            ("outside codes", f"{codes.codes} ({codes.unrated} unrated)"),
        ]
    )  # fmt: skip
    if codes.lowest_bits is not None:
        fields([("weakest code", f"{codes.lowest_bits} bits (rounded down), "
                 f"{codes.effective_bits} left among {codes.codes}; each needs "
                 f"{codes.needed_bits}")])  # fmt: skip
    if codes.weak:
        console.print(WEAK_WARNING.format(weak=codes.weak), soft_wrap=True)


@app.command("delete")
def festival_delete(
    ctx: typer.Context,
    festival: FestivalArg,
    revoke_devices: Annotated[
        bool, typer.Option(help="revoke its devices too (unsent events on them are lost)")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Soft-delete a festival: gone from lookups, its rows kept; its unused enrol codes are
    revoked; refused while it has devices unless --revoke-devices."""
    if not yes and not typer.confirm(f"delete festival {festival}?"):
        fail("not deleted", "cancelled", as_json=as_json)

    async def work(conn: AsyncConnection[Any]) -> festivals.FestivalDeleted:
        return await festivals.delete_festival(
            conn, festival, actor=actor(), revoke_devices=revoke_devices
        )

    gone = run(ctx, work)
    emit(
        as_json, to_json(gone),
        f"festival [bold]{gone.slug}[/bold] deleted; {gone.devices_revoked} devices and "
        f"{gone.enrol_codes_revoked} enrol codes revoked",
    )  # fmt: skip
