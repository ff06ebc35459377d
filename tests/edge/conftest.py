"""Fixtures for device-side tests: a sample festival in real SQLite files, with a pinned clock."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from config.vocab import Role
from edge.device import Device
from edge.sample import SampleFestival, build_sample

NOW = 1_790_000_000  # unix seconds, pinned: decisions never read the real clock in tests
NOW_MS = NOW * 1000
# Local time in tests that show times to people: a POSIX zone rule (no tz database needed),
# two hours east of UTC and called "FGT"; NOW there.
TZ = "FGT-2"
NOW_SHOWN = "2026-09-21 16:13:20 FGT"


class Clock:
    """A settable wall clock in unix milliseconds, with a monotonic clock beside it."""

    def __init__(self, seconds: int = NOW) -> None:
        self.ms = seconds * 1000
        self.mono_ms = 5_000_000  # since "boot"

    def __call__(self) -> int:
        return self.ms

    def monotonic(self) -> int:
        """The monotonic clock: moved by time passing, never by setting the wall clock."""
        return self.mono_ms

    def advance(self, seconds: float) -> None:
        """Time passes: both clocks move."""
        self.ms += int(seconds * 1000)
        self.mono_ms += int(seconds * 1000)

    def set_wall(self, seconds: float) -> None:
        """Someone sets the wall clock (by `seconds`, back when negative); no time passes."""
        self.ms += int(seconds * 1000)


@pytest.fixture
def fixed_tz() -> Iterator[None]:
    """Local time is TZ for the test; the process's zone is restored afterwards."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = TZ
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.fixture(scope="session")
def sample() -> SampleFestival:
    return build_sample(seed=7, now=NOW, tickets=60)


@pytest.fixture
def clock() -> Clock:
    return Clock()


DeviceFactory = Callable[..., Awaitable[Device]]


@pytest.fixture
async def make_device(
    tmp_path: Path, sample: SampleFestival, clock: Clock
) -> AsyncIterator[DeviceFactory]:
    opened: list[Device] = []

    async def make(
        role: Role = Role.GATE, *, name: str = "dev", load: bool = True, **kw: Any
    ) -> Device:
        defaults: dict[str, Any] = {"zone": "General"} if role is Role.GATE else {}
        if role is Role.BAR:
            defaults = {"vendor": "Main Bar"}
        device = await Device.open(
            tmp_path / name, role=role, clock=clock, monotonic=clock.monotonic, **(defaults | kw)
        )
        if load:
            await device.store.apply_snapshot(sample.snapshot)
        opened.append(device)
        return device

    yield make
    for device in opened:
        await device.close()


def dump(path: Path, *, skip: tuple[str, ...] = ("journal",)) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but `skip`, read with a separate plain sqlite3 connection."""
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if r[0] not in skip
        ]
        return {n: sorted(conn.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in names}
    finally:
        conn.close()


def journal_rows(path: Path) -> list[tuple[Any, ...]]:
    """The journal as (device_seq, kind, verdict, delta) rows."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT device_seq, kind, verdict, delta FROM journal ORDER BY device_seq"
        ).fetchall()
    finally:
        conn.close()
