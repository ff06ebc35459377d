"""Central restored from last night's backup under a live fleet (a real pg_dump and
pg_restore): a device that is ahead of central re-sends what central lost and reloads its
catalog; nothing it still holds is lost, and nothing counts twice."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.conninfo import conninfo_to_dict

from central import tickets
from central.sample import SampleFestival
from tests.integration.conftest import CentralServer, Node, enrolled_dir, open_node
from tests.pg_tools import pg_program


def _backup(dsn: str, file: Path) -> None:
    """`pg_dump` in custom format, as docs/backup.md says."""
    subprocess.run([pg_program("pg_dump", dsn), "-Fc", "-f", file, dsn], check=True)


def _restore(admin_dsn: str, dsn: str, file: Path) -> None:
    """Drop central's database, make it again and `pg_restore` the backup into it."""
    name = str(conninfo_to_dict(dsn)["dbname"])
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    restore: list[str | Path] = [
        pg_program("pg_restore", dsn),
        "--exit-on-error",
        "--no-owner",
        "-d",
        dsn,
        str(file),
    ]
    subprocess.run(restore, check=True)


async def _events(dsn: str, device_id: str) -> list[int]:
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT device_seq FROM device_event WHERE device_id = %s ORDER BY device_seq",
            (uuid.UUID(device_id),),
        )
        return [int(r[0]) for r in await cur.fetchall()]


async def _cancel(dsn: str, ticket_id: uuid.UUID) -> None:
    async with await AsyncConnection.connect(dsn) as conn:
        await tickets.cancel_ticket(conn, ticket_id, actor="ops")
        await conn.commit()


async def _verdict(node: Node, code: str) -> str:
    return str((await node.device.scan(code)).verdict.code)


async def test_a_device_ahead_of_a_restored_central_resends_and_rebases(
    tmp_path: Path,
    pg_admin_dsn: str,
    pg_dsn: str,
    fest: SampleFestival,
    central: CentralServer,
    nodes: list[Node],
) -> None:
    gate = await open_node(await enrolled_dir(central, pg_dsn, fest, "gate", tmp_path))
    nodes.append(gate)
    device_id = gate.creds.device_id
    assert await _verdict(gate, fest.tickets[0].code) == "ok"  # A
    await gate.engine.sync_round()
    backup = tmp_path / "central.dump"
    _backup(pg_dsn, backup)

    assert await _verdict(gate, fest.tickets[1].code) == "ok"  # B, acknowledged after it
    await _cancel(pg_dsn, fest.tickets[2].ticket_id)  # a change the restore loses
    await gate.engine.sync_round()
    assert await gate.device.journal.acked_through() == 2
    assert await _events(pg_dsn, device_id) == [1, 2]
    assert await _verdict(gate, fest.tickets[2].code) == "cancelled"  # event 3, pending

    central.stop()
    _restore(pg_admin_dsn, pg_dsn, backup)
    central.start()
    assert await _events(pg_dsn, device_id) == [1]  # central lost B
    await _cancel(pg_dsn, fest.tickets[3].ticket_id)  # a change made after the restore

    await gate.engine.sync_round()
    # B and the refused scan are back at central, each once; A was not sent twice.
    assert await _events(pg_dsn, device_id) == [1, 2, 3]
    assert await gate.device.journal.acked_through() == 3
    assert await gate.device.journal.pending_count() == 0
    # The catalog is central's again: the cancellation made after the restore is here, and
    # the one the restore lost is gone (central's word, whatever this device saw before).
    assert await _verdict(gate, fest.tickets[3].code) == "cancelled"
    assert await _verdict(gate, fest.tickets[4].code) == "ok"
    assert await _verdict(gate, fest.tickets[2].code) == "ok"
    await gate.engine.sync_round()
    assert await _events(pg_dsn, device_id) == [1, 2, 3, 4, 5, 6]


async def test_a_device_with_nothing_pending_and_a_cursor_past_the_head_rebootstraps(
    tmp_path: Path,
    pg_admin_dsn: str,
    pg_dsn: str,
    fest: SampleFestival,
    central: CentralServer,
    nodes: list[Node],
) -> None:
    gate = await open_node(await enrolled_dir(central, pg_dsn, fest, "gate", tmp_path))
    nodes.append(gate)
    backup = tmp_path / "central.dump"
    _backup(pg_dsn, backup)
    await _cancel(pg_dsn, fest.tickets[0].ticket_id)
    await _cancel(pg_dsn, fest.tickets[1].ticket_id)
    await gate.engine.sync_round()
    assert await gate.device.journal.pending_count() == 0
    ahead = gate.device.store.cursor

    central.stop()
    _restore(pg_admin_dsn, pg_dsn, backup)
    central.start()
    await _cancel(pg_dsn, fest.tickets[2].ticket_id)  # head now one below the device's cursor

    pulled = await gate.engine.pull_once(0.0)  # answered at once: 409, then a snapshot
    assert pulled == 0
    assert gate.device.store.cursor == ahead - 1
    assert await _verdict(gate, fest.tickets[2].code) == "cancelled"
    assert await _verdict(gate, fest.tickets[0].code) == "ok"
