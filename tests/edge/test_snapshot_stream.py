"""Bootstrap from a snapshot stream: all or nothing, indexes intact, counts checked."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge.sample import SampleFestival
from sync.client import CentralUnavailable, RawRows, SnapshotPart
from tests.edge.conftest import DeviceFactory, dump


def _indexes(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return sorted(
            r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index'") if r[0]
        )
    finally:
        conn.close()


def _parts(sample: SampleFestival, *, raw: bool = False) -> list[SnapshotPart]:
    snap = sample.snapshot
    parts = [SnapshotPart("header", seq=snap.seq, festival_id=snap.festival_id)]
    for table, rows in snap.tables.items():
        if rows:
            body: Any = RawRows(json.dumps(rows).encode(), len(rows)) if raw else rows
            parts.append(SnapshotPart("rows", table=table, rows=body))
    parts.append(SnapshotPart("end", seq=snap.seq + 5))
    return parts


async def _stream(
    parts: list[SnapshotPart], cut_after: int | None = None
) -> AsyncIterator[SnapshotPart]:
    for i, part in enumerate(parts):
        if cut_after is not None and i == cut_after:
            raise CentralUnavailable("stream cut")
        yield part


@pytest.mark.parametrize("raw", [False, True])
async def test_a_whole_stream_replaces_the_catalog(
    make_device: DeviceFactory, sample: SampleFestival, raw: bool
) -> None:
    device = await make_device(load=False)
    indexes = _indexes(device.store.path)
    rows = await device.store.apply_snapshot_parts(_stream(_parts(sample, raw=raw)))
    assert rows == sum(len(r) for r in sample.snapshot.tables.values())
    assert device.store.cursor == sample.snapshot.seq + 5
    assert _indexes(device.store.path) == indexes  # rebuilt after the bulk load
    assert (await device.scan(sample.codes["standard-8"])).verdict.code == "ok"


async def test_a_cut_stream_leaves_the_previous_catalog(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device()  # holds the sample catalog already
    before, indexes, cursor = (
        dump(device.store.path),
        _indexes(device.store.path),
        device.store.cursor,
    )
    with pytest.raises(CentralUnavailable):
        await device.store.apply_snapshot_parts(_stream(_parts(sample), cut_after=4))
    assert dump(device.store.path) == before
    assert _indexes(device.store.path) == indexes
    assert device.store.cursor == cursor


@pytest.mark.parametrize(
    ("defect", "reason"),
    [("count", "chunk says"), ("duplicate", "repeats a key"), ("no_end", "without its end line")],
)
async def test_a_bad_stream_is_refused_whole(
    make_device: DeviceFactory, sample: SampleFestival, defect: str, reason: str
) -> None:
    device = await make_device()
    before = dump(device.store.path)
    parts = _parts(sample)
    tickets = sample.snapshot.tables["ticket"]
    at = next(i for i, p in enumerate(parts) if p.table == "ticket")
    if defect == "count":
        parts[at] = SnapshotPart(
            "rows", table="ticket", rows=RawRows(json.dumps(tickets).encode(), len(tickets) + 1)
        )
    elif defect == "duplicate":
        parts[at] = SnapshotPart("rows", table="ticket", rows=[*tickets, tickets[0]])
    else:
        parts = parts[:-1]
    with pytest.raises(ValueError, match=reason):
        await device.store.apply_snapshot_parts(_stream(parts))
    assert dump(device.store.path) == before
