"""Hybrid logical clock: wall milliseconds in the high bits, a counter in the low 16.

A clock reading the device cannot place is never adopted: the HLC papers bound how far a
timestamp may run ahead of the reference time (their max-offset rule), so one bad reading
cannot skew every later fact. Here the reference is central's clock as the device last
learned it, carried forward on a monotonic clock (`edge.clock`); a wall reading more than
`MAX_OFFSET_MS` from it is replaced by the reference, and an HLC already beyond it (a
glitch persisted before the device could tell) is pulled back to it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Declared with the settings, since central's skew bound setting defaults to it.
from config.vocab import MAX_OFFSET_MS

LOGICAL_BITS = 16
_LOGICAL_MASK = (1 << LOGICAL_BITS) - 1
# The largest physical time an HLC can carry and still fit a signed 64-bit integer (SQLite
# INTEGER, PostgreSQL bigint): about the year 6429.
MAX_WALL_MS = (1 << (63 - LOGICAL_BITS)) - 1


FactOrder = tuple[int, str, int]


def fact_order(hlc: int, device_id: str, device_seq: int) -> FactOrder:
    """The one order of facts, device and central alike: by HLC, ties broken by device id,
    then by that device's seq (which never repeats). Device ids are central's uuids as
    canonical lower-case text, whose text order is PostgreSQL's uuid order, so central's SQL
    spells the same rule as the row comparison ``(hlc, device_id, device_seq)``."""
    return (hlc, device_id, device_seq)


def pack(wall_ms: int, logical: int) -> int:
    """Pack a physical time and a logical counter into one sortable integer."""
    return (wall_ms << LOGICAL_BITS) | (logical & _LOGICAL_MASK)


def wall_ms_of(hlc: int) -> int:
    """The physical (millisecond) part of a packed HLC."""
    return hlc >> LOGICAL_BITS


def trusted_ms(wall_ms: int, reference_ms: int | None) -> int:
    """The physical time to use: the wall clock, unless it is more than `MAX_OFFSET_MS` from
    the reference (central's time as last learned), which then stands in for it."""
    if reference_ms is not None and abs(wall_ms - reference_ms) > MAX_OFFSET_MS:
        wall_ms = reference_ms
    return min(max(wall_ms, 0), MAX_WALL_MS)


@dataclass
class HybridClock:
    """A device's HLC; `now` for local events, `observe` for a timestamp from central."""

    last: int = 0

    def now(self, wall_ms: int, reference_ms: int | None = None) -> int:
        """Timestamp a local event: never goes backwards, except to leave a time more than
        `MAX_OFFSET_MS` ahead of the reference (`reference_ms`, when the device has one)."""
        physical = trusted_ms(wall_ms, reference_ms)
        if reference_ms is not None and wall_ms_of(self.last) > reference_ms + MAX_OFFSET_MS:
            self.last = pack(physical, 0)  # a time nobody can place: start again from now
            return self.last
        if physical > wall_ms_of(self.last):
            self.last = pack(physical, 0)
            return self.last
        physical = wall_ms_of(self.last)
        logical = (self.last & _LOGICAL_MASK) + 1
        if logical > _LOGICAL_MASK:  # counter exhausted within one ms: borrow the next ms
            physical, logical = physical + 1, 0
        self.last = pack(physical, logical)
        return self.last

    def observe(self, remote: int, wall_ms: int) -> int:
        """Merge central's HLC so that every later local timestamp sorts after it, dropping a
        local time more than `MAX_OFFSET_MS` ahead of central's (central's clock is the
        reference: its word wins over a time this device cannot place)."""
        central_ms = wall_ms_of(remote)
        if wall_ms_of(self.last) > central_ms + MAX_OFFSET_MS:
            self.last = remote
        else:
            self.last = max(self.last, remote)
        return self.now(wall_ms, central_ms)
