"""A customer display or LED/buzzer box on a serial line, driven by a small line protocol.

Each verdict is sent as three lines, each ending in CR LF::

    LED GREEN            (or LED RED)
    BEEP 1               (one beep admits; BEEP 3 refuses)
    SHOW <code>|<text>   (stable verdict code, then the human text)
"""

from __future__ import annotations

import logging
from typing import Any

from config.hardware import DisplayConfig
from hardware.base import Counters, ReaderUnavailable, Shown
from hardware.serial_link import open_serial, serial_errors

_FAULTS: tuple[type[BaseException], ...] = (ReaderUnavailable, *serial_errors())
log = logging.getLogger("hardware.serial_display")

MAX_TEXT = 64  # two lines of a 2x32 character display


def render(shown: Shown) -> bytes:
    """The bytes one verdict sends."""
    text = "".join(c if c.isprintable() and c != "|" else " " for c in shown.text)[:MAX_TEXT]
    colour, beeps = ("GREEN", 1) if shown.admits else ("RED", 3)
    lines = (f"LED {colour}", f"BEEP {beeps}", f"SHOW {shown.code}|{text}")
    return "".join(line + "\r\n" for line in lines).encode("utf-8")


class SerialDisplay:
    """Sends each verdict to the display; reopens the port after a fault."""

    def __init__(self, config: DisplayConfig) -> None:
        self.name = config.name
        self.config = config
        self.counters = Counters()
        self._port: Any = None

    def show(self, shown: Shown) -> None:
        """Send one verdict; a fault is logged and counted, never raised."""
        try:
            if self._port is None:
                self._port = open_serial(self.config.port, self.config.baud)
            self._port.write(render(shown))
            self._port.flush()
            self.counters.add("shown")
        except _FAULTS as exc:
            self.counters.add("faults")
            log.error(
                "display failed: %s", exc, extra={"event": "display.fault", "actuator": self.name}
            )
            self.close()

    def close(self) -> None:
        """Close the port."""
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except serial_errors():
                pass
