"""`festgate-demo`: a festival in a box, from an empty database to the report.

Its own command because it runs everything (central, gates, bars, their simulated hardware):
central's CLI, like central itself, imports nothing of the devices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from festdemo.run import DemoOptions, print_report, run_demo

app = typer.Typer(add_completion=False)


@app.command()
def demo(
    gates: Annotated[int, typer.Option(help="gate devices (at least 3)")] = 4,
    bars: Annotated[int, typer.Option(help="bar devices (at least 2)")] = 2,
    attendees: Annotated[int, typer.Option(help="tickets and wristbands in the crowd")] = 120,
    minutes: Annotated[float, typer.Option(help="how long the crowd plays")] = 1.5,
    seed: Annotated[int, typer.Option(help="same seed, same festival and story")] = 2024,
    dsn: Annotated[
        str | None,
        typer.Option(help="PostgreSQL server to make a fresh database on (else an embedded one)"),
    ] = None,
    simulated: Annotated[
        bool, typer.Option(help="feed gates and bars from files instead of camera and NFC")
    ] = False,
    work_dir: Annotated[
        Path | None, typer.Option(help="keep devices and database here (default: temporary)")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the report as one JSON object last")
    ] = False,
) -> None:
    """A festival in a box: central, gates, bars, a crowd, a network cut, and the report."""
    console, errors = Console(stderr=as_json), Console(stderr=True)
    opts = DemoOptions(
        gates=gates, bars=bars, attendees=attendees, minutes=minutes, seed=seed,
        dsn=dsn or None, real_hardware=not simulated, work_dir=work_dir,
    )  # fmt: skip
    try:
        report = run_demo(opts, console, live_view=True)
    except ValueError as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        errors.print("[yellow]interrupted: daemons, links, central and database stopped")
        raise typer.Exit(130) from None
    print_report(report, console)
    if as_json:
        typer.echo(json.dumps(report, default=str))
    if not report["ok"]:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="festgate-demo")


if __name__ == "__main__":
    main()
