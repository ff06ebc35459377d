"""`festgate-central`: migrate, create festivals, import catalog files, keys, users, serve.

Thin commands: parse, call one function, print (tables for people, ``--json`` for scripts).
Where the database is, and what every command shares: `central.cli_common`.
"""

from __future__ import annotations

import csv
import importlib
import json
import uuid
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import typer
from psycopg import AsyncConnection
from pydantic import SecretStr
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from central import catalog, festivals, imports, keys, pg, refs, users
from central.cli_common import (
    FestivalOpt,
    JsonOpt,
    actor,
    console,
    database,
    emit,
    err_console,
    fail,
    festival_id,
    resolve,
    run,
    settings,
    table,
    wants_json,
)
from central.errors import ImportRowError
from sync.vocab import TicketType

app = typer.Typer(help="festgate central service", no_args_is_help=True)
festival_app = typer.Typer(help="festivals", no_args_is_help=True)
import_app = typer.Typer(
    help="import catalog files (one transaction per file)", no_args_is_help=True
)
key_app = typer.Typer(help="ticket signing keys", no_args_is_help=True)
user_app = typer.Typer(help="ops users", no_args_is_help=True)
app.add_typer(festival_app, name="festival")
app.add_typer(import_app, name="import")
app.add_typer(key_app, name="key")
app.add_typer(user_app, name="user")


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


def _c2(module: str, name: str) -> Any:
    # Functions owned by the sync side, imported when used so this CLI runs without them.
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        fail(f"{module}.{name} is not available in this build")


@app.command()
def migrate(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Create or upgrade central's schema to the newest revision."""
    with pg.open_database(database(ctx)) as dsn:
        pg.migrate(dsn)
        revision = pg.current_revision(dsn)
    emit(as_json, {"revision": revision}, f"schema at revision [bold]{revision}[/bold]")


@festival_app.command("create")
def festival_create(
    ctx: typer.Context,
    name: str,
    slug: Annotated[str, typer.Option(help="short unique name: a-z, 0-9 and -")],
    starts_at: Annotated[datetime | None, typer.Option(help="start, ISO 8601")] = None,
    ends_at: Annotated[datetime | None, typer.Option(help="end, ISO 8601")] = None,
    currency: str = "EUR",
    offline_allowance: Annotated[
        int, typer.Option(help="offline spend per wristband, cents")
    ] = 2000,
    as_json: JsonOpt = False,
) -> None:
    """Create a festival (with its hash key and first signing key)."""

    async def work(conn: AsyncConnection[Any]) -> dict[str, Any]:
        row = await catalog.create_festival(
            conn,
            name=name,
            slug=slug,
            starts_at=starts_at,
            ends_at=ends_at,
            currency=currency,
            offline_allowance=offline_allowance,
            actor=actor(),
        )
        key = await keys.current_key(conn, uuid.UUID(row.id))
        return {"id": row.id, "slug": slug, "name": name, "key_id": key.key_id}

    out = run(ctx, work)
    emit(as_json, out, f"festival [bold]{slug}[/bold] created: {out['id']}")


@festival_app.command("category")
def festival_category(
    ctx: typer.Context,
    name: str,
    festival: Annotated[str, typer.Option("--festival", "-f", help="festival id or slug")],
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


@festival_app.command("list")
def festival_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List festivals, with how many outside codes are too weak for offline guessing."""
    found = run(ctx, festivals.list_festivals)
    if as_json:
        typer.echo(json.dumps({"festivals": found}, default=str))
        return
    table(
        ("slug", "name", "status", "tickets", "outside codes", "weak", "lowest bits"),
        (
            (
                f["slug"],
                f["name"],
                f["status"],
                f["tickets"],
                c["codes"],
                c["weak"],
                c["lowest_bits"],
            )
            for f in found
            for c in [f["outside_codes"]]
        ),
    )
    weak = sum(f["outside_codes"]["weak"] for f in found)
    if weak:
        err_console.print(
            f"[bold red]{weak} weak outside codes[/]: a stolen device's hash key lets a thief"
            " guess valid ones offline (docs/security.md)",
            soft_wrap=True,
        )


@festival_app.command("show")
def festival_show(
    ctx: typer.Context,
    festival: Annotated[str, typer.Argument(help="festival id or slug")],
    as_json: JsonOpt = False,
) -> None:
    """Show one festival: settings, signing keys, tickets and its outside codes' strength."""

    async def work(conn: AsyncConnection[Any]) -> dict[str, Any]:
        return await festivals.show_festival(conn, festival)

    found = run(ctx, work)
    if as_json:
        typer.echo(json.dumps(found, default=str))
        return
    codes = found.pop("outside_codes")
    found["signing_keys"] = ", ".join(
        f"{k['key_id']}{' (revoked)' if k['revoked'] else ''}" for k in found["signing_keys"]
    )
    for key, value in found.items():
        console.print(f"{key:18} {escape(str(value))}", soft_wrap=True)
    console.print(f"{'outside codes':18} {codes['codes']} ({codes['unrated']} unrated)")
    if codes["lowest_bits"] is not None:
        console.print(
            f"{'weakest code':18} {codes['lowest_bits']} bits (rounded down), "
            f"{codes['effective_bits']} left among {codes['codes']}; each needs "
            f"{codes['needed_bits']}"
        )
    if codes["weak"]:
        console.print(
            f"[bold red]{codes['weak']} weak outside codes[/]: a stolen device's hash key lets "
            f"a thief guess valid ones offline (docs/security.md)",
            soft_wrap=True,
        )


def _import(ctx: typer.Context, festival: str, path: Path, kind: str, **kw: Any) -> Any:
    try:
        rows = imports.read_rows(path)
    except ImportRowError as exc:
        fail(f"{path}: {exc}", "bad_import", as_json=wants_json(ctx))
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}", "bad_import", as_json=wants_json(ctx))
    func = getattr(imports, f"import_{kind}")
    bulk = kind in ("tickets", "wristbands")  # the imports that run to 100,000 rows
    shown = bulk and err_console.is_terminal and not wants_json(ctx)  # people, not logs
    columns = (TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err_console, disable=not shown) as bar:
        stages: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in stages:
                stages[stage] = bar.add_task(stage, total=total)
            bar.update(stages[stage], completed=done)

        extra = {"progress": report} if bulk else {}

        async def work(conn: AsyncConnection[Any]) -> Any:
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
    done: imports.TicketImport = _import(
        ctx, festival, file, "tickets", sign=sign, source=file.name,
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
    accounts = _import(ctx, festival, file, "wristbands", source=file.name)
    emit(as_json, {"imported": len(accounts)}, f"imported {len(accounts)} wristbands")


@import_app.command("vendors")
def import_vendors(
    ctx: typer.Context, file: Path, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Import vendors and their products (one product per row)."""
    counts = _import(ctx, festival, file, "vendors")
    emit(as_json, counts, f"imported {counts['vendors']} vendors, {counts['products']} products")


@import_app.command("zones")
def import_zones(
    ctx: typer.Context, file: Path, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Import access zones (name, capacity, required_types, reentry)."""
    zones = _import(ctx, festival, file, "zones")
    emit(as_json, {"imported": len(zones)}, f"imported {len(zones)} zones")


@key_app.command("rotate")
def key_rotate(ctx: typer.Context, festival: FestivalOpt, as_json: JsonOpt = False) -> None:
    """Add a new signing key; older keys still verify until revoked."""

    async def work(conn: AsyncConnection[Any]) -> dict[str, Any]:
        row = await keys.rotate_key(conn, await festival_id(conn, festival), actor=actor())
        return {"key_id": row.key_id, "public_key": row.public_key, "seq": row.seq}

    out = run(ctx, work)
    emit(as_json, out, f"signing key {out['key_id']} now signs new codes")


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    name: str,
    role: Annotated[str, typer.Option(help="ADMIN, ORGANIZER, STAFF, CASHIER or SECURITY")],
    festival: Annotated[str | None, typer.Option(help="festival id or slug (default: all)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add an ops user and print its token once (only its sha256 is stored)."""
    role = role.upper()
    if role not in {"ADMIN", "ORGANIZER", "STAFF", "CASHIER", "SECURITY"}:
        fail(f"unknown role {role!r}", "bad_role", as_json=as_json)

    async def work(conn: AsyncConnection[Any]) -> users.NewOpsUser:
        fid = await festival_id(conn, festival) if festival else None
        return await users.add_ops_user(conn, name=name, role=role, festival_id=fid, actor=actor())  # type: ignore[arg-type]

    user = run(ctx, work)
    data = {"id": str(user.user_id), "name": name, "role": role, "token": user.token}
    emit(as_json, data, f"user {name} ({role}) token, shown once:\n{user.token}")


@app.command("enroll-code")
def enroll_code(
    ctx: typer.Context,
    festival: FestivalOpt,
    role: Annotated[str, typer.Option(help="gate, bar or topup")],
    zone: Annotated[str | None, typer.Option(help="zone id or name (gates)")] = None,
    vendor: Annotated[str | None, typer.Option(help="vendor id or name (bars)")] = None,
    ttl: Annotated[int, typer.Option(help="seconds the code stays valid")] = 900,
    as_json: JsonOpt = False,
) -> None:
    """Make a one-time enrolment code for a device."""
    create = _c2("central.enrol", "create_enrol_code")

    async def work(conn: AsyncConnection[Any]) -> str:
        fid = await festival_id(conn, festival)
        code: str = await create(
            conn,
            festival_id=fid,
            role=role,
            zone_id=await refs.zone(conn, fid, zone) if zone else None,
            vendor_id=await refs.vendor(conn, fid, vendor) if vendor else None,
            ttl_s=ttl,
        )
        return code

    code = run(ctx, work)
    emit(as_json, {"code": code, "ttl_s": ttl}, f"enrolment code (valid {ttl} s): {code}")


@app.command()
def conflicts(
    ctx: typer.Context,
    festival: FestivalOpt,
    all_: Annotated[bool, typer.Option("--all", help="include resolved conflicts")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List sync conflicts (open ones unless --all)."""
    list_conflicts = _c2("central.ops", "list_conflicts")

    async def work(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await list_conflicts(
            conn, await festival_id(conn, festival), open_only=not all_
        )
        return found

    found = run(ctx, work)
    if as_json:
        typer.echo(json.dumps({"conflicts": found}, default=str))
        return
    table(("kind", "detail"), ((c.get("kind", ""), json.dumps(c, default=str)) for c in found))


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
) -> None:
    """Migrate, then run the HTTP API (uvicorn) until interrupted."""
    create_app = _c2("central.app", "create_app")
    import uvicorn

    from central.http_server import server_config

    with pg.open_database(database(ctx)) as dsn:
        pg.migrate(dsn)
        update = {"dsn": SecretStr(dsn), "host": host, "port": port}
        config = settings(ctx).model_copy(update=update)
        server = uvicorn.Server(server_config(create_app(config, settle_gc=True), config))
        server.run()
    if not server.started:
        fail(f"central did not start on {host}:{port}")


@app.command()
def demo(
    ctx: typer.Context,
    gates: Annotated[int, typer.Option(help="gate devices (at least 3)")] = 4,
    bars: Annotated[int, typer.Option(help="bar devices (at least 2)")] = 2,
    attendees: Annotated[int, typer.Option(help="tickets and wristbands in the crowd")] = 120,
    minutes: Annotated[float, typer.Option(help="how long the crowd plays")] = 1.5,
    seed: Annotated[int, typer.Option(help="same seed, same festival and story")] = 2024,
    dsn: Annotated[
        str | None, typer.Option(help="PostgreSQL server to make a fresh database on")
    ] = None,
    simulated: Annotated[
        bool, typer.Option(help="feed gates and bars from files instead of camera and NFC")
    ] = False,
    work_dir: Annotated[
        Path | None, typer.Option(help="keep devices and database here (default: temporary)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """A festival in a box: central, gates, bars, a crowd, a network cut, and the report."""
    from central.demo_run import DemoOptions, print_report, run_demo

    config = settings(ctx)
    given = dsn or (config.dsn.get_secret_value() if config.dsn is not None else None)
    opts = DemoOptions(
        gates=gates, bars=bars, attendees=attendees, minutes=minutes, seed=seed,
        dsn=given or None, real_hardware=not simulated, work_dir=work_dir,
    )  # fmt: skip
    try:
        report = run_demo(opts, err_console if as_json else console, live_view=True)
    except ValueError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted: daemons, links, central and database stopped")
        raise typer.Exit(130) from None
    print_report(report, err_console if as_json else console)
    if as_json:
        typer.echo(json.dumps(report, default=str))
    if not report["ok"]:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="festgate-central")


if __name__ == "__main__":
    main()
