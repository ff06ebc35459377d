"""Shared helpers for the hardware tests: run a reader in a thread, spawn a tag emulator."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from hardware.base import CodeReader, Scan


class Running:
    """A reader running in its worker thread, as the daemon runs it, collecting its scans."""

    def __init__(self, reader: CodeReader) -> None:
        self.reader = reader
        self.stop_event = threading.Event()
        self.scans: list[Scan] = []
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()

    def _work(self) -> None:
        try:
            for scan in self.reader.scans(self.stop_event):
                self.scans.append(scan)
        except BaseException as exc:
            self.errors.append(exc)

    def wait(self, count: int, timeout: float = 10.0) -> list[Scan]:
        """Wait for `count` scans (or the reader's end); return what arrived."""
        wait_for(lambda: len(self.scans) >= count or not self.thread.is_alive(), timeout)
        return list(self.scans)

    def stop(self) -> list[Scan]:
        """Stop the reader, re-raise what it raised, return every scan."""
        self.stop_event.set()
        self.thread.join(5)
        assert not self.thread.is_alive(), "reader did not stop"
        if self.errors:
            raise self.errors[0]
        return list(self.scans)


def collect(reader: CodeReader, *, count: int | None = None, timeout: float = 10.0) -> list[Scan]:
    """Run a reader until it ends, `count` scans arrive or `timeout` passes."""
    running = Running(reader)
    if count is None:
        running.thread.join(timeout)
    else:
        running.wait(count, timeout)
    return running.stop()


def free_udp_port() -> int:
    """A UDP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TagEmulator:
    """`python -m hardware.sim_nfc_tag` in a second process, started and waited for."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hardware.sim_nfc_tag", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", self.proc.stderr.read() if self.proc.stderr else line

    def stop(self) -> None:
        """End the emulator (a tag leaving the field)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.communicate(timeout=5)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll until `predicate()` holds or `timeout` passes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
