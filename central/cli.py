"""`festgate-central`: migrate, create festivals, import catalog files, keys, users, serve.

Thin commands: parse, call one function, print (rich for people, ``--json`` for scripts).
The database is ``--dsn``, else ``FESTGATE_CENTRAL_DSN``, else an embedded PostgreSQL under
``--data-dir``.
"""

from __future__ import annotations

import asyncio
import csv
import importlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from psycopg import AsyncConnection
from pydantic import SecretStr
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from central import catalog, festivals, imports, keys, pg, users
from central.errors import CatalogError, ImportRowError
from config.central import CentralConfig
from sync.vocab import TicketType

T = TypeVar("T")
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
console = Console()
err_console = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object for scripts")]
FestivalOpt = Annotated[str, typer.Option("--festival", "-f", help="festival id or slug")]
ACTOR = "cli"


@app.callback()
def main_options(
    ctx: typer.Context,
    dsn: Annotated[
        str | None, typer.Option(help="PostgreSQL DSN (else FESTGATE_CENTRAL_DSN, else embedded)")
    ] = None,
    data_dir: Annotated[
        Path, typer.Option(help="embedded PostgreSQL directory when no DSN is given")
    ] = Path("var/central"),
) -> None:
    """Resolve where the database is, once for every command."""
    config = CentralConfig(data_dir=data_dir)
    if dsn:
        config = config.model_copy(update={"dsn": SecretStr(dsn)})
    ctx.obj = config


def _config(ctx: typer.Context) -> CentralConfig:
    config = ctx.obj
    assert isinstance(config, CentralConfig)
    return config


def _fail(message: str) -> typer.Exit:
    # One line whatever the terminal's width, and the message taken as text, not markup.
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(1)


def _run(ctx: typer.Context, work: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
    """Open the database, run `work` on one connection, commit; catalog errors exit 1."""

    async def go(dsn: str) -> T:
        async with await AsyncConnection.connect(dsn) as conn:
            result = await work(conn)
            await conn.commit()
            return result

    with pg.open_database(pg.PgSettings.from_config(_config(ctx))) as dsn:
        try:
            return asyncio.run(go(dsn))
        except CatalogError as exc:
            raise _fail(str(exc)) from None


def _emit(as_json: bool, data: dict[str, Any], human: str) -> None:
    if as_json:
        typer.echo(json.dumps(data, default=str))
    else:
        console.print(human)


async def _festival_id(conn: AsyncConnection[Any], ref: str) -> uuid.UUID:
    rec = await catalog.get_festival(conn, ref)
    fid: uuid.UUID = rec["id"]
    return fid


async def _named(conn: AsyncConnection[Any], table: str, fid: uuid.UUID, ref: str) -> uuid.UUID:
    """A zone or vendor of the festival by id or by name (ops type names)."""
    assert table in ("zone", "vendor")
    cur = await conn.execute(
        f"SELECT id FROM {table} WHERE festival_id = %s"
        " AND (id::text = %s OR lower(name) = lower(%s))",
        (fid, ref, ref),
    )
    rows = await cur.fetchall()
    if len(rows) != 1:
        raise CatalogError(f"no single {table} {ref!r} in this festival")
    found: uuid.UUID = rows[0][0]
    return found


def _c2(module: str, name: str) -> Any:
    # Functions owned by the sync side, imported when used so this CLI runs without them.
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise _fail(f"{module}.{name} is not available in this build") from None


@app.command()
def migrate(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Create or upgrade central's schema to the newest revision."""
    with pg.open_database(pg.PgSettings.from_config(_config(ctx))) as dsn:
        pg.migrate(dsn)
        revision = pg.current_revision(dsn)
    _emit(as_json, {"revision": revision}, f"schema at revision [bold]{revision}[/bold]")


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
            actor=ACTOR,
        )
        key = await keys.current_key(conn, uuid.UUID(row.id))
        return {"id": row.id, "slug": slug, "name": name, "key_id": key.key_id}

    out = _run(ctx, work)
    _emit(as_json, out, f"festival [bold]{slug}[/bold] created: {out['id']}")


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
            conn, await _festival_id(conn, festival), name=name, type=type_, price=price,
            valid_from=valid_from, valid_until=valid_until, actor=ACTOR,
        )  # fmt: skip
        return {"id": row.id, "name": row.name, "type": row.type.value}

    out = _run(ctx, work)
    _emit(as_json, out, f"category [bold]{name}[/bold] ({out['type']}) created: {out['id']}")


@festival_app.command("list")
def festival_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List festivals, with how many outside codes are too weak for offline guessing."""
    found = _run(ctx, festivals.list_festivals)
    if as_json:
        typer.echo(json.dumps({"festivals": found}, default=str))
        return
    table = Table("slug", "name", "status", "tickets", "outside codes", "weak", "lowest bits")
    for f in found:
        codes = f["outside_codes"]
        weak = f"[bold red]{codes['weak']}[/]" if codes["weak"] else "0"
        table.add_row(
            f["slug"], escape(f["name"]), f["status"], str(f["tickets"]), str(codes["codes"]),
            weak, "" if codes["lowest_bits"] is None else str(codes["lowest_bits"]),
        )  # fmt: skip
    console.print(table)


@festival_app.command("show")
def festival_show(
    ctx: typer.Context,
    festival: Annotated[str, typer.Argument(help="festival id or slug")],
    as_json: JsonOpt = False,
) -> None:
    """Show one festival: settings, signing keys, tickets and its outside codes' strength."""

    async def work(conn: AsyncConnection[Any]) -> dict[str, Any]:
        return await festivals.show_festival(conn, festival)

    found = _run(ctx, work)
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
        raise _fail(f"{path}: {exc}") from None
    func = getattr(imports, f"import_{kind}")

    async def work(conn: AsyncConnection[Any]) -> Any:
        return await func(conn, await _festival_id(conn, festival), rows, actor=ACTOR, **kw)

    return _run(ctx, work)


@import_app.command("tickets")
def import_tickets(
    ctx: typer.Context,
    file: Path,
    festival: FestivalOpt,
    sign: Annotated[bool, typer.Option(help="issue signed codes here (no code column)")] = False,
    out: Annotated[Path | None, typer.Option(help="write ticket_id,code CSV here")] = None,
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
            writer.writerow(["ticket_id", "code"])
            writer.writerows([t.ticket_id, t.code] for t in issued)
    data: dict[str, Any] = {"imported": len(issued)}
    if strength is not None:
        data["code_bits_min"] = min(strength.bits)
        data["weak_codes"] = strength.weak
    if sign and out is None:
        data["tickets"] = [{"ticket_id": str(t.ticket_id), "code": t.code} for t in issued]
    _emit(as_json, data, f"imported {len(issued)} tickets")
    if sign and out is None and not as_json:
        for t in issued:
            typer.echo(f"{t.ticket_id},{t.code}")


@import_app.command("wristbands")
def import_wristbands(
    ctx: typer.Context, file: Path, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Import wristbands (tag_uid hex, opening balance in cents)."""
    accounts = _import(ctx, festival, file, "wristbands", source=file.name)
    _emit(as_json, {"imported": len(accounts)}, f"imported {len(accounts)} wristbands")


@import_app.command("vendors")
def import_vendors(
    ctx: typer.Context, file: Path, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Import vendors and their products (one product per row)."""
    counts = _import(ctx, festival, file, "vendors")
    _emit(as_json, counts, f"imported {counts['vendors']} vendors, {counts['products']} products")


@import_app.command("zones")
def import_zones(
    ctx: typer.Context, file: Path, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Import access zones (name, capacity, required_types, reentry)."""
    zones = _import(ctx, festival, file, "zones")
    _emit(as_json, {"imported": len(zones)}, f"imported {len(zones)} zones")


@key_app.command("rotate")
def key_rotate(ctx: typer.Context, festival: FestivalOpt, as_json: JsonOpt = False) -> None:
    """Add a new signing key; older keys still verify until revoked."""

    async def work(conn: AsyncConnection[Any]) -> dict[str, Any]:
        row = await keys.rotate_key(conn, await _festival_id(conn, festival), actor=ACTOR)
        return {"key_id": row.key_id, "public_key": row.public_key, "seq": row.seq}

    out = _run(ctx, work)
    _emit(as_json, out, f"signing key {out['key_id']} now signs new codes")


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
        raise _fail(f"unknown role {role!r}")

    async def work(conn: AsyncConnection[Any]) -> users.NewOpsUser:
        fid = await _festival_id(conn, festival) if festival else None
        return await users.add_ops_user(conn, name=name, role=role, festival_id=fid, actor=ACTOR)  # type: ignore[arg-type]

    user = _run(ctx, work)
    data = {"id": str(user.user_id), "name": name, "role": role, "token": user.token}
    _emit(as_json, data, f"user {name} ({role}) token, shown once:\n{user.token}")


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
        fid = await _festival_id(conn, festival)
        code: str = await create(
            conn,
            festival_id=fid,
            role=role,
            zone_id=await _named(conn, "zone", fid, zone) if zone else None,
            vendor_id=await _named(conn, "vendor", fid, vendor) if vendor else None,
            ttl_s=ttl,
        )
        return code

    code = _run(ctx, work)
    _emit(as_json, {"code": code, "ttl_s": ttl}, f"enrolment code (valid {ttl} s): {code}")


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
            conn, await _festival_id(conn, festival), open_only=not all_
        )
        return found

    found = _run(ctx, work)
    if as_json:
        typer.echo(json.dumps({"conflicts": found}, default=str))
        return
    table = Table("kind", "detail")
    for c in found:
        table.add_row(str(c.get("kind", "")), json.dumps(c, default=str))
    console.print(table)


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

    with pg.open_database(pg.PgSettings.from_config(_config(ctx))) as dsn:
        pg.migrate(dsn)
        config = _config(ctx).model_copy(update={"dsn": SecretStr(dsn), "host": host, "port": port})
        server = uvicorn.Server(server_config(create_app(config, settle_gc=True), config))
        server.run()
    if not server.started:
        raise _fail(f"central did not start on {host}:{port}")


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

    config = _config(ctx)
    given = dsn or (config.dsn.get_secret_value() if config.dsn is not None else None)
    opts = DemoOptions(
        gates=gates, bars=bars, attendees=attendees, minutes=minutes, seed=seed,
        dsn=given or None, real_hardware=not simulated, work_dir=work_dir,
    )  # fmt: skip
    try:
        report = run_demo(opts, err_console if as_json else console, live_view=True)
    except ValueError as exc:
        raise _fail(str(exc)) from None
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
