"""The hybrid logical clock: monotone, and bounded by central's time when the device has it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from config.vocab import MAX_OFFSET_MS
from sync.hlc import MAX_WALL_MS, HybridClock, pack, trusted_ms, wall_ms_of

T = 1_790_000_000_000
YEARS_5 = 5 * 365 * 86_400_000


def test_without_a_reference_the_hlc_never_goes_backwards() -> None:
    clock = HybridClock()
    first = clock.now(T)
    assert clock.now(T - 60_000) == first + 1  # the wall clock went back: same ms, next count
    assert clock.now(T + 5) == pack(T + 5, 0)


def test_a_wall_reading_far_from_central_is_replaced_by_central_time() -> None:
    clock = HybridClock()
    assert clock.now(T + YEARS_5, reference_ms=T) == pack(T, 0)
    assert clock.now(T - 86_400_000, reference_ms=T + 10) == pack(T + 10, 0)
    assert clock.now(T + 20 + MAX_OFFSET_MS, reference_ms=T + 20) == pack(T + 20 + MAX_OFFSET_MS, 0)


def test_a_persisted_time_beyond_central_is_pulled_back_on_the_next_event() -> None:
    clock = HybridClock(pack(T + YEARS_5, 3))  # a glitch persisted before a contact
    assert clock.now(T, reference_ms=T) == pack(T, 0)
    assert clock.now(T + 1, reference_ms=T + 1) == pack(T + 1, 0)


def test_observing_central_heals_a_glitched_hlc_and_else_merges() -> None:
    glitched = HybridClock(pack(T + YEARS_5, 0))
    glitched.observe(pack(T, 7), T)
    assert wall_ms_of(glitched.last) == T
    assert glitched.last > pack(T, 7)  # still after central's timestamp
    ahead = HybridClock(pack(T + 1000, 0))  # within the bound: kept, as any HLC merge does
    ahead.observe(pack(T, 0), T)
    assert ahead.last == pack(T + 1000, 1)


def test_physical_time_fits_a_signed_64_bit_hlc() -> None:
    assert trusted_ms(-5, None) == 0
    assert trusted_ms(10**20, None) == MAX_WALL_MS
    assert pack(MAX_WALL_MS, 0xFFFF) < 2**63


@given(st.lists(st.tuples(st.integers(-(10**6), 10**6), st.booleans()), max_size=40))
def test_with_a_steady_reference_timestamps_strictly_increase_and_stay_in_bound(
    steps: list[tuple[int, bool]],
) -> None:
    clock = HybridClock()
    reference = T
    last = 0
    for jitter, jump in steps:
        reference += 1
        wall = reference + (YEARS_5 if jump else jitter)
        stamp = clock.now(wall, reference_ms=reference)
        assert stamp > last
        assert wall_ms_of(stamp) <= reference + MAX_OFFSET_MS
        last = stamp
