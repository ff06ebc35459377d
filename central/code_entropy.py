"""How much offline guessing an outside ticket code survives, estimated from its shape.

A gate checks an outside code by its keyed hash, so a stolen gate (or a copy of its disk)
holds the festival's hash key and the hash of every code: a thief can test guesses offline
against all of them at once, and needs to hit ANY valid code. What protects these codes is
their entropy, so an import estimates it and refuses codes that are too weak
(`central.imports`); signed codes need no estimate (forging one needs central's private key).

The estimate is an upper bound read from the codes' shape, never from how they were made:
framing that every code of the import shares (a prefix such as ``EXT-2025-``, a suffix) and
grouping characters (`SEPARATORS`) count for nothing; each remaining character counts
log2 of the smallest common alphabet that holds all of the code's characters (6 digits:
6 x log2(10) = 19.9 bits). A counter, a check digit or a biased generator makes the real
figure lower, which is one reason for the margin in `MIN_BITS`.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# HMAC-SHA256 guesses per second, measured on this project's 2-core build machine: 6.3e5 per
# core through `sync.hashing.code_hash` (a million 6-digit guesses in 1.9 s, the issue saw
# 2.3 s) and 5.6e6 per core in OpenSSL (`openssl speed -hmac sha256`, 32-byte inputs). A
# thief's laptop: 8 cores of OpenSSL.
LAPTOP_GUESSES_PER_S = 8 * 5.6e6
# Bits a thief must still guess to hit some valid code (bits per code minus log2 of the
# festival's outside codes). One laptop-year is 2^50.3 guesses at the rate above; 64 keeps
# 2^8 for a GPU (HMAC-SHA256 there is some hundred times a laptop's rate, not measured
# here) and 2^6 for the estimate's optimism: one laptop then needs about 13,000 years.
MIN_BITS = 64
SEPARATORS = frozenset(" -_./:")
_B32 = frozenset(string.ascii_uppercase + "234567")
_CROCKFORD = frozenset(string.digits + string.ascii_uppercase) - frozenset("ILOU")
# Common alphabets, smallest first: a code counts the first one that holds all its characters.
ALPHABETS: tuple[tuple[str, frozenset[str]], ...] = tuple(
    sorted(
        (
            ("0-9", frozenset(string.digits)),
            ("0-9a-f", frozenset("0123456789abcdef")),
            ("0-9A-F", frozenset("0123456789ABCDEF")),
            ("a-z", frozenset(string.ascii_lowercase)),
            ("A-Z", frozenset(string.ascii_uppercase)),
            ("base32 A-Z2-7", _B32),
            ("Crockford base32", _CROCKFORD),
            ("0-9a-z", frozenset(string.digits + string.ascii_lowercase)),
            ("0-9A-Z", frozenset(string.digits + string.ascii_uppercase)),
            ("a-zA-Z", frozenset(string.ascii_letters)),
            ("0-9a-zA-Z", frozenset(string.digits + string.ascii_letters)),
            ("base64", frozenset(string.digits + string.ascii_letters + "+/")),
            ("printable ASCII", frozenset(string.printable[:95])),
        ),
        key=lambda named: len(named[1]),
    )
)


@dataclass(frozen=True, slots=True)
class CodeShape:
    """What one code's estimate rests on: characters that count, their alphabet, the bits."""

    length: int
    alphabet: str
    bits: float


def shape(variable: str) -> CodeShape:
    """The estimate for a code's variable part (framing already removed)."""
    chars = [c for c in variable if c not in SEPARATORS]
    used = set(chars)
    for name, alphabet in ALPHABETS:
        if used <= alphabet:
            size, label = len(alphabet), name
            break
    else:  # beyond ASCII: count only the other characters seen, not all of Unicode
        other = used - ALPHABETS[-1][1]
        size, label = 95 + len(other), f"printable ASCII and {len(other)} other characters"
    return CodeShape(len(chars), label, len(chars) * math.log2(size) if chars else 0.0)


def code_bits(code: str) -> int:
    """The stored estimate for one code on its own (no import to find its framing in)."""
    return stored_bits(shape(code).bits)


def _shared_prefix(texts: Sequence[str]) -> int:
    # The lexicographically first and last texts share exactly what all of them share.
    first, last = min(texts), max(texts)
    n = 0
    while n < len(first) and first[n] == last[n]:
        n += 1
    return n


def _framing(codes: Sequence[str]) -> tuple[int, int]:
    """Lengths of the prefix and suffix every code shares (none for a single code)."""
    if len(codes) < 2:
        return 0, 0
    head = _shared_prefix(codes)
    return head, _shared_prefix([c[head:][::-1] for c in codes])


def needed_bits(codes: int) -> int:
    """Bits each code needs when a festival holds `codes` outside codes."""
    return math.ceil(MIN_BITS + math.log2(max(codes, 1)))


def is_weak(bits: int, codes: int) -> bool:
    """The one rule: a code of `bits` (as stored) is weak among `codes` outside codes."""
    return bits < needed_bits(codes)


def stored_bits(bits: float) -> int:
    """The figure kept in `ticket.code_bits` (rounded down: never claim more)."""
    return min(math.floor(bits), 32767)


def guess_time(bits: float) -> str:
    """How long one laptop takes, on average, to guess `bits` bits: for people."""
    seconds = 2.0**bits / LAPTOP_GUESSES_PER_S
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600)):
        if seconds >= 2 * size:
            count = seconds / size
            return "over a million years" if count > 1e6 else f"{count:,.0f} {unit}"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return "under a second" if seconds < 1 else f"{seconds:.0f} seconds"


@dataclass(frozen=True, slots=True)
class Assessment:
    """One import's outside codes judged against offline guessing."""

    bits: tuple[int, ...]  # per code, in row order: `ticket.code_bits`
    weakest_row: int  # 1 = the first record
    weakest: CodeShape
    codes: int  # the festival's outside codes once the import is in

    @property
    def effective_bits(self) -> float:
        """Bits a thief must guess to hit some valid code, through the weakest one."""
        return self.weakest.bits - math.log2(self.codes)

    @property
    def weak(self) -> bool:
        """Too weak to survive a stolen device's key (see MIN_BITS)."""
        return is_weak(stored_bits(self.weakest.bits), self.codes)

    def _risk(self) -> str:
        w = self.weakest
        return (
            f"about {w.bits:.1f} bits ({w.length} characters of {w.alphabet}), "
            f"{self.effective_bits:.1f} bits among the festival's {self.codes:,} outside codes"
        )

    def refusal(self) -> str:
        """Why the import is refused and what would pass (after ``row N:``)."""
        need = needed_bits(self.codes)
        return (
            f"outside code too weak to survive offline guessing: {self._risk()}, so the hash "
            f"key on a stolen device lets one laptop find a valid code in "
            f"{guess_time(self.effective_bits)}; codes need {need} bits here (e.g. "
            f"{math.ceil(need / math.log2(10))} random digits or {math.ceil(need / 5)} random "
            f"base32 characters), or pass --accept-weak-codes to import them anyway"
        )

    def warning(self) -> str:
        """The risk that ops took by accepting weak codes."""
        return (
            f"accepted weak outside codes, the weakest (row {self.weakest_row}) "
            f"{self._risk()}: anyone "
            f"holding a device's replica, from a stolen gate or a copy of its disk, finds a "
            f"valid code in {guess_time(self.effective_bits)} of one laptop's hashing; if a "
            f"device is lost, these tickets need new codes (docs/security.md)"
        )


def assess(codes: Sequence[str], festival_codes: int) -> Assessment:
    """Estimate each code of an import; `festival_codes` counts the festival's outside codes
    with these included (a thief tests every guess against all of them)."""
    head, tail = _framing(codes)
    shapes = [shape(c[head : len(c) - tail]) for c in codes]
    row = min(range(len(shapes)), key=lambda i: shapes[i].bits)
    return Assessment(
        bits=tuple(stored_bits(s.bits) for s in shapes),
        weakest_row=row + 1,
        weakest=shapes[row],
        codes=max(festival_codes, len(codes)),
    )


@dataclass(frozen=True, slots=True)
class OutsideCodes:
    """What a festival's stored outside codes risk, for ops."""

    codes: int
    weak: int  # codes under `needed_bits` at this festival's count
    unrated: int  # imported before estimates were kept (code_bits NULL)
    lowest_bits: int | None

    @property
    def effective_bits(self) -> float | None:
        """Bits a thief must guess to hit some valid code, through the weakest one."""
        if self.lowest_bits is None:
            return None
        return round(self.lowest_bits - math.log2(self.codes), 1)


def summarize(histogram: Mapping[int | None, int]) -> OutsideCodes:
    """Summarize a festival's outside codes from their count per `code_bits` value."""
    codes = sum(histogram.values())
    rated = [bits for bits in histogram if bits is not None]
    return OutsideCodes(
        codes=codes,
        weak=sum(n for bits, n in histogram.items() if bits is not None and is_weak(bits, codes)),
        unrated=histogram.get(None, 0),
        lowest_bits=min(rated) if rated else None,
    )
