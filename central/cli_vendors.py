"""`festgate-central vendor`: list a festival's vendors, open or close one by name."""

from __future__ import annotations

from typing import Annotated

import typer

from central import vendors
from central.cli_common import FestivalOpt, JsonOpt, actor, emit, run
from central.cli_show import listing, on_festival, to_json

app = typer.Typer(help="vendors: open, close", no_args_is_help=True)
VendorArg = Annotated[str, typer.Argument(help="vendor name or id")]


@app.command("list")
def vendor_list(ctx: typer.Context, festival: FestivalOpt, as_json: JsonOpt = False) -> None:
    """List vendors: open or closed, products, bar devices."""
    found = run(ctx, on_festival(festival, vendors.list_vendors))
    listing(
        as_json, "vendors", found, ("vendor", "type", "open", "products", "bars"),
        lambda v: (v.name, v.type, "open" if v.is_open else "closed", v.products, v.devices),
    )  # fmt: skip


def _set(ctx: typer.Context, festival: str, vendor: str, is_open: bool, as_json: bool) -> None:
    view = run(ctx, on_festival(festival, vendors.set_open, vendor, is_open, actor=actor()))
    state = "open" if view.is_open else "closed: its bars answer vendor_closed"
    emit(as_json, to_json(view), f"vendor [bold]{view.name}[/bold] is {state}")


@app.command("open")
def vendor_open(
    ctx: typer.Context, vendor: VendorArg, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Open a vendor: its bars sell again from their next sync."""
    _set(ctx, festival, vendor, True, as_json)


@app.command("close")
def vendor_close(
    ctx: typer.Context, vendor: VendorArg, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Close a vendor: its bars refuse sales (vendor_closed) from their next sync."""
    _set(ctx, festival, vendor, False, as_json)
