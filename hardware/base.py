"""The two small protocols every driver implements: a code reader and an actuator."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from config.vocab import MAX_CODE_CHARS

log = logging.getLogger("hardware")

# Refusing an overlong code early keeps a 3 KB QR from reaching the journal or the display.


@dataclass(frozen=True, slots=True)
class NdefRecord:
    """One NDEF record read from a tag: its type, its name (id) and its payload bytes."""

    type: str
    name: str
    data: bytes
    text: str | None = None  # the decoded text of a Text or URI record


@dataclass(frozen=True, slots=True)
class Scan:
    """What a reader saw: a code's text, or a tag's id with any NDEF records, and when."""

    source: str
    text: str | None = None
    tag_uid: bytes | None = None
    ndef: tuple[NdefRecord, ...] = ()
    at: float = field(default_factory=time.time)

    @property
    def label(self) -> str:
        """The text, or the tag id in hex, for logs and `hardware test`."""
        if self.text is not None:
            return self.text
        return self.tag_uid.hex() if self.tag_uid is not None else ""


@dataclass(frozen=True, slots=True)
class Shown:
    """A verdict as an actuator receives it: code, human text, and whether it admits."""

    code: str
    text: str
    admits: bool
    source: str = ""


class ReaderUnavailable(Exception):
    """The reader's hardware is missing or stopped answering: retry later (not a config error)."""


class HardwareUnsupported(Exception):
    """A driver's library is missing on this machine: the plugin is disabled, not retried."""


class Counters:
    """Thread-safe counters of dropped input and faults, by reason (read by logs and tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, reason: str, n: int = 1) -> None:
        """Count `n` more of `reason`."""
        with self._lock:
            self._counts[reason] += n

    def __getitem__(self, reason: str) -> int:
        with self._lock:
            return self._counts[reason]

    def snapshot(self) -> dict[str, int]:
        """A copy of every count."""
        with self._lock:
            return dict(self._counts)


class ReaderState:
    """Whether a reader's device is open and answering right now. Only its driver knows:
    it sets this from its worker thread once the device opened (and, for a camera, once
    frames arrive) and clears it when opening fails or the device goes away."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._up = False
        self._watchers: list[Callable[[bool], None]] = []

    @property
    def up(self) -> bool:
        """True while the device is open and answering."""
        with self._lock:
            return self._up

    def set(self, up: bool) -> None:
        """Record a change; watchers hear it once, in order (they are called under the lock,
        so a watcher must only hand the value on, never block or set the state itself)."""
        with self._lock:
            if up == self._up:
                return
            self._up = up
            for watcher in self._watchers:
                watcher(up)

    def watch(self, watcher: Callable[[bool], None]) -> None:
        """Call `watcher(up)` now with the current state and again at each change."""
        with self._lock:
            self._watchers.append(watcher)
            watcher(self._up)


def clean_text(payload: bytes, *, source: str, counters: Counters) -> str | None:
    """Decode a code's bytes to text, or count and log why it is dropped (binary, too long)."""
    if len(payload) > MAX_CODE_CHARS * 4:
        counters.add("too_long")
        log.warning("dropped an overlong code", extra={"event": "code.too_long", "reader": source})
        return None
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        counters.add("binary")
        log.warning("dropped a binary code", extra={"event": "code.binary", "reader": source})
        return None
    if len(text) > MAX_CODE_CHARS:
        counters.add("too_long")
        log.warning("dropped an overlong code", extra={"event": "code.too_long", "reader": source})
        return None
    if not text or not text.isprintable():
        counters.add("binary" if text else "empty")
        log.warning("dropped an unprintable code", extra={"event": "code.binary", "reader": source})
        return None
    return text


@runtime_checkable
class CodeReader(Protocol):
    """Yields scans from blocking hardware; runs in its own worker thread."""

    name: str
    counters: Counters
    state: ReaderState  # up only while the device is open and answering

    def scans(self, stop: threading.Event) -> Iterator[Scan]:
        """Open the hardware, yield scans until `stop` is set or the source ends, then close.

        Sets `state` up once the hardware opened and down when it closes or fails. Raises
        ReaderUnavailable when the hardware goes away; the caller reopens with backoff.
        """
        ...


@runtime_checkable
class Actuator(Protocol):
    """Shows verdicts (lamp, display, beep, relay); every call runs in its own worker thread."""

    name: str
    counters: Counters

    def show(self, shown: Shown) -> None:
        """Show one verdict; blocking is fine (a relay pulse takes its pulse length)."""
        ...

    def close(self) -> None:
        """Release the hardware, leaving it safe (relay open, lamp off)."""
        ...
