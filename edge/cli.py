"""`festgate`: the site tech's command line for one device's data directory."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from config.device import DeviceConfig, load_device_config
from config.errors import ConfigError
from edge import cli_sync
from edge.clock import wall_clock_ms
from edge.decide import BadInput
from edge.device import Device, GateResult, SaleResult
from edge.sample import build_sample
from edge.sync_link import load_credentials
from sync.catalog import Snapshot
from sync.client import CentralRefused, CentralUnavailable
from sync.vocab import Role

app = typer.Typer(
    help="festgate device: scan tickets, charge wristbands, inspect the replica.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Check device configuration files.", no_args_is_help=True)
catalog_app = typer.Typer(
    help="Load or make catalogs (until sync delivers them).", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(catalog_app, name="catalog")
out = Console()
err = Console(stderr=True)
T = TypeVar("T")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", envvar="FESTGATE_CONFIG", help="device TOML file")
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", "-d", help="device data directory (overrides config)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]


def _fail(code: str, detail: str, as_json: bool) -> NoReturn:
    if as_json:
        print(json.dumps({"error": code, "detail": detail}))
    else:
        # One line however long (a fix command must stay copyable); the detail is not markup.
        err.print(f"[bold red]error[/] {code}: {escape(detail)}", soft_wrap=True)
    raise typer.Exit(2)


def _run(coro: Awaitable[T], as_json: bool) -> T:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except BadInput as exc:
        _fail(exc.code, exc.detail, as_json)
    except ConfigError as exc:
        _fail("config", str(exc), as_json)
    except CentralRefused as exc:
        _fail(exc.error, exc.detail, as_json)
    except CentralUnavailable as exc:
        _fail("central_unavailable", str(exc), as_json)


def _load_config(path: Path | None) -> DeviceConfig | None:
    return load_device_config(path) if path is not None else None


async def _open(
    config: Path | None, data_dir: Path | None, role: Role, *, zone: str | None = None
) -> Device:
    cfg = _load_config(config)
    creds = load_credentials(data_dir) if cfg is None and data_dir is not None else None
    if creds is not None and data_dir is not None:
        if creds.role != role:
            raise BadInput("wrong_role", f"this device is a {creds.role}, not a {role}")
        return await Device.open(
            data_dir, role=role, zone=zone or creds.zone_id, vendor=creds.vendor_id
        )
    if cfg is not None:
        if cfg.device.role is not role:
            raise BadInput("wrong_role", f"this device is a {cfg.device.role}, not a {role}")
        return await Device.open(
            data_dir or cfg.device.data_dir,
            role=role,
            zone=zone or cfg.device.zone,
            vendor=cfg.device.vendor,
            allowance_cap=cfg.cashless.offline_allowance_cents,
            online_window_ms=int(cfg.cashless.online_window_s * 1000),
        )
    return await Device.open(data_dir or Path("./var/device"), role=role, zone=zone)


async def _with_device(
    config: Path | None,
    data_dir: Path | None,
    role: Role,
    work: Callable[[Device], Awaitable[T]],
    *,
    zone: str | None = None,
) -> T:
    device = await _open(config, data_dir, role, zone=zone)
    try:
        return await work(device)
    finally:
        await device.close()


def _show(result: GateResult | SaleResult, as_json: bool, currency: str = "EUR") -> None:
    verdict = result.verdict
    record: dict[str, Any] = {
        "verdict": verdict.code,
        "text": result.text,
        "admits": verdict.admits,
        "event_id": result.event.event_id,
        "device_seq": result.event.device_seq,
    }
    if isinstance(result, SaleResult):
        record |= {"amount": result.amount, "balance": result.balance}
    else:
        record["zone"] = result.zone
    if as_json:
        print(json.dumps(record))
    else:
        colour, mark = ("green", "✔") if verdict.admits else ("red", "✘")
        text = result.text
        line = f"[bold {colour}]{mark} {verdict.code}[/] — {text}"
        if isinstance(result, SaleResult):
            line += f"  (amount {result.amount / 100:.2f} {currency}"
            if result.balance is not None:
                line += f", balance {result.balance / 100:.2f} {currency}"
            line += ")"
        else:
            line += f"  (zone {result.zone})"
        out.print(line)
    # Scripts can branch on the exit status: 0 admitted/approved, 1 refused/declined.
    raise typer.Exit(0 if verdict.admits else 1)


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="device TOML file")], as_json: JsonOpt = False
) -> None:
    """Validate a config file: every problem by key path, or a summary."""
    try:
        cfg = load_device_config(file)
    except ConfigError as exc:
        if as_json:
            print(json.dumps({"valid": False, "problems": exc.problems}))
        else:
            err.print(f"[bold red]{file}: invalid[/]")
            for problem in exc.problems:
                err.print(f"  - {problem}")
        raise typer.Exit(2) from None
    summary = {
        "valid": True,
        "name": cfg.device.name,
        "role": cfg.device.role.value,
        "zone": cfg.device.zone,
        "vendor": cfg.device.vendor,
        "data_dir": str(cfg.device.data_dir),
        "central": str(cfg.central.url) if cfg.central.url else None,
        "readers": [f"{r.name} ({r.type})" for r in cfg.readers],
        "actuators": [f"{a.name} ({a.type})" for a in cfg.actuators],
    }
    if as_json:
        print(json.dumps(summary))
        return
    out.print(f"[bold green]{file}: valid[/]")
    for key, value in summary.items():
        if key != "valid":
            out.print(f"  {key:10} {', '.join(value) if isinstance(value, list) else value}")


@catalog_app.command("load")
def catalog_load(
    file: Annotated[Path, typer.Argument(help="catalog JSON (festgate-catalog/1)")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace the device's catalog with a JSON snapshot."""
    try:
        snapshot = Snapshot.model_validate_json(file.read_bytes())
    except (OSError, ValueError) as exc:
        _fail("bad_catalog", str(exc).splitlines()[0] if str(exc) else type(exc).__name__, as_json)

    async def work(device: Device) -> int:
        return await device.store.apply_snapshot(snapshot)

    try:
        rows = _run(_with_device(config, data_dir, _role_of(config, data_dir), work), as_json)
    except ValueError as exc:
        _fail("bad_catalog", str(exc).splitlines()[0], as_json)
    if as_json:
        print(json.dumps({"rows": rows, "seq": snapshot.seq}))
    else:
        out.print(f"loaded {rows} rows, catalog seq {snapshot.seq}")


def _role_of(config: Path | None, data_dir: Path | None = None) -> Role:
    cfg = _load_config(config)
    if cfg is not None:
        return cfg.device.role
    creds = load_credentials(data_dir) if data_dir is not None else None
    return Role(creds.role) if creds is not None else Role.GATE


@catalog_app.command("sample")
def catalog_sample(
    out_dir: Annotated[Path, typer.Argument(help="where to write catalog.json and codes.json")],
    tickets: Annotated[int, typer.Option(min=8, max=100_000)] = 50,
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Write a sample festival catalog, plus the codes and tag ids a demo may scan."""
    sample = build_sample(seed=seed, now=wall_clock_ms() // 1000, tickets=tickets)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "catalog.json").write_text(sample.snapshot.model_dump_json())
    (out_dir / "codes.json").write_text(
        json.dumps({"codes": sample.codes, "tags": sample.tags}, indent=1)
    )
    out.print(f"wrote {out_dir / 'catalog.json'} and {out_dir / 'codes.json'}")


@app.command()
def scan(
    code: Annotated[str, typer.Argument(help="the text a QR code or scanner gave")],
    zone: Annotated[str | None, typer.Option(help="zone id or name (default: config)")] = None,
    exit_: Annotated[bool, typer.Option("--exit", help="record an exit, not an entry")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Decide a ticket at a gate; exit status 0 admitted, 1 refused, 2 error."""
    result = _run(
        _with_device(
            config, data_dir, Role.GATE, lambda d: d.scan(code, zone=zone, exit=exit_), zone=zone
        ),
        as_json,
    )
    _show(result, as_json)


def _parse_products(specs: list[str]) -> list[tuple[str, int]]:
    basket = []
    for spec in specs:
        name, _, qty = spec.partition(":")
        if qty and not qty.isdigit():
            raise BadInput("invalid_quantity", f"{spec!r}: quantity must be a whole number")
        basket.append((name, int(qty) if qty else 1))
    return basket


@app.command()
def charge(
    tag: Annotated[str, typer.Argument(help="wristband tag id, hex")],
    amount: Annotated[int | None, typer.Option(help="amount in cents")] = None,
    product: Annotated[
        list[str] | None, typer.Option(help="product id or name[:qty], repeatable")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    vendor: Annotated[str | None, typer.Option(help="vendor id or name (default: config)")] = None,
) -> None:
    """Charge a wristband at a bar; exit status 0 approved, 1 declined, 2 error."""

    async def work() -> SaleResult:
        device = await _open(config, data_dir, Role.BAR)
        device.vendor_ref = vendor or device.vendor_ref
        if device.vendor_ref is None and len(device.catalog.vendors) == 1:
            device.vendor_ref = next(iter(device.catalog.vendors))
        try:
            return await device.charge(tag, amount=amount, products=_parse_products(product or []))
        finally:
            await device.close()

    _show(_run(work(), as_json), as_json)


@app.command()
def topup(
    tag: Annotated[str, typer.Argument(help="wristband tag id, hex")],
    amount: Annotated[int, typer.Option(help="amount in cents")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Load money onto a wristband at a top-up point."""
    result = _run(
        _with_device(config, data_dir, Role.TOPUP, lambda d: d.topup(tag, amount=amount)), as_json
    )
    _show(result, as_json)


@app.command()
def refund(
    event_id: Annotated[str, typer.Argument(help="event id of the sale to refund")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Refund an approved sale made on this device."""
    result = _run(_with_device(config, data_dir, Role.BAR, lambda d: d.refund(event_id)), as_json)
    _show(result, as_json)


@app.command()
def status(config: ConfigOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Show the device's identity, catalog and journal."""

    async def work(device: Device) -> dict[str, Any]:
        stats = await device.journal.stats()
        festival = device.catalog.festival
        sync_status = json.loads(await device.store.get_state("sync_status") or "{}")
        return {
            "device_id": device.journal.device_id,
            "role": device.role.value,
            "festival": festival.name if festival else None,
            "catalog_seq": device.store.cursor,
            "tables": await device.store.table_counts(),
            "events": stats.events,
            "pending_events": stats.pending,
            "last_device_seq": stats.last_seq,
            "sync": {
                key: sync_status.get(key)
                for key in (
                    "head_seq",
                    "lag",
                    "last_success_ms",
                    "last_error",
                    "clock_offset_ms",
                    "refused",
                )
            },
        }

    info = _run(_with_device(config, data_dir, _role_of(config, data_dir), work), as_json)
    if as_json:
        print(json.dumps(info))
        return
    for key, value in info.items():
        shown = (
            ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else value
        )
        out.print(f"{key:16} {shown}")


cli_sync.register(app, _run)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())


from edge.cli_hardware import register as _register_hardware  # noqa: E402

_register_hardware(app)


if __name__ == "__main__":
    main()
