"""Fixtures for the hardware tests: a gate device on a sample festival in real SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from config.vocab import Role
from edge.device import Device
from edge.sample import SampleFestival, build_sample

NOW = 1_790_000_000  # pinned unix seconds: the festival is valid around it


@pytest.fixture(scope="session")
def sample() -> SampleFestival:
    return build_sample(seed=7, now=NOW, tickets=20)


@pytest.fixture
async def gate(tmp_path: Path, sample: SampleFestival) -> AsyncIterator[Device]:
    device = await Device.open(
        tmp_path / "gate", role=Role.GATE, zone="General", clock=lambda: NOW * 1000
    )
    await device.store.apply_snapshot(sample.snapshot)
    yield device
    await device.close()
