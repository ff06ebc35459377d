"""`festgate-central device` and `enrol-code`: a festival's devices by name (health, log,
revoke) and the one-time codes that enrol them (create, list, revoke)."""

from __future__ import annotations

from typing import Annotated

import typer

from central import devices, enrol
from central.cli_common import FestivalOpt, JsonOpt, actor, emit, run
from central.cli_ops import fields, section, shown, when
from central.cli_show import ago, listing, on_festival, to_json
from central.enrol import EnrolCodeView

app = typer.Typer(help="devices: health, log, revoke", no_args_is_help=True)
enrol_app = typer.Typer(help="one-time codes that enrol devices", no_args_is_help=True)
DeviceArg = Annotated[str, typer.Argument(help="device name (as enrolled) or id")]


def _where(d: devices.DeviceHealth) -> str:
    return d.zone or d.vendor or "-"


def _seen(d: devices.DeviceHealth) -> str:
    if d.revoked_at is not None:
        return f"revoked {when(d.revoked_at)}"
    state = "online" if d.online else "OFFLINE"
    return f"{state}, seen {ago(d.last_seen_s)}"


def _offset(ms: int | None) -> str:
    return "-" if ms is None else f"{ms / 1000:+.1f} s"


def _readers(readers: dict[str, bool] | None) -> str:
    if readers is None:
        return "-"
    return ", ".join(f"{n} {'up' if up else 'DOWN'}" for n, up in sorted(readers.items())) or "none"


@app.command("list")
def device_list(ctx: typer.Context, festival: FestivalOpt, as_json: JsonOpt = False) -> None:
    """List devices: where they work, online or how long offline, sync lag (feed changes
    behind), pending events, clock offset, software version, readers working."""
    found = run(ctx, on_festival(festival, devices.list_devices))
    listing(
        as_json, "devices", found,
        ("device", "works at", "state", "lag", "pending", "clock", "software", "readers"),
        lambda d: (d.name, f"{d.role}: {_where(d)}", _seen(d), d.sync_lag, d.pending_events,
                   _offset(d.clock_offset_ms), d.software_version or "-", _readers(d.readers)),
        empty="no devices enrolled",
    )  # fmt: skip


def _log_row(x: devices.LogLine) -> tuple[object, ...]:
    return (x.device_seq, when(x.at), x.level, x.message)


@app.command("show")
def device_show(
    ctx: typer.Context, device: DeviceArg, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Show one device: its health, what it pushed, its latest log lines."""
    shown(as_json, run(ctx, on_festival(festival, devices.show_device, device)), _show)


def _show(d: devices.DeviceDetail) -> None:
    fields(
        [
            ("device", d.name), ("id", d.id), ("role", d.role), ("zone/vendor", _where(d)),
            ("state", _seen(d)), ("last seen", when(d.last_seen_at)),
            ("last push", when(d.last_push_at)), ("enrolled", when(d.enrolled_at)),
            ("sync lag", d.sync_lag), ("pending events", d.pending_events),
            ("acked through", d.acked_through), ("clock offset", _offset(d.clock_offset_ms)),
            ("software", d.software_version or "-"), ("readers", _readers(d.readers)),
            ("events", f"{d.events} ({d.rejected_events} rejected)"),
            ("open conflicts", d.open_conflicts),
        ]
    )  # fmt: skip
    section("log", ("seq", "at", "level", "message"), [_log_row(x) for x in d.recent_log])


@app.command("log")
def device_log(
    ctx: typer.Context,
    device: DeviceArg,
    festival: FestivalOpt,
    after: Annotated[int, typer.Option(help="only lines after this device_seq", min=0)] = 0,
    limit: Annotated[int, typer.Option(help="at most this many lines", min=1, max=5000)] = 500,
    as_json: JsonOpt = False,
) -> None:
    """Print a device's log lines, oldest first."""
    lines = run(
        ctx, on_festival(festival, devices.device_log, device, after_seq=after, limit=limit)
    )
    listing(as_json, "log", lines, ("seq", "at", "level", "message"), _log_row,
            empty="no log lines")  # fmt: skip


@app.command("revoke")
def device_revoke(
    ctx: typer.Context, device: DeviceArg, festival: FestivalOpt, as_json: JsonOpt = False
) -> None:
    """Revoke a device: its token is refused from its next request on."""
    d = run(ctx, on_festival(festival, devices.revoke_device, device, actor=actor()))
    emit(as_json, to_json(d), f"device [bold]{d.name}[/bold] revoked: central refuses it now")


@enrol_app.command("create")
def enrol_code_create(
    ctx: typer.Context,
    festival: FestivalOpt,
    role: Annotated[str, typer.Option(help="gate, bar or topup")],
    zone: Annotated[str | None, typer.Option(help="zone name or id (gates)")] = None,
    vendor: Annotated[str | None, typer.Option(help="vendor name or id (bars)")] = None,
    ttl: Annotated[int, typer.Option(help="seconds the code stays valid")] = 900,
    as_json: JsonOpt = False,
) -> None:
    """Make a one-time enrolment code for a device (shown this once)."""
    new = run(
        ctx,
        on_festival(festival, enrol.issue_enrol_code, role=role, zone=zone, vendor=vendor,
                    ttl_s=ttl, actor=actor()),
    )  # fmt: skip
    emit(as_json, to_json(new), f"enrolment code (valid {ttl} s, id {new.id}): {new.code}")


def _code_row(c: EnrolCodeView) -> tuple[object, ...]:
    return (c.id, c.role, c.zone or c.vendor or "-", when(c.expires_at), c.created_by)


@enrol_app.command("list")
def enrol_code_list(ctx: typer.Context, festival: FestivalOpt, as_json: JsonOpt = False) -> None:
    """List codes that still enrol (unused, unexpired, unrevoked), by their short id."""
    found = run(ctx, on_festival(festival, enrol.list_enrol_codes))
    listing(as_json, "enrol_codes", found, ("id", "role", "zone/vendor", "expires", "by"),
            _code_row, empty="no usable enrol codes")  # fmt: skip


@enrol_app.command("revoke")
def enrol_code_revoke(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="the code's short id (enrol-code list) or the code")],
    festival: FestivalOpt,
    as_json: JsonOpt = False,
) -> None:
    """Revoke an unused enrol code: no device can enrol with it."""
    done = run(ctx, on_festival(festival, enrol.revoke_enrol_code, code, actor=actor()))
    emit(as_json, to_json(done), f"enrol code {done.id} revoked")
