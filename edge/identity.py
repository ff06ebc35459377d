"""What a data dir's device is (role, zone, vendor) and who said so: the config it runs with,
its enrolment, or the `catalog load` that set it up, which the data dir remembers."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from config.device import DeviceConfig
from config.vocab import Role
from edge.decide import BadInput
from edge.store import Store
from edge.sync_link import Credentials
from sync.catalog import Snapshot

STATE_KEY = "identity"  # in sync_state, beside the catalog it was chosen for
CONFIG, ENROLMENT, CATALOG_LOAD = "config", "enrolment", "catalog load"


@dataclass(frozen=True, slots=True)
class Identity:
    """A device's role and place, and where they come from (`source`)."""

    role: Role | None
    zone: str | None = None
    vendor: str | None = None
    source: str = "not set"


def resolve(
    cfg: DeviceConfig | None, creds: Credentials | None, stored: Identity | None
) -> Identity:
    """The identity a command runs as: the config's, else the enrolment's, else the stored one."""
    if cfg is not None:
        return Identity(cfg.device.role, cfg.device.zone, cfg.device.vendor, CONFIG)
    if creds is not None:
        return Identity(Role(creds.role), creds.zone_id, creds.vendor_id, ENROLMENT)
    return stored or Identity(None)


async def recorded(store: Store) -> Identity | None:
    """What a `catalog load` recorded here, if anything."""
    raw = await store.get_state(STATE_KEY)
    if raw is None:
        return None
    data: dict[str, Any] = json.loads(raw)
    return Identity(Role(data["role"]), data.get("zone"), data.get("vendor"), data["source"])


async def record(store: Store, identity: Identity) -> None:
    """Remember the identity a catalog was loaded for."""
    await store.set_state(STATE_KEY, json.dumps(asdict(identity)))


def check_role(identity: Identity, wanted: Role, data_dir: Path) -> None:
    """Refuse to act as `wanted` on a device set up as something else."""
    if identity.role is not None and identity.role is not wanted:
        raise BadInput(
            "wrong_role",
            f"{data_dir} is a {identity.role} (set by its {identity.source}), not a {wanted}: "
            f"point -d or -c at a {wanted}, or set one up in a new data dir with "
            f"`festgate catalog load FILE -d NEW_DIR --role {wanted}`",
        )


def for_load(
    current: Identity,
    cfg: DeviceConfig | None,
    snapshot: Snapshot,
    data_dir: Path,
    *,
    role: Role | None,
    zone: str | None,
    vendor: str | None,
) -> Identity:
    """What a `catalog load` sets up: the config's identity, or what the tech chose (a gate by
    default), checked against what the data dir already is and against the catalog."""
    if current.source == ENROLMENT:
        # Central owns an enrolled device's catalog: a file would move its feed cursor.
        raise BadInput(
            "enrolled",
            f"{data_dir} is enrolled and gets its catalog from central: "
            f"run `festgate sync -d {data_dir}` instead",
        )
    if cfg is not None:
        if role or zone or vendor:
            raise BadInput(
                "bad_option",
                "this device runs from a config: set role, zone and vendor in its [device] "
                "section, not with --role, --zone or --vendor",
            )
        chosen = resolve(cfg, None, None)
    else:
        chosen_role = role or current.role or Role.GATE
        same = current.role is chosen_role  # a reload keeps the place unless a new one is given
        if (zone and chosen_role is not Role.GATE) or (vendor and chosen_role is not Role.BAR):
            raise BadInput(
                "bad_option", f"--zone is for a gate and --vendor for a bar, not a {chosen_role}"
            )
        chosen = Identity(
            chosen_role,
            zone or (current.zone if same else None),
            vendor or (current.vendor if same else None),
            CATALOG_LOAD,
        )
    check_role(current, chosen.role or Role.GATE, data_dir)
    return Identity(
        chosen.role,
        _named(snapshot, "zone", chosen.zone),
        _named(snapshot, "vendor", chosen.vendor),
        chosen.source,
    )


def _named(snapshot: Snapshot, table: Literal["zone", "vendor"], ref: str | None) -> str | None:
    """The catalog's name for a zone or vendor given by id or name (any case)."""
    if ref is None:
        return None
    rows = snapshot.tables.get(table, [])
    for row in rows:
        if ref == row.get("id") or ref.casefold() == str(row.get("name", "")).casefold():
            return str(row["name"])
    have = ", ".join(sorted(str(r.get("name")) for r in rows)) or "none"
    raise BadInput(f"unknown_{table}", f"no {table} {ref!r} in this catalog (it has: {have})")
