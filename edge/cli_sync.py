"""`festgate init` and `festgate sync`: enrol a device with central and keep it in step."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity import wait_random_exponential as jittered

from config.device import DEFAULT_DATA_DIR, readable_ca_bundle
from config.errors import ConfigError
from config.vocab import Role
from edge.cli_errors import fail
from edge.datadir import act_as, write_private
from edge.decide import BadInput
from edge.device import Device
from edge.humanize import moment
from edge.status import resume_sync, saved_sync
from edge.store import require_device
from edge.sync_link import Credentials, engine_for, load_credentials, save_credentials
from sync.client import CentralClient, CentralError, CentralRefused, CentralUnavailable
from sync.engine import SyncEngine

SNAPSHOT_ATTEMPTS = 8  # about a minute of backoff: central's snapshot streams are capped


def _client(creds: Credentials, ca_bundle: Path | None) -> CentralClient:
    return CentralClient(creds.central_url, token=creds.token, ca_bundle=ca_bundle)


async def _bootstrap(engine: SyncEngine, progress: Progress | None) -> int:
    """Load central's snapshot, trying again while central is busy or the stream is cut (a
    429 when its snapshot streams are all taken, a dropped link): the enrol code is spent
    by now, so giving up at once would leave an enrolled device with no catalog."""
    task = progress.add_task("snapshot", total=None) if progress else None

    def shown(rows: int) -> None:
        if progress is not None and task is not None:
            progress.update(task, description=f"snapshot: {rows:,} rows")

    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(CentralUnavailable),
        wait=jittered(multiplier=0.5, max=10),
        stop=stop_after_attempt(SNAPSHOT_ATTEMPTS),
        reraise=True,
    ):
        with attempt:
            return await engine.bootstrap(shown)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _config_text(creds: Credentials, name: str, data_dir: Path, ca_bundle: Path | None) -> str:
    lines = [
        "# Written by `festgate init`; the token lives in credentials.json (mode 0600).",
        "[device]",
        f"name = {json.dumps(name)}",
        f'role = "{creds.role}"',
    ]
    if creds.zone_id:
        lines.append(f'zone = "{creds.zone_id}"')
    if creds.vendor_id:
        lines.append(f'vendor = "{creds.vendor_id}"')
    lines += [f"data_dir = {json.dumps(str(data_dir.resolve()))}", "", "[central]"]
    lines.append(f"url = {json.dumps(creds.central_url)}")
    if ca_bundle is not None:
        lines.append(f"ca_bundle = {json.dumps(str(ca_bundle.resolve()))}")
    return "\n".join(lines) + "\n"


async def enrol_device(
    central: str,
    code: str,
    *,
    name: str,
    data_dir: Path,
    ca_bundle: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Enrol, store credentials, bootstrap the catalog and catch up; returns a summary."""
    if load_credentials(data_dir) is not None:
        raise BadInput("already_enrolled", f"{data_dir} belongs to an enrolled device")
    device = await Device.open(data_dir, role=Role.GATE)
    try:
        # Checked before the one-time code is spent: events journaled under a local id would
        # reach central under the enrolled one, so a data dir with history cannot be enrolled.
        if (await device.journal.stats()).events:
            raise BadInput("journal_not_empty", f"{data_dir} already holds events; use a new one")
        async with CentralClient(central, ca_bundle=ca_bundle) as anonymous:
            got = await anonymous.enrol(code, name)
        creds = Credentials.from_enrolment(central, got)
        await device.store.set_state("device_id", creds.device_id)
    finally:
        await device.close()
    save_credentials(data_dir, creds)
    device = await Device.open(data_dir, role=Role(creds.role))
    try:
        async with _client(creds, ca_bundle) as client:
            engine = engine_for(device, client)
            rows = await _bootstrap(engine, progress)
            _, pulled = await engine.sync_round()
        return {
            "device_id": creds.device_id,
            "role": creds.role,
            "festival_id": creds.festival_id,
            "zone_id": creds.zone_id,
            "vendor_id": creds.vendor_id,
            "rows": rows,
            "changes": pulled,
            "catalog_seq": device.store.cursor,
            "config": _config_text(creds, name, data_dir, ca_bundle),
        }
    finally:
        await device.close()


async def sync_now(data_dir: Path, ca_bundle: Path | None = None) -> dict[str, Any]:
    """One round: push what is pending, pull until caught up; returns the status."""
    require_device(data_dir)
    creds = load_credentials(data_dir)
    if creds is None:
        raise BadInput(
            "not_enrolled",
            f"no credentials in {data_dir}: enrol it first with "
            f"`festgate init --central URL --code CODE -d {shlex.quote(str(data_dir))}`",
        )
    device = await Device.open(data_dir, role=Role(creds.role))
    try:
        async with _client(creds, ca_bundle) as client:
            engine = engine_for(device, client)
            await resume_sync(engine, device.store)
            try:
                if device.catalog.festival is None:  # an init whose snapshot never landed
                    await _bootstrap(engine, None)
                pushed, pulled = await engine.sync_round()
            except CentralError as exc:
                raise await _failed(engine, device, exc, creds, data_dir) from None
        return {"pushed": pushed, "pulled": pulled} | await saved_sync(device.store)
    finally:
        await device.close()


async def _failed(
    engine: SyncEngine, device: Device, exc: CentralError, creds: Credentials, data_dir: Path
) -> BadInput:
    """Record a failed round (the last success stays as it was) and say what to do."""
    now = device.clock()
    engine.status.last_error, engine.status.last_error_ms = str(exc), now
    await engine.record_status()
    if isinstance(exc, CentralRefused):
        todo = "ask ops whether this device was revoked, or update festgate"
    else:
        todo = (
            f"check the link to {creds.central_url}, then run "
            f"`festgate sync -d {shlex.quote(str(data_dir))}` again"
        )
    last = moment(engine.status.last_success_ms, now)
    return BadInput("sync_failed", f"{exc}; last success: {last}; {todo}")


def register(app: typer.Typer, run: Any) -> None:
    """Add `init` and `sync` to the device CLI (`run` is the CLI's error-mapping runner)."""

    @app.command()
    def init(
        central: Annotated[str, typer.Option(help="central's base URL, e.g. https://central:8443")],
        code: Annotated[str, typer.Option(help="one-time enrol code from ops")],
        name: Annotated[str, typer.Option(help="device name ops will see")] = "device",
        data_dir: Annotated[Path, typer.Option("--data-dir", "-d")] = DEFAULT_DATA_DIR,
        ca_bundle: Annotated[Path | None, typer.Option(help="festival CA bundle (PEM)")] = None,
        write_config: Annotated[
            Path | None, typer.Option(help="where to write the device TOML (default: in data dir)")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
        user: Annotated[
            str | None,
            typer.Option(help="as root: the service user to own the files (default: the dir's)"),
        ] = None,
    ) -> None:
        """Enrol this device with central, download the catalog, and get ready to scan."""
        try:  # before anything is created, so that nothing is left owned by root
            act_as(data_dir, user)
        except ConfigError as exc:
            fail("config", str(exc), as_json)
        try:  # as the service user now, who reads it at every start
            if ca_bundle is not None:
                readable_ca_bundle(ca_bundle)
        except ValueError as exc:
            fail("config", f"--ca-bundle: {exc}", as_json)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), disable=as_json) as bar:
            summary = run(
                enrol_device(central, code, name=name, data_dir=data_dir, ca_bundle=ca_bundle,
                             progress=bar),
                as_json,
            )  # fmt: skip
        target = write_config or data_dir / "festgate.toml"
        write_private(target, summary.pop("config"))
        summary["config_file"] = str(target)
        if as_json:
            print(json.dumps(summary))
            return
        typer.echo(
            f"enrolled as {summary['role']} {summary['device_id']}; "
            f"{summary['rows']:,} catalog rows, seq {summary['catalog_seq']}; config {target}"
        )

    @app.command("sync")
    def sync_cmd(
        data_dir: Annotated[Path, typer.Option("--data-dir", "-d")] = DEFAULT_DATA_DIR,
        ca_bundle: Annotated[Path | None, typer.Option(help="festival CA bundle (PEM)")] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Run one sync round now: push pending events, pull catalog changes."""
        result = run(sync_now(data_dir, ca_bundle), as_json)
        if as_json:
            print(json.dumps(result))
            return
        typer.echo(
            f"pushed {result['pushed']}, pulled {result['pulled']}; cursor {result['cursor']}, "
            f"lag {result['lag']}, pending {result['pending_events']}"
        )
