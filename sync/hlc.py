"""Hybrid logical clock: wall milliseconds in the high bits, a counter in the low 16."""

from __future__ import annotations

from dataclasses import dataclass

LOGICAL_BITS = 16
_LOGICAL_MASK = (1 << LOGICAL_BITS) - 1


def pack(wall_ms: int, logical: int) -> int:
    """Pack a physical time and a logical counter into one sortable integer."""
    return (wall_ms << LOGICAL_BITS) | (logical & _LOGICAL_MASK)


def wall_ms_of(hlc: int) -> int:
    """The physical (millisecond) part of a packed HLC."""
    return hlc >> LOGICAL_BITS


@dataclass
class HybridClock:
    """A device's HLC; `now` for local events, `observe` for a timestamp from central."""

    last: int = 0

    def now(self, wall_ms: int) -> int:
        """Timestamp a local event: never goes backwards, even if the wall clock does."""
        physical = max(wall_ms, wall_ms_of(self.last))
        logical = (self.last & _LOGICAL_MASK) + 1 if physical == wall_ms_of(self.last) else 0
        if logical > _LOGICAL_MASK:  # counter exhausted within one ms: borrow the next ms
            physical, logical = physical + 1, 0
        self.last = pack(physical, logical)
        return self.last

    def observe(self, remote: int, wall_ms: int) -> int:
        """Merge a remote HLC so that every later local timestamp sorts after it."""
        self.last = max(self.last, remote)
        return self.now(wall_ms)
