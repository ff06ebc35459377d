"""Identifiers shared by device and central: UUIDv7 for events."""

from __future__ import annotations

import os
import time
import uuid


def _uuid7_int(unix_ms: int | None) -> int:
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a (12 bits)
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b (62 bits)
    return value


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """Return a UUIDv7 (RFC 9562): 48-bit millisecond time, then random bits."""
    return uuid.UUID(int=_uuid7_int(unix_ms))


def uuid7_text(unix_ms: int | None = None) -> str:
    """`str(uuid7(unix_ms))` without building a UUID object (a journal append makes one)."""
    h = f"{_uuid7_int(unix_ms):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
