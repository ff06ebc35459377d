"""A turnstile relay on a serial line, closed for `pulse_ms` on an admitting verdict only."""

from __future__ import annotations

import logging
import time
from typing import Any

from config.hardware import RelayConfig
from hardware.base import Counters, ReaderUnavailable, Shown
from hardware.serial_link import open_serial, serial_errors

_FAULTS: tuple[type[BaseException], ...] = (ReaderUnavailable, *serial_errors())
log = logging.getLogger("hardware.serial_relay")


def lcus_frame(channel: int, on: bool) -> bytes:
    """The 4-byte command of LCUS-type USB relay boards: A0, channel, state, checksum."""
    body = bytes([0xA0, channel, 1 if on else 0])
    return body + bytes([sum(body) & 0xFF])


class SerialRelay:
    """Pulses a relay; the port is opened on first use and reopened after a fault."""

    def __init__(self, config: RelayConfig) -> None:
        self.name = config.name
        self.config = config
        self.counters = Counters()
        self._port: Any = None

    def _set(self, on: bool) -> None:
        cfg = self.config
        if self._port is None:
            self._port = open_serial(cfg.port, cfg.baud)
            self._set_pin(False)  # a freshly opened port may raise RTS/DTR: release it at once
        if cfg.protocol in ("rts", "dtr"):
            self._set_pin(on)
            return
        if cfg.protocol == "lcus":
            frame = lcus_frame(cfg.channel, on)
        else:
            frame = f"RELAY {cfg.channel} {'ON' if on else 'OFF'}\r\n".encode()
        self._port.write(frame)
        self._port.flush()

    def _set_pin(self, on: bool) -> None:
        if self.config.protocol == "rts":
            self._port.rts = on
        elif self.config.protocol == "dtr":
            self._port.dtr = on

    def pulse(self) -> None:
        """Close the relay for pulse_ms, then open it again (always, even if the wait fails)."""
        try:
            self._set(True)
            try:
                time.sleep(self.config.pulse_ms / 1000)
            finally:
                self._set(False)
            self.counters.add("pulses")
        except _FAULTS as exc:
            self.counters.add("faults")
            log.error(
                "relay pulse failed: %s",
                exc,
                extra={"event": "relay.fault", "actuator": self.name},
            )
            self._drop_port()

    def show(self, shown: Shown) -> None:
        """Pulse on an admitting verdict; a refusal never touches the relay."""
        if shown.admits:
            self.pulse()

    def _drop_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except serial_errors():
                pass

    def close(self) -> None:
        """Leave the relay open (released) and close the port."""
        if self._port is not None:
            try:
                self._set(False)
            except serial_errors():
                pass
        self._drop_port()
