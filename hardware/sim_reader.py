"""A simulated code reader: lines from a file (followed like `tail -f`) or pushed by code."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path

from config.hardware import SimulatedReaderConfig
from hardware.base import Counters, ReaderState, Scan, clean_text

POLL_S = 0.05
TAG_PREFIX = "tag:"


def parse_line(line: str, source: str, counters: Counters) -> Scan | None:
    """`tag:04a1b2...` is a wristband tap (hex UID); any other line is a code's text."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    if line.startswith(TAG_PREFIX):
        try:
            return Scan(source, tag_uid=bytes.fromhex(line[len(TAG_PREFIX) :]))
        except ValueError:
            counters.add("bad_tag")
            return None
    text = clean_text(line.encode(), source=source, counters=counters)
    return Scan(source, text=text) if text is not None else None


class SimulatedReader:
    """Replays a feed file and then follows it, so `echo CODE >> feed` scans a code live."""

    def __init__(self, config: SimulatedReaderConfig) -> None:
        self.name = config.name
        self.feed = Path(config.feed) if config.feed else None
        self.counters = Counters()
        self.state = ReaderState()
        self._pushed: queue.Queue[str] = queue.Queue()

    def push(self, line: str) -> None:
        """Inject one line as if it were read (tests, `hardware test`)."""
        self._pushed.put(line)

    def scans(self, stop: threading.Event) -> Iterator[Scan]:
        """Yield pushed lines and the feed's lines, old and new, until `stop`."""
        if self.feed is not None:
            # A simulator starts with an empty feed rather than failing until someone writes.
            self.feed.parent.mkdir(parents=True, exist_ok=True)
            self.feed.touch(exist_ok=True)
        handle = self.feed.open("r", encoding="utf-8", errors="replace") if self.feed else None
        partial = ""
        self.state.set(True)
        try:
            while not stop.is_set():
                got = False
                try:
                    scan = parse_line(self._pushed.get_nowait(), self.name, self.counters)
                    got = True
                    if scan is not None:
                        yield scan
                except queue.Empty:
                    pass
                if handle is not None:
                    chunk = handle.readline()
                    if chunk:
                        got = True
                        # A writer may be mid-line: keep the piece until its newline arrives.
                        partial += chunk
                        if partial.endswith("\n"):
                            scan = parse_line(partial, self.name, self.counters)
                            partial = ""
                            if scan is not None:
                                yield scan
                if not got:
                    stop.wait(POLL_S)
        finally:
            self.state.set(False)
            if handle is not None:
                handle.close()
