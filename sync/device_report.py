"""What a device says about itself on each changes request: its software version and whether
each of its readers works (`sync.protocol.SOFTWARE_HEADER`, `READERS_HEADER`).

Both are optional metadata: central records them for ops when they are well formed and
ignores them otherwise (`parse_software`, `parse_readers` answer None), so a device with a
bad value still syncs. Their bounds keep a device row small whatever a device sends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Final
from urllib.parse import quote, unquote

MAX_SOFTWARE_CHARS: Final = 64
# A PEP 440 version (with a local part, e.g. ``1.2.0.dev3+g1a2b3c``) is spelled with these.
SOFTWARE_PATTERN: Final = re.compile(rf"[0-9A-Za-z.+!_-]{{1,{MAX_SOFTWARE_CHARS}}}")
MAX_READERS: Final = 16
MAX_READER_NAME_CHARS: Final = 64  # as `config.hardware` bounds a reader's name
# The header's value: room for every reader with an ASCII name; a device leaves out what
# does not fit (names of many non-ASCII characters grow threefold or more percent-encoded).
MAX_READERS_CHARS: Final = 2048
UP: Final = "up"
DOWN: Final = "down"
# One reader as sent: its percent-encoded name (only unreserved characters and escapes).
_ITEM: Final = re.compile(rf"([0-9A-Za-z%._~-]+)=({UP}|{DOWN})")


@cache
def software_version() -> str:
    """This installation's festgate version (its package metadata), or ``unknown``."""
    try:
        return version("festgate")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def encode_readers(readers: Mapping[str, bool]) -> str:
    """`readers` (name → working) as the header's value, in name order, as many as fit its
    bounds (`MAX_READERS`, `MAX_READERS_CHARS`)."""
    value = ""
    for count, (name, up) in enumerate(sorted(readers.items())):
        item = f"{quote(name, safe='')}={UP if up else DOWN}"
        longer = f"{value},{item}" if value else item
        if count == MAX_READERS or len(longer) > MAX_READERS_CHARS:
            break
        value = longer
    return value


def parse_software(value: str | None) -> str | None:
    """The version a device sent, or None when it sent none or one out of bounds."""
    if value is None or not SOFTWARE_PATTERN.fullmatch(value):
        return None
    return value


def parse_readers(value: str | None) -> dict[str, bool] | None:
    """The readers a device sent (an empty value: it has none), or None when it sent none or
    a value out of bounds: too long, too many readers, a name that is empty, too long, not
    UTF-8 or holds a control character (a NUL included), a state other than up or down."""
    if value is None or len(value) > MAX_READERS_CHARS:
        return None
    if value == "":
        return {}
    items = value.split(",")
    if len(items) > MAX_READERS:
        return None
    readers: dict[str, bool] = {}
    for item in items:
        match = _ITEM.fullmatch(item)
        if match is None:
            return None
        try:
            name = unquote(match[1], errors="strict")
        except UnicodeDecodeError:
            return None
        good = len(name) <= MAX_READER_NAME_CHARS and name.isprintable()
        if not good or name in readers:
            return None
        readers[name] = match[2] == UP
    return readers
