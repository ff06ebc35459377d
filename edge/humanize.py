"""Times for people: local wall time and how long ago ("3 min ago"); `--json` keeps unix ms."""

from __future__ import annotations

from datetime import UTC, datetime

JUST_NOW_S = 10  # closer than this to now reads as "just now", in either direction
_UNITS = ((86_400, "d"), (3_600, "h"), (60, "min"), (1, "s"))


def local_time(ms: int) -> str:
    """A unix-ms instant as this machine's local time, with its zone's abbreviation."""
    # astimezone() with no argument converts to the zone the C library has (TZ, /etc/localtime).
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def span(seconds: float) -> str:
    """A length of time in its largest whole unit: "45 s", "3 min", "2 h", "5 d"."""
    seconds = abs(seconds)
    for size, unit in _UNITS:
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:.1f} s"


def ago(ms: int, now_ms: int) -> str:
    """How long before `now_ms` the instant `ms` was: "just now", "3 min ago", "in 2 h"."""
    seconds = (now_ms - ms) / 1000
    if abs(seconds) < JUST_NOW_S:
        return "just now"
    # A future instant: this machine's clock was set back since (or central's is ahead).
    return f"{span(seconds)} ago" if seconds > 0 else f"in {span(seconds)}"


def moment(ms: int | None, now_ms: int) -> str:
    """An instant for people: "2026-09-21 16:03:05 CEST (3 min ago)", or "never"."""
    if ms is None:
        return "never"
    return f"{local_time(ms)} ({ago(ms, now_ms)})"


def offset(ms: int) -> str:
    """Central's clock minus this device's, in words: "central 1.2 s ahead", "in step"."""
    if abs(ms) < 1000:
        return f"in step ({ms:+d} ms)"
    amount = f"{abs(ms) / 1000:.1f} s" if abs(ms) < 60_000 else span(ms / 1000)
    return f"central {amount} {'ahead' if ms > 0 else 'behind'}"
