"""Words the settings share with the layers above them: what a device is for.

They live here, below `sync`, because a device's settings name its role and `config` imports
nothing above itself; the wire and both sides import them from here.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a device does: admit at a gate, sell at a bar, or load wristbands."""

    GATE = "gate"
    BAR = "bar"
    TOPUP = "topup"
