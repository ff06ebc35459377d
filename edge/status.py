"""What `festgate status` and the daemon's start say about a device: what it is, what it holds,
how its sync went, and what keeps it from doing its job (no readers, not enrolled, no catalog)."""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rich.markup import escape

from config.device import DeviceConfig
from config.vocab import Role
from edge.device import Device
from edge.humanize import moment, offset
from edge.identity import Identity
from edge.store import Store
from edge.sync_link import SYNC_KEY
from sync.engine import SyncEngine

DAEMON_KEY = "daemon"  # what the last `festgate run` started with
SYNC_FIELDS = (
    "head_seq",
    "lag",
    "last_success_ms",
    "last_error",
    "last_error_ms",
    "clock_offset_ms",
    "refused",
)


@dataclass(frozen=True, slots=True)
class Notice:
    """Something that keeps a device from doing its job, and what to do about it."""

    code: str
    text: str
    level: int = logging.WARNING


def catalog_command(
    data_dir: Path, *, enrolled: bool, config: Path | None = None, role: Role | None = None
) -> str:
    """The command that gives this device its catalog."""
    if enrolled:
        return f"festgate sync -d {shlex.quote(str(data_dir))}"
    if config is not None:
        return f"festgate catalog load FILE -c {shlex.quote(str(config))}"
    return f"festgate catalog load FILE -d {shlex.quote(str(data_dir))} --role {role or 'ROLE'}"


def notices(
    data_dir: Path,
    *,
    enrolled: bool,
    readers: int | None,
    has_catalog: bool,
    config: Path | None = None,
) -> list[Notice]:
    """What is missing: a catalog, readers (None: not known here), an enrolment."""
    found = []
    if not has_catalog:
        command = catalog_command(data_dir, enrolled=enrolled, config=config)
        text = f"no catalog: every scan is refused; run `{command}`"
        found.append(Notice("no_catalog", text, logging.ERROR))
    if readers == 0:
        found.append(
            Notice(
                "no_readers",
                "no readers: the daemon reads no codes or tags; add a [[readers]] section to "
                "the config (`festgate hardware list` shows what is attached)",
                logging.ERROR,
            )
        )
    if not enrolled:
        found.append(
            Notice(
                "not_enrolled",
                "not enrolled: nothing recorded here reaches central, and central's changes "
                "never arrive; enrol a device with `festgate init --central URL --code CODE "
                "-d DIR` (a data dir with no events yet)",
            )
        )
    return found


async def saved_sync(store: Store) -> dict[str, Any]:
    """The sync status the last exchange (or failure) left, {} before any."""
    saved: dict[str, Any] = json.loads(await store.get_state(SYNC_KEY) or "{}")
    return saved


async def resume_sync(engine: SyncEngine, store: Store) -> None:
    """Start a new engine from the saved status: a round that fails keeps the last success
    time, the clock offset and central's head as last learned, instead of forgetting them."""
    saved = await saved_sync(store)
    for field in fields(engine.status):
        if field.name in saved and field.name not in ("cursor", "pending_events"):
            setattr(engine.status, field.name, saved[field.name])


async def record_daemon(store: Store, note: dict[str, Any]) -> None:
    """Leave what `festgate run` started with (readers, actuators, when) for `status`."""
    await store.set_state(DAEMON_KEY, json.dumps(note))


async def gather(
    device: Device,
    identity: Identity,
    data_dir: Path,
    *,
    enrolled: bool,
    cfg: DeviceConfig | None,
    config: Path | None,
) -> dict[str, Any]:
    """Everything `status` shows, as JSON-ready data (times in unix ms)."""
    stats = await device.journal.stats()
    daemon = json.loads(await device.store.get_state(DAEMON_KEY) or "null")
    readers: list[str] | None = daemon["readers"] if daemon else None
    if cfg is not None:
        readers = [r.name for r in cfg.readers]
    catalog = device.catalog
    zone = catalog.find_zone(identity.zone) if identity.zone else None
    vendor = catalog.find_vendor(identity.vendor) if identity.vendor else None
    sync = await saved_sync(device.store)
    found = notices(
        data_dir,
        enrolled=enrolled,
        readers=None if readers is None else len(readers),
        has_catalog=catalog.festival is not None,
        config=config,
    )
    return {
        "device_id": device.journal.device_id,
        "data_dir": str(data_dir),
        "role": identity.role.value if identity.role else None,
        "zone": zone.name if zone else identity.zone,
        "vendor": vendor.name if vendor else identity.vendor,
        "set_by": identity.source,
        "enrolled": enrolled,
        "festival": catalog.festival.name if catalog.festival else None,
        "catalog_seq": device.store.cursor,
        "tables": await device.store.table_counts(),
        "events": stats.events,
        "pending_events": stats.pending,
        "last_device_seq": stats.last_seq,
        "readers": readers,
        "daemon": daemon,
        "sync": {key: sync.get(key) for key in SYNC_FIELDS},
        "warnings": [{"code": n.code, "text": n.text} for n in found],
    }


def _row(key: str, value: object) -> str:
    return f"{key:13} {escape(str(value))}"


def render(info: dict[str, Any], now_ms: int) -> list[str]:
    """`status` for people (rich markup): times in local time and how long ago."""
    role = info["role"] or "not set"
    place = info["zone"] or info["vendor"]
    if place:
        role += f", {'zone' if info['zone'] else 'vendor'} {place}"
    lines = [
        _row("device", info["device_id"]),
        _row("data dir", info["data_dir"]),
        _row("role", f"{role} (set by {info['set_by']})"),
        _row("enrolled", "yes" if info["enrolled"] else "no"),
        _row("festival", info["festival"] or "none (no catalog)"),
        _row("catalog seq", info["catalog_seq"]),
        _row("tables", ", ".join(f"{k} {v}" for k, v in info["tables"].items())),
        _row(
            "events",
            f"{info['events']} ({info['pending_events']} pending, "
            f"last device_seq {info['last_device_seq']})",
        ),
    ]
    readers = info["readers"]
    if readers is None:
        lines.append(_row("readers", "unknown: no daemon has run here (give -c CONFIG)"))
    else:
        lines.append(_row("readers", f"{len(readers)}: {', '.join(readers) or 'none'}"))
    if info["daemon"]:
        lines.append(_row("daemon", f"started {moment(info['daemon']['started_ms'], now_ms)}"))
    sync = info["sync"]
    lines.append(_row("last sync", moment(sync["last_success_ms"], now_ms)))
    if sync["last_error"]:
        when = f"{moment(sync['last_error_ms'], now_ms)}: " if sync["last_error_ms"] else ""
        lines.append(_row("sync error", f"{when}{sync['last_error']}"))
    if sync["refused"]:
        lines.append(_row("refused", sync["refused"]))
    if sync["clock_offset_ms"] is not None:
        lines.append(_row("clock", offset(sync["clock_offset_ms"])))
    if sync["last_success_ms"] is not None:
        lines.append(_row("central", f"head seq {sync['head_seq']}, {sync['lag']} behind"))
    lines += [f"[bold yellow]⚠ {escape(w['text'])}[/]" for w in info["warnings"]]
    return lines
