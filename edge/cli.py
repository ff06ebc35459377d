"""`festgate`: the site tech's command line for one device's data directory."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from config.device import DEFAULT_DATA_DIR, DeviceConfig, load_device_config
from config.errors import ConfigError
from config.vocab import Role
from edge import cli_sync, identity
from edge.cli_errors import err, fail
from edge.clock import wall_clock_ms
from edge.decide import BadInput
from edge.device import Device, GateResult, SaleResult
from edge.identity import Identity
from edge.sample import build_sample
from edge.status import catalog_command, gather, render
from edge.store import NoDevice, require_device
from edge.sync_link import load_credentials
from sync.catalog import Snapshot
from sync.client import CentralRefused, CentralUnavailable

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
T = TypeVar("T")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", envvar="FESTGATE_CONFIG", help="device TOML file")
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", "-d", help="device data directory (overrides config)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]


def _print_version(wanted: bool) -> None:
    if wanted:
        try:
            print(f"festgate {version('festgate')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            print("festgate (not installed: run scripts/bootstrap)")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """festgate device: scan tickets, charge wristbands, inspect the replica."""


def _run(coro: Awaitable[T], as_json: bool) -> T:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except BadInput as exc:
        fail(exc.code, exc.detail, as_json)
    except ConfigError as exc:
        fail("config", str(exc), as_json)
    except CentralRefused as exc:
        fail(exc.error, exc.detail, as_json)
    except CentralUnavailable as exc:
        todo = "check the central URL and the network, then run the command again"
        fail("central_unavailable", f"{exc}; {todo}", as_json)


def _load_config(path: Path | None) -> DeviceConfig | None:
    return load_device_config(path) if path is not None else None


def _data_dir(cfg: DeviceConfig | None, data_dir: Path | None) -> Path:
    return data_dir or (cfg.device.data_dir if cfg is not None else DEFAULT_DATA_DIR)


def _catalog_problem(file: Path, exc: OSError | ValueError) -> str:
    """One line: the file, its first problem, and where a good catalog comes from."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        problem = f"{where}: {first['msg']}"
    else:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (
        f"{file}: {problem}; a catalog is festgate-catalog/1 JSON, as central's snapshot or "
        "`festgate catalog sample DIR` writes it"
    )


def _has_device(path: Path) -> bool:
    try:
        require_device(path)
    except NoDevice:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Opened:
    """A device opened for one command, with what it is and where it lives."""

    device: Device
    identity: Identity
    data_dir: Path
    cfg: DeviceConfig | None
    enrolled: bool


async def _open(
    config: Path | None,
    data_dir: Path | None,
    role: Role | None,
    *,
    zone: str | None = None,
    vendor: str | None = None,
) -> Opened:
    """Open an existing device as `role` (None: as whatever it is); never creates one."""
    cfg = _load_config(config)
    path = _data_dir(cfg, data_dir)
    require_device(path, config=config if data_dir is None else None)
    limits: dict[str, Any] = {}
    if cfg is not None:
        limits = {
            "allowance_cap": cfg.cashless.offline_allowance_cents,
            "online_window_ms": int(cfg.cashless.online_window_s * 1000),
        }
    device = await Device.open(path, role=role or Role.GATE, **limits)
    try:
        creds = load_credentials(path)
        ident = identity.resolve(cfg, creds, await identity.recorded(device.store))
        if role is not None:
            identity.check_role(ident, role, path)
        device.role = role or ident.role or Role.GATE
        device.zone_ref = zone or ident.zone
        device.vendor_ref = vendor or ident.vendor
    except BaseException:
        await device.close()
        raise
    return Opened(device, ident, path, cfg, creds is not None)


async def _with_device(
    config: Path | None,
    data_dir: Path | None,
    role: Role,
    work: Callable[[Device], Awaitable[T]],
    *,
    zone: str | None = None,
    vendor: str | None = None,
) -> T:
    """Run `work` on an existing device that has a catalog, as `role`."""
    opened = await _open(config, data_dir, role, zone=zone, vendor=vendor)
    device = opened.device
    try:
        if device.catalog.festival is None:
            command = catalog_command(
                opened.data_dir, enrolled=opened.enrolled, config=config, role=role
            )
            raise BadInput("no_catalog", f"no catalog in {opened.data_dir}: run `{command}`")
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
    role: Annotated[
        Role | None, typer.Option(help="what this data dir's device is (default: gate)")
    ] = None,
    zone: Annotated[str | None, typer.Option(help="a gate's zone, id or name")] = None,
    vendor: Annotated[str | None, typer.Option(help="a bar's vendor, id or name")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a device up from a catalog file (creating its data dir), or replace its catalog."""
    try:
        snapshot = Snapshot.model_validate_json(file.read_bytes())
    except (OSError, ValueError) as exc:
        fail("bad_catalog", _catalog_problem(file, exc), as_json)

    async def work() -> tuple[int, Identity, Path]:
        cfg = _load_config(config)
        path = _data_dir(cfg, data_dir)
        # Everything is checked before a new device is created (or an enrolled one opened).
        creds = load_credentials(path) if (exists := _has_device(path)) else None
        device = await Device.open(path, role=Role.GATE) if exists and not creds else None
        try:
            stored = await identity.recorded(device.store) if device is not None else None
            current = identity.resolve(None, creds, stored)
            chosen = identity.for_load(
                current, cfg, snapshot, path, role=role, zone=zone, vendor=vendor
            )
            if device is None:
                device = await Device.open(path, role=chosen.role or Role.GATE)
            rows = await device.store.apply_snapshot(snapshot)
            await identity.record(device.store, chosen)
            return rows, chosen, path
        finally:
            if device is not None:
                await device.close()

    try:
        rows, chosen, path = _run(work(), as_json)
    except ValueError as exc:  # refused by the store as it loaded: nothing was kept
        fail("bad_catalog", _catalog_problem(file, exc), as_json)
    place = chosen.zone or chosen.vendor
    if as_json:
        loaded = {"rows": rows, "seq": snapshot.seq, "data_dir": str(path)}
        print(
            json.dumps(loaded | {"role": chosen.role, "zone": chosen.zone, "vendor": chosen.vendor})
        )
    else:
        out.print(
            f"loaded {rows} rows, catalog seq {snapshot.seq}, into {escape(str(path))}: "
            f"a {chosen.role}" + (f" at {escape(place)}" if place else "")
        )


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

    async def work(device: Device) -> SaleResult:
        if device.vendor_ref is None and len(device.catalog.vendors) == 1:
            device.vendor_ref = next(iter(device.catalog.vendors))
        return await device.charge(tag, amount=amount, products=_parse_products(product or []))

    _show(_run(_with_device(config, data_dir, Role.BAR, work, vendor=vendor), as_json), as_json)


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
    """Show what the device is, what it holds, how its sync went and what it lacks."""

    async def work() -> dict[str, Any]:
        opened = await _open(config, data_dir, None)
        try:
            return await gather(
                opened.device,
                opened.identity,
                opened.data_dir,
                enrolled=opened.enrolled,
                cfg=opened.cfg,
                config=config,
            )
        finally:
            await opened.device.close()

    info = _run(work(), as_json)
    if as_json:
        print(json.dumps(info))
        return
    for line in render(info, wall_clock_ms()):
        out.print(line, soft_wrap=True)


cli_sync.register(app, _run)


@app.command()
def doctor(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    root: Annotated[
        Path | None,
        typer.Option(help="read /proc, /run, /dev and /etc files under DIR (tests, images)"),
    ] = None,
) -> None:
    """Check this device is ready: system libraries, groups, kernel modules, clock, disk, data
    dir, central over TLS, enrolment, readers. Exit status 0 only when every check passes."""
    from dataclasses import asdict

    from rich.table import Table

    from edge.doctor import System, examine

    system = System.under(root) if root is not None else System()
    found = asyncio.run(examine(config, data_dir, system))
    ok = all(check.ok for check in found)
    if as_json:
        print(json.dumps({"ok": ok, "checks": [asdict(check) for check in found]}))
        raise typer.Exit(0 if ok else 1)
    table = Table(box=None, show_header=False, pad_edge=False)
    for check in found:
        mark = "[green]✔[/]" if check.ok else "[bold red]✘[/]"
        line = escape(check.found) + ("" if check.ok else f"\n[yellow]fix:[/] {escape(check.fix)}")
        table.add_row(mark, f"[bold]{escape(check.name)}[/]", line)
    out.print(table)
    failures = sum(not check.ok for check in found)
    out.print("[bold green]ready[/]" if ok else f"[bold red]{failures} check(s) failed[/]")
    raise typer.Exit(0 if ok else 1)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())


from edge.cli_hardware import register as _register_hardware  # noqa: E402

_register_hardware(app)


if __name__ == "__main__":
    main()
