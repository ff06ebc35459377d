"""Wires a device's store and journal to the sync engine (the device side of the sync ports)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from edge.datadir import CREDENTIALS, DIR_MODE, write_private
from edge.device import Device
from sync.client import CentralClient
from sync.engine import SyncEngine
from sync.protocol import EnrolResponse, Event

SYNC_KEY = "sync_status"  # where the engine's status is kept in sync_state (`festgate status`)


class Credentials(BaseModel):
    """What enrolment gave this device; kept in its data dir, mode 0600."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    central_url: str
    device_id: str
    token: str
    festival_id: str
    role: str
    zone_id: str | None = None
    vendor_id: str | None = None

    @classmethod
    def from_enrolment(cls, central_url: str, answer: EnrolResponse) -> Credentials:
        """The credentials central's answer to an enrolment gives, for `central_url`."""
        return cls(central_url=central_url, **answer.model_dump(mode="json"))


def save_credentials(data_dir: Path, creds: Credentials) -> Path:
    """Write credentials readable by the owner only (created 0600, never world-readable)."""
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    path = data_dir / CREDENTIALS
    write_private(path, creds.model_dump_json(indent=1))
    return path


def load_credentials(data_dir: Path) -> Credentials | None:
    """The device's credentials, or None before enrolment."""
    path = data_dir / CREDENTIALS
    if not path.is_file():
        return None
    return Credentials.model_validate_json(path.read_text())


class DeviceOutbox:
    """The journal as the engine's outbox, plus the status record in sync_state."""

    def __init__(self, device: Device) -> None:
        self.device = device

    async def pending_batch(self, limit: int) -> list[Event]:
        """Unacknowledged events in device_seq order."""
        return await self.device.journal.pending_batch(limit)

    async def pending_count(self) -> int:
        """Events central does not hold yet."""
        return await self.device.journal.pending_count()

    async def last_seq(self) -> int:
        """The highest device_seq journaled."""
        return self.device.journal.last_seq

    async def mark_acked(self, through: int, head_seq: int) -> int:
        """Mark events acked through `through`, reflected once the cursor reaches `head_seq`."""
        return await self.device.journal.mark_acked(through, head_seq)

    async def acked_through(self) -> int:
        """The highest device_seq central acknowledged."""
        return await self.device.journal.acked_through()

    async def rewind(self, acked_through: int, head_seq: int) -> int:
        """Central was restored: events after `acked_through` are pending again."""
        return await self.device.journal.rewind(acked_through, head_seq)

    async def observe_central(self, central_hlc: int, wall_ms: int) -> None:
        """Advance the HLC past central's clock."""
        await self.device.journal.observe_central(central_hlc, wall_ms)

    async def prune(self, older_than_ms: int) -> int:
        """Forget events central holds and reflects, recorded before `older_than_ms`."""
        return await self.device.journal.prune(older_than_ms)

    async def save_status(self, status: dict[str, Any]) -> None:
        """Persist the sync status where `festgate status` reads it."""
        await self.device.store.set_state(SYNC_KEY, json.dumps(status))


def engine_for(device: Device, client: CentralClient, **kwargs: Any) -> SyncEngine:
    """A sync engine for a device; new events wake the push loop. Each answer from central is
    a contact the journal records (`Journal.observe_central`): the device is online from it."""
    kwargs.setdefault("clock", device.time.wall_ms)  # one wall clock for both
    engine = SyncEngine(client, device.store, DeviceOutbox(device), **kwargs)
    device.journal.listeners.append(engine.notify_event)
    return engine
