"""The outside-code entropy estimate: shapes, shared framing, the count of codes, one rule."""

from __future__ import annotations

import math
import random
import uuid

import pytest

from central import code_entropy as ce


@pytest.mark.parametrize(
    ("code", "length", "alphabet", "bits"),
    [
        ("123456", 6, "0-9", 19.93),
        ("d41d8cd98f00b204", 16, "0-9a-f", 64.0),
        ("JBSWY3DPEHPK3PXPJBSWY3DPEH", 26, "base32 A-Z2-7", 130.0),
        ("7KQ9-MZ4X-HT2W", 12, "Crockford base32", 60.0),  # dashes group, they add nothing
        ("7KQ9-MZ4X-HT2L", 12, "0-9A-Z", 62.04),
        ("aZ9+bQ7", 7, "base64", 42.0),
        ("tïckët42", 8, "printable ASCII and 2 other characters", 52.8),
        ("--", 0, "0-9", 0.0),
    ],
)
def test_a_code_counts_its_characters_in_the_smallest_alphabet_that_holds_them(
    code: str, length: int, alphabet: str, bits: float
) -> None:
    got = ce.shape(code)
    assert (got.length, got.alphabet) == (length, alphabet)
    assert got.bits == pytest.approx(bits, abs=0.01)


def test_a_uuid_counts_its_32_hex_digits() -> None:
    assert ce.code_bits(str(uuid.uuid4())) == 128


def test_framing_shared_by_every_code_counts_for_nothing() -> None:
    # An outside system's counter behind a constant prefix: 999 codes, 3 digits that vary.
    codes = [f"EXT-2025-{i:06d}" for i in range(1, 1000)]
    got = ce.assess(codes, len(codes))
    assert got.weakest.length == 3 and got.bits[0] == 9
    assert got.effective_bits == pytest.approx(3 * math.log2(10) - math.log2(999))
    alone = ce.assess(codes[:1], 1)  # one code: nothing to compare, no framing found
    assert alone.weakest.length == 13


def test_the_count_of_codes_is_subtracted_and_the_weakest_code_decides() -> None:
    rng = random.Random(14)
    codes = ["".join(rng.choices("0123456789ABCDEF", k=20)) for _ in range(99)] + ["123456"]
    got = ce.assess(codes, 1000)  # 900 already stored
    assert (got.weakest_row, got.codes) == (100, 1000)
    assert got.effective_bits == pytest.approx(19.93 - math.log2(1000), abs=0.01)
    assert got.weak
    assert ce.needed_bits(1000) == 74  # 64 + log2(1000), rounded up


def test_six_digit_codes_fall_in_under_a_second_and_64_bits_take_millennia() -> None:
    six = ce.assess([f"{i:06d}" for i in range(0, 1_000_000, 997)], 1004)
    assert ce.guess_time(six.effective_bits) == "under a second"
    assert "under a second" in six.refusal() and "19.9 bits" in six.refusal()
    assert "74 bits" in six.refusal() and "--accept-weak-codes" in six.refusal()
    assert "stolen gate" in six.warning()
    assert ce.guess_time(ce.MIN_BITS) == "13,048 years"
    assert ce.guess_time(45) == "9 days"


def test_an_import_and_the_festival_view_apply_the_same_rule() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 10**6)
        bits = rng.randint(50, 90)
        histogram: dict[int | None, int] = {bits: n}
        weak_view = ce.summarize(histogram).weak == n
        assert weak_view == ce.is_weak(bits, n)
    summary = ce.summarize({19: 1000, 130: 24, None: 3})
    assert (summary.codes, summary.weak, summary.unrated, summary.lowest_bits) == (
        1027,
        1000,
        3,
        19,
    )
    assert summary.effective_bits == 9.0
    assert ce.summarize({}).lowest_bits is None
