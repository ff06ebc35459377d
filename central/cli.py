"""`festgate-central`: migrate, import catalog files, serve; and the ops commands of
the `cli_*` modules (festival, vendor, key, user, device, enrol-code, report, ticket,
wristband, conflict).

Thin commands: parse, call one function, print (tables for people, ``--json`` for scripts).
Where the database is, and what every command shares: `central.cli_common`.
"""

from __future__ import annotations

import csv
import os
import signal
import tempfile
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from psycopg import AsyncConnection
from pydantic import SecretStr, ValidationError
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from central import (
    cli_conflicts,
    cli_devices,
    cli_festivals,
    cli_keys,
    cli_reports,
    cli_tickets,
    cli_users,
    cli_vendors,
    cli_wristbands,
    imports,
    pg,
)
from central.cli_common import (
    FestivalOpt,
    JsonOpt,
    actor,
    emit,
    err_console,
    fail,
    festival_id,
    resolve,
    run,
    settings,
    wants_json,
)
from central.errors import ImportRowError
from config.central import CentralConfig
from config.errors import describe

T = TypeVar("T")
app = typer.Typer(help="festgate central service", no_args_is_help=True)
import_app = typer.Typer(
    help="import catalog files (one transaction per file)", no_args_is_help=True
)
app.add_typer(cli_festivals.app, name="festival")
app.add_typer(import_app, name="import")
app.add_typer(cli_vendors.app, name="vendor")
app.add_typer(cli_keys.app, name="key")
app.add_typer(cli_keys.kek_app, name="kek")
app.add_typer(cli_users.app, name="user")
app.add_typer(cli_devices.app, name="device")
app.add_typer(cli_devices.enrol_app, name="enrol-code")
app.add_typer(cli_reports.app, name="report")
app.add_typer(cli_tickets.app, name="ticket")
app.add_typer(cli_wristbands.app, name="wristband")
app.add_typer(cli_conflicts.app, name="conflict")
# The README's first spellings, kept working: `enroll-code` is `enrol-code create`;
# `conflicts -f X` is `conflict list`.
app.command("enroll-code", hidden=True)(cli_devices.enrol_code_create)
app.command("conflicts", help="List open conflicts (short for `conflict list`).")(
    cli_conflicts.list_conflicts
)


def _version(show: bool) -> None:
    if show:
        typer.echo(f"festgate-central {version('festgate')}")
        raise typer.Exit


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            help="settings file (TOML; else FESTGATE_CENTRAL_CONFIG or /etc/festgate/central.toml)"
        ),
    ] = None,
    dsn: Annotated[
        str | None, typer.Option(help="PostgreSQL DSN (else FESTGATE_CENTRAL_DSN, else embedded)")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="embedded PostgreSQL directory when no DSN is given (else"
            " FESTGATE_CENTRAL_DATA_DIR, else ~/.local/share/festgate/central)"
        ),
    ] = None,
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Resolve where the database is, once for every command."""
    ctx.obj = resolve(ctx, config, dsn, data_dir)


@app.command()
def migrate(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Create or upgrade central's schema to the newest revision."""
    with pg.open_database(settings(ctx)) as dsn:
        pg.migrate(dsn)
        revision = pg.current_revision(dsn)
    emit(as_json, {"revision": revision}, f"schema at revision [bold]{revision}[/bold]")


def _import(
    ctx: typer.Context,
    festival: str,
    path: Path,
    func: Callable[..., Awaitable[T]],
    *,
    bulk: bool = False,  # the imports that run to 100,000 rows: a progress bar for people
    **kw: Any,
) -> T:
    try:
        rows = imports.read_rows(path)
    except ImportRowError as exc:
        fail(f"{path}: {exc}", "bad_import", as_json=wants_json(ctx))
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}", "bad_import", as_json=wants_json(ctx))
    shown = bulk and err_console.is_terminal and not wants_json(ctx)  # people, not logs
    columns = (TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err_console, disable=not shown) as bar:
        stages: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in stages:
                stages[stage] = bar.add_task(stage, total=total)
            bar.update(stages[stage], completed=done)

        extra = {"progress": report} if bulk else {}

        async def work(conn: AsyncConnection[Any]) -> T:
            fid = await festival_id(conn, festival)
            return await func(conn, fid, rows, actor=actor(), **kw, **extra)

        return run(ctx, work)


@import_app.command("tickets")
def import_tickets(
    ctx: typer.Context,
    file: Path,
    festival: FestivalOpt,
    sign: Annotated[bool, typer.Option(help="issue signed codes here (no code column)")] = False,
    out: Annotated[
        Path | None, typer.Option(help="write ticket_id,holder_ref,code CSV here")
    ] = None,
    accept_weak_codes: Annotated[
        bool,
        typer.Option(
            help="import outside codes too weak to survive offline guessing with a stolen "
            "device's hash key (see docs/security.md)"
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Import tickets: opaque codes from an outside system, or --sign to issue QR codes."""
    done = _import(
        ctx, festival, file, imports.import_tickets, bulk=True, sign=sign, source=file.name,
        accept_weak_codes=accept_weak_codes,
    )  # fmt: skip
    issued, strength = done.tickets, done.strength
    if strength is not None and strength.weak:
        err_console.print(f"[yellow]warning:[/yellow] {escape(strength.warning())}", soft_wrap=True)
    if out is not None:
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["ticket_id", "holder_ref", "code"])
            writer.writerows([t.ticket_id, t.holder_ref or "", t.code] for t in issued)
    data: dict[str, Any] = {"imported": len(issued)}
    if strength is not None:
        data["code_bits_min"] = min(strength.bits)
        data["weak_codes"] = strength.weak
    if sign and out is None:
        data["tickets"] = [
            {"ticket_id": str(t.ticket_id), "holder_ref": t.holder_ref, "code": t.code}
            for t in issued
        ]
    emit(as_json, data, f"imported {len(issued)} tickets")
    if sign and out is None and not as_json:
        for t in issued:
            typer.echo(f"{t.ticket_id},{t.holder_ref or ''},{t.code}")


@import_app.command("wristbands")
def import_wristbands(
    ctx: typer.Context, file: Path, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Import wristbands (tag_uid hex, opening balance in cents)."""
    accounts = _import(ctx, festival, file, imports.import_wristbands, bulk=True, source=file.name)
    emit(as_json, {"imported": len(accounts)}, f"imported {len(accounts)} wristbands")


@import_app.command("vendors")
def import_vendors(
    ctx: typer.Context, file: Path, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Import vendors and their products (one product per row)."""
    counts = _import(ctx, festival, file, imports.import_vendors)
    emit(as_json, counts, f"imported {counts['vendors']} vendors, {counts['products']} products")


@import_app.command("zones")
def import_zones(
    ctx: typer.Context, file: Path, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Import access zones (name, capacity, required_types, reentry)."""
    zones = _import(ctx, festival, file, imports.import_zones)
    emit(as_json, {"imported": len(zones)}, f"imported {len(zones)} zones")


def _exit_on_sigterm() -> None:
    # SIGTERM (systemd stopping central) unwinds like Ctrl-C: the embedded PostgreSQL, if in
    # use, is stopped on the way out. uvicorn handles the signal while it serves and then
    # raises it again, which lands here.
    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="address to listen on (else the settings' host)")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="port to listen on (else the settings' port, 8080)")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="server processes on the one port (else the settings')"),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate chain: serve HTTPS (with --tls-key)")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert")] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            help="json or text (else the settings'; default: text on a terminal, else json)"
        ),
    ] = None,
) -> None:
    """Migrate, then run the HTTP API (uvicorn) until interrupted or sent SIGTERM."""
    import logging
    import logging.config

    given = {
        "host": host, "port": port, "workers": workers, "tls_cert": tls_cert,
        "tls_key": tls_key, "log_format": log_format,
    }  # fmt: skip
    try:
        config = CentralConfig.model_validate(
            settings(ctx).model_dump() | {k: v for k, v in given.items() if v is not None}
        )
    except ValidationError as exc:
        fail("; ".join(describe(e) for e in exc.errors()), "bad_config", status=2)
    for path in (config.tls_cert, config.tls_key):
        if path is not None and not path.is_file():
            fail(f"cannot read {path}: no such file", "bad_config", status=2)
    from central.logs import default_format, log_config

    logging.config.dictConfig(log_config(config.log_format or default_format()))
    log = logging.getLogger("festgate.central")
    _exit_on_sigterm()
    with pg.open_database(config) as dsn:
        if config.dsn is None:
            log.warning(
                "using an embedded PostgreSQL for trials at %s; set --dsn for production",
                config.data_dir.expanduser(),
            )
        pg.migrate(dsn)
        the_kek = cli_keys.serving_kek(config, dsn)
        config = config.model_copy(update={"dsn": SecretStr(dsn), "kek": the_kek})
        started = _serve(config)
    if not started:
        fail(f"central did not start on {config.host}:{config.port}")


def _serve(config: CentralConfig) -> bool:
    """Run the server until it stops; whether it started (with workers: always)."""
    import uvicorn

    if config.workers == 1:
        from central.app import create_app
        from central.http_server import server_config

        app_ = create_app(config, settle_gc=True)
        server = uvicorn.Server(server_config(app_, config, own_logs=True))
        server.run()
        return server.started
    from uvicorn.supervisors import Multiprocess

    with tempfile.TemporaryDirectory(prefix="festgate-metrics-") as metrics_dir:
        # Before any worker imports prometheus_client: they count into files here.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        from central.http_server import workers_config

        uconfig = workers_config(config)
        Multiprocess(uconfig, sockets=[uconfig.bind_socket()]).run()
    return True


@app.command()
def ping(
    url: Annotated[str, typer.Option(help="central's base URL")] = "http://127.0.0.1:8080",
    wait: Annotated[
        float, typer.Option(help="keep trying this many seconds (a script starting central)")
    ] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Check that central answers at URL; exit 1 if it does not (within --wait seconds)."""
    from central.ping import ping as reach

    answer = reach(url, wait_s=wait)
    if answer.error is not None:
        fail(f"central does not answer at {url}: {answer.error}", "unreachable", as_json=as_json)
    emit(as_json, {"url": url, "version": answer.version}, f"central answers at {url}")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="festgate-central")


if __name__ == "__main__":
    main()
