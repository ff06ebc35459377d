"""A simulated serial device: a pty pair whose far end plays the scanner, relay or display."""

from __future__ import annotations

import contextlib
import os
import select
import termios
import time
import tty
from types import TracebackType


class PtyDevice:
    """Opens a pty; drivers open `port` (the tty path) while this object plays the device."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        # Raw mode on the device side: no echo, no CR/LF translation, bytes pass untouched.
        tty.setraw(slave, termios.TCSANOW)
        self.port = os.ttyname(slave)
        self._slave = slave  # kept open so the port exists until the driver opens it

    def write(self, data: bytes) -> None:
        """Send bytes to the driver (what a scanner would send)."""
        os.write(self.master, data)

    def read(self, timeout: float = 1.0, *, until: bytes | None = None, size: int = 0) -> bytes:
        """What the driver sent within `timeout`, returning early once `until` or `size` arrived."""
        out = b""
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], left)
            if not ready:
                break
            try:
                out += os.read(self.master, 4096)
            except OSError:  # the driver closed its end
                break
            if (until is not None and until in out) or (size and len(out) >= size):
                break
        return out

    def close(self) -> None:
        """Hang up: the driver's next read fails as if the device were unplugged."""
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyDevice:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
