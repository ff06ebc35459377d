"""A simulated actuator: logs what a lamp, display or relay would do, and remembers it."""

from __future__ import annotations

import logging
import threading

from config.hardware import SimulatedActuatorConfig
from hardware.base import Counters, Shown

log = logging.getLogger("hardware.sim")


class SimulatedActuator:
    """Records each verdict shown and counts the relay pulses an admitting verdict would give."""

    def __init__(self, config: SimulatedActuatorConfig) -> None:
        self.name = config.name
        self.counters = Counters()
        self.shown: list[Shown] = []
        self.closed = threading.Event()

    def show(self, shown: Shown) -> None:
        """Log and remember the verdict."""
        self.shown.append(shown)
        self.counters.add("shown")
        if shown.admits:
            self.counters.add("pulses")
        log.info(
            "%s %s: %s",
            "GREEN" if shown.admits else "RED",
            shown.code,
            shown.text,
            extra={"event": "actuator.shown", "actuator": self.name, "verdict": shown.code},
        )

    def close(self) -> None:
        """Nothing to release."""
        self.closed.set()
