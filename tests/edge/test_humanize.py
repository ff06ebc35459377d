"""Times for people: local wall time and how long ago, with a pinned "now" and time zone."""

from __future__ import annotations

import pytest

from edge.humanize import ago, local_time, moment, offset
from tests.edge.conftest import NOW_MS, NOW_SHOWN


@pytest.mark.usefixtures("fixed_tz")
def test_an_instant_is_shown_in_local_time_with_how_long_ago() -> None:
    assert local_time(NOW_MS) == NOW_SHOWN
    assert moment(NOW_MS - 180_000, NOW_MS) == f"{local_time(NOW_MS - 180_000)} (3 min ago)"
    assert moment(None, NOW_MS) == "never"


@pytest.mark.parametrize(
    ("before_ms", "shown"),
    [
        (0, "just now"),
        (9_999, "just now"),
        (-9_999, "just now"),
        (10_000, "10 s ago"),
        (59_999, "59 s ago"),
        (60_000, "1 min ago"),
        (180_000 + 59_000, "3 min ago"),
        (3 * 3_600_000 + 5, "3 h ago"),
        (2 * 86_400_000, "2 d ago"),
        (-300_000, "in 5 min"),  # the clock was set back since
    ],
)
def test_how_long_ago(before_ms: int, shown: str) -> None:
    assert ago(NOW_MS - before_ms, NOW_MS) == shown


@pytest.mark.parametrize(
    ("offset_ms", "shown"),
    [
        (400, "in step (+400 ms)"),
        (-999, "in step (-999 ms)"),
        (1_250, "central 1.2 s ahead"),
        (-90_000, "central 1 min behind"),
    ],
)
def test_clock_offset_in_words(offset_ms: int, shown: str) -> None:
    assert offset(offset_ms) == shown
