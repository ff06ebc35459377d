"""Bootstrap from a snapshot stream: all or nothing, indexes intact, counts checked."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from edge.sample import SampleFestival
from sync.catalog import TableName
from sync.client import CentralUnavailable
from sync.snapshot import RawRows, SnapshotPart
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


def _catalog(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    return dump(path, skip=("journal", "sync_state"))


def _split(sample: SampleFestival, table: TableName, pieces: int) -> list[SnapshotPart]:
    """The sample's stream with one table's rows cut into `pieces` raw chunks."""
    parts: list[SnapshotPart] = []
    for part in _parts(sample, raw=True):
        if part.table != table:
            parts.append(part)
            continue
        rows = sample.snapshot.tables[table]
        size = -(-len(rows) // pieces)
        for i in range(0, len(rows), size):
            chunk = rows[i : i + size]
            parts.append(
                SnapshotPart(
                    "rows", table=table, rows=RawRows(json.dumps(chunk).encode(), len(chunk))
                )
            )
    return parts


async def test_chunks_wider_than_one_statement_land_whole(
    make_device: DeviceFactory, sample: SampleFestival, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = await make_device(name="reference")  # loaded one statement per chunk
    # 17 parameters: two ticket rows per INSERT, so a 15-row chunk takes seven and a
    # remainder of one.
    monkeypatch.setattr("edge.bulkload._max_params", lambda: 17)
    device = await make_device(name="narrow", load=False)
    await device.store.apply_snapshot_parts(_stream(_split(sample, "ticket", 4)))
    assert _catalog(device.store.path) == _catalog(reference.store.path)


async def test_non_canonical_json_is_read_as_the_lax_models_read_it(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    reference = await make_device(name="reference")
    device = await make_device(name="lax", load=False)
    tickets = [
        # What strict parsing refuses and the row model accepts: 3.0 for 3, 0 for false.
        row | {"code_version": float(cast(int, row.get("code_version", 0))), "suspicious": 0}
        for row in sample.snapshot.tables["ticket"]
    ]
    parts = [
        SnapshotPart(
            "rows", table="ticket", rows=RawRows(json.dumps(tickets).encode(), len(tickets))
        )
        if p.table == "ticket"
        else p
        for p in _parts(sample, raw=True)
    ]
    await device.store.apply_snapshot_parts(_stream(parts))
    assert _catalog(device.store.path) == _catalog(reference.store.path)


async def test_a_bad_row_behind_an_insert_in_flight_stores_nothing(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device()
    before = dump(device.store.path)
    parts = _split(sample, "ticket", 3)
    last = max(i for i, p in enumerate(parts) if p.table == "ticket")
    rows = [*json.loads(parts[last].rows.raw), {"id": "t-bad", "status": "BOGUS"}]  # type: ignore[attr-defined]
    parts[last] = SnapshotPart(
        "rows", table="ticket", rows=RawRows(json.dumps(rows).encode(), len(rows))
    )
    with pytest.raises(ValueError, match=r"ticket row \d+"):
        await device.store.apply_snapshot_parts(_stream(parts))
    assert dump(device.store.path) == before
    # The writer is out of its transaction: the next snapshot goes through.
    await device.store.apply_snapshot(sample.snapshot)
    assert (await device.scan(sample.codes["standard-8"])).verdict.code == "ok"


async def test_a_bootstrap_cancelled_mid_stream_stores_nothing(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device()
    before, cursor = dump(device.store.path), device.store.cursor
    waiting = asyncio.Event()

    async def stalls() -> AsyncIterator[SnapshotPart]:
        for part in _split(sample, "ticket", 3)[:-2]:
            yield part
        waiting.set()  # chunks are in (one still in flight); the stream then hangs
        await asyncio.Event().wait()
        yield SnapshotPart("end")  # pragma: no cover

    task = asyncio.create_task(device.store.apply_snapshot_parts(stalls()))
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert dump(device.store.path) == before
    assert device.store.cursor == cursor
    await device.store.apply_snapshot(sample.snapshot)
    assert device.store.cursor == sample.snapshot.seq


def _wal_state(path: Path) -> tuple[int, int]:
    """(frames in the WAL, frames of it copied into the database file)."""
    conn = sqlite3.connect(path)
    try:
        _busy, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return log, done
    finally:
        conn.close()


async def test_the_load_commits_without_checkpointing_and_a_background_one_follows(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device(load=False)
    store = device.store

    async def stream() -> AsyncIterator[SnapshotPart]:
        async for part in _stream(_parts(sample)):
            yield part
        # Last part read, commit still to come: no commit checkpoints meanwhile.
        assert store.inline.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        rows = await store.conn.execute_fetchall("PRAGMA wal_autocheckpoint")
        assert list(rows) == [(0,)]

    await store.apply_snapshot_parts(stream())
    task = store._housekeeping
    assert task is not None
    # The device decides while the checkpoint runs (or after it ran).
    assert (await device.scan(sample.codes["standard-8"])).verdict.code == "ok"
    await task
    log, done = _wal_state(store.path)
    assert log == done  # everything in the WAL reached the database file
    assert store.inline.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
    assert list(await store.conn.execute_fetchall("PRAGMA wal_autocheckpoint")) == [(1000,)]


async def test_a_refused_load_turns_commit_checkpoints_back_on_at_once(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device(load=False)
    store = device.store
    with pytest.raises(CentralUnavailable):
        await store.apply_snapshot_parts(_stream(_parts(sample), cut_after=3))
    assert store._housekeeping is None  # nothing loaded, nothing to copy
    assert store.inline.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
    assert list(await store.conn.execute_fetchall("PRAGMA wal_autocheckpoint")) == [(1000,)]


async def _sort_pragmas(store: Any) -> tuple[list[Any], list[Any]]:
    threads = list(await store.conn.execute_fetchall("PRAGMA threads"))
    cache = list(await store.conn.execute_fetchall("PRAGMA cache_size"))
    return threads, cache


async def test_indexes_rebuilt_by_the_threaded_sorter_refuse_a_repeated_code_hash(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device()
    store = device.store
    before, pragmas = dump(store.path), await _sort_pragmas(store)
    indexes = _indexes(store.path)
    parts = _parts(sample, raw=True)
    at = next(i for i, p in enumerate(parts) if p.table == "ticket")
    tickets = [dict(t) for t in sample.snapshot.tables["ticket"]]
    hashed = [t for t in tickets if t.get("code_hash")]
    hashed[1]["code_hash"] = hashed[0]["code_hash"]  # distinct ids: only the index sees it
    parts[at] = SnapshotPart(
        "rows", table="ticket", rows=RawRows(json.dumps(tickets).encode(), len(tickets))
    )
    with pytest.raises(ValueError, match="repeats a key"):
        await store.apply_snapshot_parts(_stream(parts))
    assert dump(store.path) == before
    assert await _sort_pragmas(store) == pragmas  # sorter threads and cache back as they were
    await store.apply_snapshot_parts(_stream(_parts(sample, raw=True)))
    assert await _sort_pragmas(store) == pragmas
    assert _indexes(store.path) == indexes
    assert (await device.scan(sample.codes["standard-8"])).verdict.code == "ok"
