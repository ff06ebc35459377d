"""`festgate run` and `festgate hardware list|test`: the daemon and the site tech's checks."""

from __future__ import annotations

import asyncio
import faulthandler
import json
import queue
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from config.device import DeviceConfig, load_device_config
from config.errors import ConfigError
from edge.cli_errors import err, fail
from edge.decide import BadInput
from hardware.base import Actuator, CodeReader, HardwareUnsupported, ReaderUnavailable, Scan, Shown

out = Console()

# Past shutdown_s, closing the store and the interpreter's own exit get this long.
STOP_GRACE_S = 10.0

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", envvar="FESTGATE_CONFIG", help="device TOML file")
]


def _config(path: Path | None) -> DeviceConfig:
    try:
        return load_device_config(path)
    except ConfigError as exc:
        err.print(f"[bold red]invalid config[/] {exc.source}")
        for problem in exc.problems:
            err.print(f"  - {problem}")
        raise typer.Exit(2) from None


def run(config: ConfigOpt = None) -> None:
    """Run the device daemon until SIGTERM: readers → verdict (journaled) → actuators."""
    from edge.runtime import run_daemon
    from edge.runtime_logs import setup_json_logging

    cfg = _config(config)
    setup_json_logging()
    # `kill -USR1` prints every thread's stack to stderr: how a site tech sees a wedged daemon.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    grace = cfg.timeouts.shutdown_s + STOP_GRACE_S
    try:
        asyncio.run(run_daemon(cfg, on_stop=lambda: arm_stop_watchdog(grace), config_path=config))
    except ConfigError as exc:  # the data dir, found on opening it: exit 2 as for bad TOML
        fail("config", str(exc))
    except BadInput as exc:  # no device in the data dir: `init` or `catalog load` first
        fail(exc.code, exc.detail)


def arm_stop_watchdog(seconds: float) -> None:
    """After SIGTERM: if the process is still alive `seconds` later, print every thread's stack
    to stderr and exit with status 1. Journal commits are durable before a verdict is shown,
    so a forced exit loses nothing; a daemon that never exits blocks its replacement."""
    faulthandler.dump_traceback_later(seconds, exit=True)


def hardware_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List cameras, serial ports and NFC readers found on this machine, with any problem."""
    from hardware.discovery import as_json as to_json
    from hardware.discovery import list_hardware

    found = list_hardware()
    if as_json:
        print(json.dumps(to_json(found)))
        return
    if not found:
        out.print("no cameras, serial ports or NFC readers found")
    for item in found:
        out.print(f"[bold]{item.kind:7}[/] {item.path:24} {item.name}")
        for problem in item.problems:
            out.print(f"        [yellow]⚠ {problem}[/]")


# Counters a driver keeps for its own faults: a decoder that raised, a camera that stopped
# delivering, an NFC reader that would not open or was lost, an actuator that failed. The
# others count dropped input (noise, a tag pulled away early) or work done: no fault of the part.
FAULT_COUNTERS = ("bad_frames", "failed_reads", "open_failures", "lost", "faults")
WORK_COUNTERS = ("frames", "opens", "shown", "pulses")


@dataclass(frozen=True, slots=True)
class _Ended:
    """A reader's source ended (`problem` None) or the reader failed."""

    reader: str
    problem: str | None


def _watch(reader: CodeReader, stop: threading.Event, seen: queue.Queue[Scan | _Ended]) -> None:
    try:
        for scan in reader.scans(stop):
            seen.put(scan)
        seen.put(_Ended(reader.name, None))
    except (ReaderUnavailable, HardwareUnsupported) as exc:
        seen.put(_Ended(reader.name, str(exc)))
    except Exception as exc:  # show anything, the tech is debugging
        seen.put(_Ended(reader.name, f"{type(exc).__name__}: {exc}"))


def _describe(scan: Scan) -> str:
    if scan.text is not None:
        return f"code {scan.text!r}"
    parts = [f"tag {scan.tag_uid.hex() if scan.tag_uid else '?'}"]
    parts += [f"ndef {r.type} {r.text or r.data.hex()}" for r in scan.ndef]
    return ", ".join(parts)


def hardware_test(
    name: Annotated[
        str | None, typer.Argument(help="one reader or actuator (default: all)")
    ] = None,
    config: ConfigOpt = None,
    pulse: Annotated[bool, typer.Option("--pulse", help="pulse the relay(s) once")] = False,
    seconds: Annotated[
        float | None, typer.Option(help="stop after this long (default: Ctrl-C)")
    ] = None,
) -> None:
    """Live check: print each decoded code or tag as it arrives; --pulse opens the relay once.
    Exit status 1 when a part failed (could not be built, opened or read, or a decoder or
    actuator faulted), 2 for a bad config or name."""
    from edge.runtime import build_parts

    cfg = _config(config)
    parts = build_parts(cfg)
    names = {r.name for r in parts.readers} | {a.name for a in parts.actuators}
    names |= set(parts.disabled)
    if name is not None and name not in names:
        fail(
            "unknown_part",
            f"no reader or actuator named {name!r} (have: {', '.join(sorted(names))})",
        )
    failed = {n: why for n, why in parts.disabled.items() if name in (None, n)}
    for part, why in failed.items():
        err.print(f"[red]{part}: {escape(why)}[/]", soft_wrap=True)
    readers = [r for r in parts.readers if name in (None, r.name)]
    chosen: list[Actuator] = [a for a in parts.actuators if name in (None, a.name)]
    if pulse:
        failed |= _pulse(chosen)
    if readers:
        failed |= _read(readers, seconds)
    if failed:
        err.print(f"[bold red]hardware test failed:[/] {escape(', '.join(failed))}")
        raise typer.Exit(1)


def _read(readers: list[CodeReader], seconds: float | None) -> dict[str, str]:
    """Show what each reader reads until `seconds` pass, Ctrl-C, or every reader ended;
    returns the readers that failed, with why."""
    stop = threading.Event()
    seen: queue.Queue[Scan | _Ended] = queue.Queue()
    for reader in readers:
        threading.Thread(target=_watch, args=(reader, stop, seen), daemon=True).start()
    out.print(f"reading from {', '.join(r.name for r in readers)} — show a code or tap a tag")
    deadline = time.monotonic() + seconds if seconds is not None else None
    ended, failed = 0, {}
    try:
        while ended < len(readers) and (deadline is None or time.monotonic() < deadline):
            try:
                item = seen.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(item, _Ended):
                ended += 1
                if item.problem is None:
                    err.print(f"[yellow]{item.reader}: source ended[/]")
                else:
                    failed[item.reader] = item.problem
                    err.print(f"[red]{item.reader}: {escape(item.problem)}[/]", soft_wrap=True)
            else:
                print(f"{item.source}: {_describe(item)}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
    for reader in readers:
        counts = reader.counters.snapshot()
        faults = {k: v for k, v in counts.items() if k in FAULT_COUNTERS}
        dropped = {k: v for k, v in counts.items() if k not in FAULT_COUNTERS + WORK_COUNTERS}
        if dropped:
            out.print(f"{reader.name}: dropped input {dropped}")
        if faults:
            failed.setdefault(reader.name, f"faults {faults}")
            err.print(f"[red]{reader.name}: faults {faults} (see the log lines above)[/]")
    return failed


def _pulse(actuators: list[Actuator]) -> dict[str, str]:
    """Send each actuator an admitting test verdict; returns those that failed, with why."""
    from hardware.serial_relay import SerialRelay

    relays = [a for a in actuators if isinstance(a, SerialRelay)]
    if not relays:
        err.print("[yellow]no relay configured to pulse[/]")
    failed = {}
    for actuator in actuators:
        try:
            # An admitting test verdict: relays pulse, displays and lamps show green.
            actuator.show(Shown("test", "Hardware test", admits=True, source="hardware test"))
        except Exception as exc:  # drivers count their faults; this is a last guard
            actuator.counters.add("faults")
            failed[actuator.name] = f"{type(exc).__name__}: {exc}"
        finally:
            actuator.close()
        faults = actuator.counters["faults"]
        if faults:
            failed.setdefault(actuator.name, f"{faults} fault(s)")
        status = "[red]failed (see log)[/]" if faults else "[green]done[/]"
        out.print(f"{actuator.name}: test verdict sent — {status}")
    return failed


def register(app: typer.Typer) -> None:
    """Add `run` and the `hardware` group to the festgate CLI."""
    app.command("run")(run)
    group = typer.Typer(
        help="Find and test cameras, NFC readers and serial devices.", no_args_is_help=True
    )
    group.command("list")(hardware_list)
    group.command("test")(hardware_test)
    app.add_typer(group, name="hardware")
