"""The history of central's that the replica's cursor belongs to (`sync.protocol.HISTORY_HEADER`):
stored with the cursor a snapshot sets, kept across a restart, adopted only when unknown."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from edge.sample import SampleFestival
from edge.store import Store
from sync.client import CentralUnavailable
from sync.snapshot import SnapshotPart
from tests.edge.conftest import DeviceFactory

OURS, THEIRS = "7716242452624578704.16384.1", "7716242452624578704.16390.1"


async def _stream(sample: SampleFestival, *, cut: bool = False) -> AsyncIterator[SnapshotPart]:
    snap = sample.snapshot
    yield SnapshotPart("header", seq=snap.seq, festival_id=snap.festival_id)
    for table, rows in snap.tables.items():
        if rows:
            yield SnapshotPart("rows", table=table, rows=rows)
    if cut:
        raise CentralUnavailable("stream cut")
    yield SnapshotPart("end", seq=snap.seq + 3)


async def test_a_snapshot_stores_its_history_with_its_cursor_and_a_restart_keeps_both(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device(load=False)
    await device.store.apply_snapshot_parts(_stream(sample), lambda: OURS)
    assert (device.store.cursor, device.store.history) == (sample.snapshot.seq + 3, OURS)
    store = await Store.open(device.store.path.parent)
    try:
        assert (store.cursor, store.history) == (sample.snapshot.seq + 3, OURS)
    finally:
        await store.close()


async def test_a_cut_stream_leaves_the_previous_history(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device(load=False)
    await device.store.apply_snapshot_parts(_stream(sample), lambda: OURS)
    with pytest.raises(CentralUnavailable):
        await device.store.apply_snapshot_parts(_stream(sample, cut=True), lambda: THEIRS)
    assert device.store.history == OURS


async def test_a_snapshot_of_no_stated_history_leaves_none(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device(load=False)
    await device.store.apply_snapshot_parts(_stream(sample), lambda: OURS)
    await device.store.apply_snapshot(sample.snapshot)  # a file: whose history is not known
    assert device.store.history is None


async def test_a_history_is_adopted_only_when_none_is_known(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device()  # loaded from a file: no history known
    assert device.store.history is None
    await device.store.adopt_history(OURS)
    assert device.store.history == OURS
    await device.store.adopt_history(THEIRS)
    assert device.store.history == OURS
