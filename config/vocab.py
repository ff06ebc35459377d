"""Words the settings share with the layers above them: what a device is for, and how long
a scanned code may be.

They live here, below `sync`, because a device's settings name its role and `config` imports
nothing above itself; the wire and both sides import them from here.
"""

from __future__ import annotations

from enum import StrEnum

# A ticket code is short (a signed code is about 100 characters); anything far longer is not
# one of ours. Readers drop longer codes before they reach the journal or the display, and
# the gate rule classifies them as garbage: here, below both hardware and edge, so that
# both hold the same bound (the one readers already enforced).
MAX_CODE_CHARS = 512

# How far a device's clock may be from central's before it is not trusted: central flags a
# device beyond it (`clock_skew`; its `clock_skew_bound_ms` setting defaults to this), and a
# device does not adopt a time beyond it (`sync.hlc`).
MAX_OFFSET_MS = 120_000


class Role(StrEnum):
    """What a device does: admit at a gate, sell at a bar, or load wristbands."""

    GATE = "gate"
    BAR = "bar"
    TOPUP = "topup"
