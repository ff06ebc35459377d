"""A line-oriented barcode scanner on a serial port (pyserial): one code per terminated line."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from config.hardware import SerialScannerConfig
from hardware.base import Counters, ReaderState, ReaderUnavailable, Scan, clean_text
from hardware.faults import serial_fault
from hardware.serial_link import open_serial, serial_errors

log = logging.getLogger("hardware.serial_scanner")

TERMINATORS = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}


class LineSplitter:
    """Cuts a byte stream into lines, dropping overlong lines, noise and stale partial lines."""

    def __init__(self, terminator: bytes, max_line: int, counters: Counters, source: str) -> None:
        self.terminator = terminator
        self.max_line = max_line
        self.counters = counters
        self.source = source
        self._buf = bytearray()
        self._discarding = False  # inside an overlong line: skip up to its terminator
        self._last_byte = 0.0

    def feed(self, data: bytes, now: float) -> list[str]:
        """Add bytes received at `now`; return the complete, clean lines."""
        if data:
            self._last_byte = now
        self._buf += data
        lines = []
        while (end := self._buf.find(self.terminator)) >= 0:
            raw = bytes(self._buf[:end]).strip(b"\r\n")
            del self._buf[: end + len(self.terminator)]
            if self._discarding:  # the tail of a line already dropped as overlong
                self._discarding = False
                continue
            # Scanners set to CR often send CR LF anyway: the stray half leaves an empty line.
            if not raw:
                continue
            if len(raw) > self.max_line:
                self._overlong()
                continue
            text = clean_text(raw, source=self.source, counters=self.counters)
            if text is not None:
                lines.append(text)
        if len(self._buf) > self.max_line:
            # No terminator in sight: stop buffering and skip up to the next one.
            self._overlong()
            self._buf.clear()
            self._discarding = True
        return lines

    def _overlong(self) -> None:
        self.counters.add("overlong")
        log.warning(
            "dropped an overlong line", extra={"event": "serial.overlong", "reader": self.source}
        )

    def expire(self, now: float, timeout_s: float) -> None:
        """Drop a partial line that stopped growing (a scanner unplugged mid-code, noise)."""
        if self._buf and now - self._last_byte > timeout_s:
            self.counters.add("partial")
            log.warning(
                "dropped a partial line", extra={"event": "serial.partial", "reader": self.source}
            )
            self._buf.clear()
        if self._discarding and now - self._last_byte > timeout_s:
            self._discarding = False


class SerialScanner:
    """Reads codes from a serial barcode scanner."""

    def __init__(self, config: SerialScannerConfig) -> None:
        self.name = config.name
        self.config = config
        self.counters = Counters()
        self.state = ReaderState()

    def scans(self, stop: threading.Event) -> Iterator[Scan]:
        """Open the port and yield a scan per terminated line until `stop`."""
        cfg = self.config
        port = open_serial(cfg.port, cfg.baud, timeout=0.1)
        self.counters.add("opens")  # pyserial flushes input on open: only later bytes count
        splitter = LineSplitter(TERMINATORS[cfg.terminator], cfg.max_line, self.counters, self.name)
        self.state.set(True)
        try:
            while not stop.is_set():
                try:
                    # Read what is waiting, or block up to the port timeout for one byte, so
                    # `stop` is seen within 0.1 s.
                    data = port.read(max(1, port.in_waiting))
                except serial_errors() as exc:
                    raise ReaderUnavailable(str(serial_fault(cfg.port, exc))) from exc
                now = time.monotonic()
                for text in splitter.feed(data, now):
                    yield Scan(self.name, text=text)
                splitter.expire(now, cfg.line_timeout_s)
        finally:
            self.state.set(False)
            port.close()
