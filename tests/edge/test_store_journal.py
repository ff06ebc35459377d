"""The replica and journal on real SQLite files: migrations, catalog apply, the sync API."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from config.vocab import Role
from edge.device import Device
from edge.sample import SampleFestival
from edge.schema import SCHEMA_VERSION, SchemaTooNew, migrate
from edge.store import Store
from sync.catalog import Change
from sync.logline import TEXT
from tests.edge.conftest import DeviceFactory, dump, journal_rows


async def test_new_store_is_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    await store.close()
    conn = sqlite3.connect(tmp_path / "replica.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.sqlite3", isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNew):
        migrate(conn)
    conn.close()


async def test_changes_are_idempotent_and_move_the_cursor(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device()
    store = device.store
    zone = next(iter(device.catalog.zones.values()))
    change = Change(seq=100, table="zone", row=zone.model_dump(mode="json") | {"capacity": 7})
    assert await store.apply_changes([change]) == 100
    once = dump(store.path)
    assert await store.apply_changes([change]) == 100  # replayed page: nothing moves
    assert dump(store.path) == once
    assert store.catalog.zones[zone.id].capacity == 7
    assert store.catalog.zones[zone.id].seq == 100
    delete = Change(seq=101, table="zone", op="delete", row={"id": zone.id})
    await store.apply_changes([delete])
    assert zone.id not in store.catalog.zones and store.cursor == 101


async def test_a_bad_row_rejects_the_whole_page(make_device: DeviceFactory) -> None:
    device = await make_device()
    before = dump(device.store.path)
    zone = next(iter(device.catalog.zones.values()))
    good = Change(seq=200, table="zone", row=zone.model_dump(mode="json") | {"capacity": 1})
    bad = Change(seq=201, table="ticket", row={"id": "t", "status": "TELEPORTED"})
    with pytest.raises(ValueError, match="ticket row 0"):
        await device.store.apply_changes([good, bad])
    assert dump(device.store.path) == before
    assert device.store.cursor != 201


async def test_no_personal_data_or_plain_codes_in_the_replica(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device()
    blob = (
        device.store.path.read_bytes() + device.store.path.with_suffix(".sqlite3-wal").read_bytes()
    )
    for code in sample.codes.values():
        assert code.encode() not in blob
    for uid in sample.tags.values():
        assert uid.encode() not in blob and bytes.fromhex(uid) not in blob


async def test_pending_batch_ack_and_reflection(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    bar = await make_device(Role.BAR)
    for _ in range(3):
        await bar.charge(sample.tags["alice"], amount=100)
    batch = await bar.journal.pending_batch(10)
    assert [e.device_seq for e in batch] == [1, 2, 3]
    assert all(e.device_id == bar.journal.device_id for e in batch)
    assert await bar.journal.mark_acked(2, head_seq=80) == 2
    assert [e.device_seq for e in await bar.journal.pending_batch(10)] == [3]
    # Acked but not yet reflected in central's rows we hold: still counts against the balance.
    assert (await bar.charge(sample.tags["alice"], amount=100)).balance == 4600
    # Central's new balance (4800 after the two acked sales) arrives at seq 80.
    account = bar.store.bar_lookup(_tag_hash(bar, sample.tags["alice"])).account
    assert account is not None
    row = account.model_dump(mode="json") | {"balance": 4800}
    await bar.store.apply_changes([Change(seq=80, table="account", row=row)])
    lookup = bar.store.bar_lookup(account.tag_hash)
    assert (lookup.account and lookup.account.balance, lookup.pending) == (4800, -200)
    assert (await bar.charge(sample.tags["alice"], amount=100)).balance == 4500


async def test_prune_keeps_unacked_and_the_last_event(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    gate = await make_device()
    for label in ("standard-8", "standard-12", "vip-5"):
        await gate.scan(sample.codes[label])
    await gate.journal.mark_acked(3, head_seq=90)
    await gate.store.apply_changes(
        [Change(seq=90, table="block", row={"kind": "ticket", "ref": "x"})]
    )
    pruned = await gate.journal.prune(older_than_ms=gate.clock() + 1)
    assert pruned == 2
    assert [r[0] for r in journal_rows(gate.store.path)] == [3]


async def test_device_seq_and_hlc_continue_after_reopen(
    tmp_path: Path, make_device: DeviceFactory, sample: SampleFestival
) -> None:
    gate = await make_device()
    first = await gate.scan(sample.codes["standard-8"])
    await gate.close()
    again = await Device.open(tmp_path / "dev", role=Role.GATE, zone="General", clock=gate.clock)
    try:
        second = await again.scan(sample.codes["standard-8"])
        assert second.event.device_seq == first.event.device_seq + 1
        assert second.event.hlc > first.event.hlc
        assert second.verdict.code == "already_inside"  # history survived the restart
    finally:
        await again.close()


def test_a_verdict_returned_survives_a_hard_kill(tmp_path: Path, sample: SampleFestival) -> None:
    """The process dies (SIGKILL, no cleanup) right after the verdict: the event is on disk."""
    catalog = tmp_path / "catalog.json"
    catalog.write_text(sample.snapshot.model_dump_json())
    script = textwrap.dedent(f"""
        import asyncio, os, signal, sys
        from pathlib import Path
        from edge.device import Device
        from sync.catalog import Snapshot
        from config.vocab import Role

        async def main():
            d = await Device.open(Path({str(tmp_path / "dev")!r}), role=Role.GATE, zone="General")
            snap = Snapshot.model_validate_json(Path({str(catalog)!r}).read_text())
            await d.store.apply_snapshot(snap)
            r = await d.scan({sample.codes["standard-8"]!r})
            print(r.verdict.code, r.event.event_id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == -9, proc.stderr
    code, event_id = proc.stdout.split()
    conn = sqlite3.connect(tmp_path / "dev" / "replica.sqlite3")
    rows = conn.execute("SELECT verdict FROM journal WHERE event_id = ?", (event_id,)).fetchall()
    conn.close()
    assert rows == [(code,)]  # the verdict printed is the verdict on disk


def _tag_hash(device: Device, uid: str) -> str:
    from sync.hashing import tag_hash

    assert device.catalog.festival is not None
    return tag_hash(bytes.fromhex(device.catalog.festival.hash_key), uid).hex()


async def test_a_version_1_replica_migrates_forward_keeping_its_journal(tmp_path: Path) -> None:
    from edge.schema import MIGRATIONS

    path = tmp_path / "replica.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(f"BEGIN; {MIGRATIONS[0]} PRAGMA user_version = 1; COMMIT;")
    old.execute(
        "INSERT INTO journal (device_seq, event_id, kind, verdict, hlc, wall_ms, catalog_seq,"
        " payload) VALUES (1, 'e1', 'entry', 'ok', 1, 1, 0, '{}')"
    )
    old.close()
    path.chmod(0o600)  # as festgate creates it: an open one is refused (tests/edge/test_datadir)
    store = await Store.open(tmp_path)
    await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert conn.execute("SELECT event_id FROM journal").fetchall() == [("e1",)]
    columns = [r[1] for r in conn.execute("PRAGMA table_info(presence)")]
    assert columns[-2:] == ["device_id", "device_seq"]
    plan = conn.execute("EXPLAIN QUERY PLAN SELECT count(*) FROM journal WHERE acked = 0")
    assert "journal_unacked" in str(plan.fetchall())
    conn.close()


async def test_a_scan_during_a_catalog_transaction_is_not_part_of_it(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    # A catalog transaction is open on the writer (as apply_changes holds it between awaits)
    # and then rolls back: the verdict must neither join it nor be lost with it.
    gate = await make_device()
    db = gate.store.path
    async with gate.store.write_lock:
        await gate.store.conn.execute("BEGIN IMMEDIATE")
        await gate.store.conn.execute("DELETE FROM zone")
        scan = asyncio.create_task(gate.scan(sample.codes["standard-8"]))
        await asyncio.sleep(0.05)
        assert not scan.done()  # waits for the transaction instead of joining it
        await gate.store.conn.execute("ROLLBACK")
    result = await scan
    assert result.verdict.code == "ok"
    assert journal_rows(db) == [(1, "entry", "ok", 1)]
    assert dump(db)["zone"]  # the rolled-back delete did not happen


async def test_a_scan_while_another_process_writes_waits_without_blocking_the_loop(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    # Another connection (a site tech's `festgate sync`) holds the write lock: the inline
    # append is refused at once and the verdict commits through the writer when it is free.
    gate = await make_device()
    other = sqlite3.connect(gate.store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        scan = asyncio.create_task(gate.scan(sample.codes["standard-8"]))
        ticks = 0
        while ticks < 5:  # the event loop keeps running while the scan waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not scan.done()
        other.execute("COMMIT")
        result = await scan
    finally:
        other.close()
    assert result.event.device_seq == 1
    assert journal_rows(gate.store.path) == [(1, "entry", "ok", 1)]


async def test_an_append_cancelled_on_the_writer_still_counts_its_row(
    make_device: DeviceFactory,
) -> None:
    # A log line's append is cancelled at shutdown while its row waits on the writer (another
    # process holds the write lock). The row still commits; the next append must take the
    # seq after it, not the same one (which failed with a UNIQUE error and lost the line).
    gate = await make_device()
    other = sqlite3.connect(gate.store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        first = asyncio.create_task(gate.record_log({TEXT: "stopping"}))
        await asyncio.sleep(0.05)
        first.cancel()
        await asyncio.sleep(0)
        other.execute("COMMIT")
    finally:
        other.close()
    with pytest.raises(asyncio.CancelledError):
        await first
    event = await gate.record_log({TEXT: "daemon stopped"})
    assert event.device_seq == 2
    conn = sqlite3.connect(gate.store.path)
    rows = conn.execute(f"SELECT device_seq, json_extract(payload, '$.{TEXT}') FROM journal")
    assert rows.fetchall() == [(1, "stopping"), (2, "daemon stopped")]
    conn.close()


@pytest.mark.parametrize("at", ["BEGIN IMMEDIATE", "COMMIT"])
async def test_a_cancel_while_a_page_begins_or_commits_stays_a_cancel(
    make_device: DeviceFactory, at: str
) -> None:
    # The daemon stops by cancelling its sync loop; the cancel can land while BEGIN or
    # COMMIT runs on the connection's thread. At COMMIT the page is committed and there is
    # nothing to roll back, yet the cancel must come out as a cancel: an error in its place
    # was caught by the pull loop, which then never stopped (the demo's "gate exited with
    # 1"). At BEGIN the transaction must not stay open for the connection's next user.
    device = await make_device()
    store = device.store
    zone = next(iter(device.catalog.zones.values()))
    before = (store.cursor, zone.capacity)
    change = Change(seq=300, table="zone", row=zone.model_dump(mode="json") | {"capacity": 9})
    execute = store.conn.execute

    def cancel_at(sql: str, *args: Any) -> Any:
        if sql == at:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # delivered at the await below, once the statement is on the thread
        return execute(sql, *args)

    store.conn.execute = cancel_at  # type: ignore[method-assign]
    try:
        with pytest.raises(asyncio.CancelledError):
            await store.apply_changes([change])
    finally:
        store.conn.execute = execute  # type: ignore[method-assign]
    conn = sqlite3.connect(store.path)
    (cursor,) = conn.execute("SELECT value FROM sync_state WHERE key = 'cursor'").fetchone()
    (capacity,) = conn.execute("SELECT capacity FROM zone WHERE id = ?", (zone.id,)).fetchone()
    conn.close()
    # The page and its cursor together: committed, or not at all.
    assert (int(cursor), capacity) == ((300, 9) if at == "COMMIT" else before)
    assert await store.apply_changes([change]) == 300  # and the store goes on
