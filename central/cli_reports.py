"""`festgate-central report`: entries over time, sales, occupancy; by name, in local time."""

from __future__ import annotations

from typing import Annotated

import typer

from central import reports
from central.cli_common import FestivalOpt, JsonOpt, run
from central.cli_ops import when
from central.cli_show import listing, on_festival
from central.readable import money

app = typer.Typer(help="reports: entries, sales, occupancy", no_args_is_help=True)


@app.command("entries")
def report_entries(
    ctx: typer.Context,
    festival: FestivalOpt,
    bucket: Annotated[
        int,
        typer.Option(help="bucket length in minutes (of the festival's clock)", min=1, max=1440),
    ] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Entries and exits per zone and gate, per time bucket, in the festival's time zone."""
    found = run(ctx, on_festival(festival, reports.entries_over_time, bucket_s=bucket * 60))
    listing(
        as_json, "entries", found, ("from", "zone", "gate", "entries", "exits"),
        lambda e: (when(e.bucket), e.zone, e.gate, e.entries, e.exits),
        empty="no entries yet",
    )  # fmt: skip


@app.command("sales")
def report_sales(ctx: typer.Context, festival: FestivalOpt, as_json: JsonOpt = False) -> None:
    """Sales per vendor: how many, how much."""
    found = run(ctx, on_festival(festival, reports.sales_per_vendor))
    listing(
        as_json, "sales", found, ("vendor", "sales", "amount"),
        lambda s: (s.vendor, s.sales, money(s.amount, s.currency)), empty="no vendors",
    )  # fmt: skip


@app.command("occupancy")
def report_occupancy(ctx: typer.Context, festival: FestivalOpt, as_json: JsonOpt = False) -> None:
    """Tickets inside each zone, against its capacity."""
    found = run(ctx, on_festival(festival, reports.zone_occupancy))
    listing(
        as_json, "zones", found, ("zone", "inside", "capacity"),
        lambda z: (z.zone, z.occupancy, "unlimited" if z.capacity is None else z.capacity),
        empty="no zones",
    )  # fmt: skip
