"""A device's clocks: the wall clock for timestamps, a monotonic clock for durations, and
central's time as last learned, carried forward on the monotonic clock.

Durations a device relies on (how long since central last answered, so whether a bar may
spend beyond its offline allowance) must not come from differences of wall-clock times:
setting the clock back a day made an offline bar count as online. The monotonic clock is
``CLOCK_BOOTTIME``: it counts time spent suspended and is never set, and it is shared by
every process of one boot, so a contact recorded by the daemon can be placed by a CLI
command too. A contact from another boot cannot be placed (its monotonic reading means
nothing now), nor can one that appears to lie in the future; both count as no contact.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from sync.hlc import trusted_ms

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)  # Linux; elsewhere monotonic


def wall_clock_ms() -> int:
    """The real wall clock in unix milliseconds."""
    return time.time_ns() // 1_000_000


def boot_clock_ms() -> int:
    """Milliseconds on this boot's monotonic clock (suspend included; never set)."""
    return time.clock_gettime_ns(_BOOTTIME) // 1_000_000


def read_boot_id() -> str:
    """This boot's id (changes at every boot); where the system does not say, an id of this
    process, so contacts it records itself can still be placed and no other's can."""
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return f"process-{uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class CentralContact:
    """Central answered: its clock read `central_ms` at `at_ms` of boot `boot_id`'s clock."""

    boot_id: str
    at_ms: int
    central_ms: int

    def to_json(self) -> str:
        """The contact as stored in the replica's sync state."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> CentralContact | None:
        """A stored contact, or None when absent or unreadable (then it counts as none)."""
        if not text:
            return None
        try:
            raw = json.loads(text)
            return cls(str(raw["boot_id"]), int(raw["at_ms"]), int(raw["central_ms"]))
        except (ValueError, TypeError, KeyError):
            return None


class DeviceClock:
    """Where a device reads time: `wall` for timestamps, `monotonic` for how long ago."""

    def __init__(
        self,
        wall: Callable[[], int] = wall_clock_ms,
        monotonic: Callable[[], int] = boot_clock_ms,
        *,
        boot_id: str | None = None,
        contact: CentralContact | None = None,
    ) -> None:
        self.wall = wall
        self.monotonic = monotonic
        self.boot_id = read_boot_id() if boot_id is None else boot_id
        self.last_contact = contact

    def wall_ms(self) -> int:
        """The wall clock now (through `wall`, which a test may replace)."""
        return self.wall()

    def record_contact(self, central_ms: int) -> CentralContact:
        """Central answered just now with its clock at `central_ms`."""
        self.last_contact = CentralContact(self.boot_id, self.monotonic(), central_ms)
        return self.last_contact

    def since_contact_ms(self) -> int | None:
        """Milliseconds since central last answered, or None when that cannot be placed."""
        contact = self.last_contact
        if contact is None or contact.boot_id != self.boot_id:
            return None
        elapsed = self.monotonic() - contact.at_ms
        return elapsed if elapsed >= 0 else None

    def central_ms(self) -> int | None:
        """Central's clock now, as last learned and carried forward, or None if unknown."""
        elapsed = self.since_contact_ms()
        if elapsed is None or self.last_contact is None:
            return None
        return self.last_contact.central_ms + elapsed

    def trusted_ms(self, wall_ms: int) -> int:
        """The time to decide by: `wall_ms`, unless it is further from central's time (as
        last learned) than a device's clock may be, which then stands in for it."""
        return trusted_ms(wall_ms, self.central_ms())
