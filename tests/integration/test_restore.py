"""Central restored from last night's backup under a live fleet (a real pg_dump and
pg_restore into a new database): a device that is ahead of central re-sends what central lost
and reloads its catalog; nothing it still holds is lost, and nothing counts twice. A device
that pushed nothing since the backup, whose cursor central's head has passed again (feed seqs
after the backup name other changes), is told by central's history (`HISTORY_HEADER`)."""

from __future__ import annotations

import sqlite3
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import AsyncConnection, sql
from psycopg.conninfo import conninfo_to_dict

from central import history, tickets
from central.sample import SampleFestival
from sync.protocol import (
    ACKED_HEADER,
    HISTORY_HEADER,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    CentralBehindBody,
    Paths,
    PushRequest,
)
from sync.vocab import TicketStatus
from tests.edge.conftest import dump
from tests.integration.conftest import CentralServer, Node, enrolled_dir, open_node
from tests.pg_tools import pg_program


@dataclass
class Backup:
    """Last night's backup of central's database, and its restore under a stopped central."""

    admin_dsn: str
    dsn: str
    central: CentralServer
    file: Path

    def take(self) -> None:
        """`pg_dump` in custom format, as docs/backup.md says."""
        subprocess.run(
            [pg_program("pg_dump", self.dsn), "-Fc", "-f", self.file, self.dsn], check=True
        )

    def restore(self) -> None:
        """Stop central, drop its database, make it again, `pg_restore` the backup into it,
        start central again (the same address)."""
        self.central.stop()
        name = str(conninfo_to_dict(self.dsn)["dbname"])
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        restore: list[str | Path] = [pg_program("pg_restore", self.dsn), "--exit-on-error",
                                     "--no-owner", "-d", self.dsn, self.file]  # fmt: skip
        subprocess.run(restore, check=True)
        self.central.start()


@pytest.fixture
def backup(tmp_path: Path, pg_admin_dsn: str, pg_dsn: str, central: CentralServer) -> Backup:
    """The backup of this test's central (not taken yet)."""
    return Backup(pg_admin_dsn, pg_dsn, central, tmp_path / "central.dump")


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


@pytest.fixture
async def gate(
    tmp_path: Path, pg_dsn: str, fest: SampleFestival, central: CentralServer, nodes: list[Node]
) -> Node:
    """A gate enrolled at `central`, its engine not running (the test syncs by rounds)."""
    node = await open_node(await enrolled_dir(central, pg_dsn, fest, "gate", tmp_path))
    nodes.append(node)
    return node


async def _verdict(node: Node, code: str) -> str:
    return str((await node.device.scan(code)).verdict.code)


async def test_a_device_ahead_of_a_restored_central_resends_and_rebases(
    pg_dsn: str, fest: SampleFestival, gate: Node, backup: Backup
) -> None:
    device_id = gate.creds.device_id
    assert await _verdict(gate, fest.tickets[0].code) == "ok"  # A
    await gate.engine.sync_round()
    backup.take()

    assert await _verdict(gate, fest.tickets[1].code) == "ok"  # B, acknowledged after it
    await _cancel(pg_dsn, fest.tickets[2].ticket_id)  # a change the restore loses
    await gate.engine.sync_round()
    assert await gate.device.journal.acked_through() == 2
    assert await _events(pg_dsn, device_id) == [1, 2]
    assert await _verdict(gate, fest.tickets[2].code) == "cancelled"  # event 3, pending

    backup.restore()
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
    pg_dsn: str, fest: SampleFestival, gate: Node, backup: Backup
) -> None:
    backup.take()
    await _cancel(pg_dsn, fest.tickets[0].ticket_id)
    await _cancel(pg_dsn, fest.tickets[1].ticket_id)
    await gate.engine.sync_round()
    assert await gate.device.journal.pending_count() == 0
    ahead = gate.device.store.cursor

    backup.restore()
    await _cancel(pg_dsn, fest.tickets[2].ticket_id)  # head now one below the device's cursor

    pulled = await gate.engine.pull_once(0.0)  # answered at once: 409, then a snapshot
    assert pulled == 0
    assert gate.device.store.cursor == ahead - 1
    assert await _verdict(gate, fest.tickets[2].code) == "cancelled"
    assert await _verdict(gate, fest.tickets[0].code) == "ok"


async def test_acknowledged_events_stay_for_the_retention(
    tmp_path: Path, pg_dsn: str, fest: SampleFestival, central: CentralServer, nodes: list[Node]
) -> None:
    now = [time.time_ns() // 1_000_000]
    data = await enrolled_dir(central, pg_dsn, fest, "gate", tmp_path)
    gate = await open_node(data, keep_acked_s=48 * 3600, clock=lambda: now[0])
    nodes.append(gate)
    for ticket in fest.tickets[:3]:
        assert await _verdict(gate, ticket.code) == "ok"
    await gate.engine.sync_round()  # acknowledged, and reflected once the cursor caught up
    assert (await gate.device.journal.stats()).pending == 0

    now[0] += 47 * 3600_000
    await gate.engine.prune_acked()
    assert (await gate.device.journal.stats()).events == 3  # within the retention: kept
    now[0] += 2 * 3600_000
    await gate.engine.prune_acked()
    assert (await gate.device.journal.stats()).events == 3  # at most hourly
    gate.engine._pruned_at = None  # as after a restart: it prunes at once
    await gate.engine.prune_acked()
    assert (await gate.device.journal.stats()).events == 1  # the last stays: seq goes on


def _pending_occupancy(node: Node) -> int:
    rows = node.device.store.inline.execute(
        "SELECT coalesce(sum(delta), 0) FROM pending WHERE scope = 'zone'"
    ).fetchall()
    return int(rows[0][0])


async def test_rewound_events_count_again_until_central_reflects_them_once(
    pg_dsn: str, fest: SampleFestival, gate: Node
) -> None:
    for ticket in fest.tickets[:2]:
        assert await _verdict(gate, ticket.code) == "ok"
    assert _pending_occupancy(gate) == 2
    await gate.engine.sync_round()
    assert _pending_occupancy(gate) == 0  # central's zone row counts them now

    # As if central had lost both: pending again, and the zone counts them here again.
    assert await gate.device.journal.rewind(0, gate.device.store.cursor) == 2
    assert (await gate.device.journal.stats()).pending == 2
    assert _pending_occupancy(gate) == 2
    await gate.engine.sync_round()  # central already holds them: taken once, acknowledged
    assert await _events(pg_dsn, gate.creds.device_id) == [1, 2]
    assert (await gate.device.journal.stats()).pending == 0
    # Counted here until the cursor passes the feed head of the new acknowledgement (a lost
    # event's re-send adds a change that moves it; here central had them, so another does).
    await _cancel(pg_dsn, fest.tickets[5].ticket_id)
    await gate.engine.sync_round()
    assert _pending_occupancy(gate) == 0


async def test_central_behind_is_a_409_with_its_figures_and_stores_nothing(
    pg_dsn: str, fest: SampleFestival, gate: Node
) -> None:
    assert await _verdict(gate, fest.tickets[0].code) == "ok"
    await gate.engine.sync_round()
    assert await _verdict(gate, fest.tickets[1].code) == "ok"
    events = await gate.device.journal.pending_batch(10)
    head = gate.device.store.cursor
    auth = {PROTOCOL_HEADER: str(PROTOCOL_VERSION), "Authorization": f"Bearer {gate.creds.token}"}
    async with httpx.AsyncClient(base_url=gate.creds.central_url, headers=auth) as http:
        body = PushRequest(events=events).model_dump_json()
        json_type = {"Content-Type": "application/json"}
        resp = await http.post(Paths.EVENTS, content=body, headers=json_type | {ACKED_HEADER: "5"})
        assert resp.status_code == 409, resp.text
        behind = CentralBehindBody.model_validate_json(resp.content)
        assert (behind.error, behind.acked_through, behind.head_seq) == ("central_behind", 1, head)
        assert await _events(pg_dsn, gate.creds.device_id) == [1]  # nothing stored

        past = {"after": head + 5}
        resp = await http.get(Paths.CHANGES, params=past, headers={ACKED_HEADER: "1"})
        assert resp.status_code == 409
        assert CentralBehindBody.model_validate_json(resp.content).head_seq == head
        # A client from before the signal sends no acknowledgement: answered as before.
        assert (await http.get(Paths.CHANGES, params=past)).status_code == 200
        resp = await http.post(Paths.EVENTS, content=body, headers=json_type | {ACKED_HEADER: "1"})
        assert resp.status_code == 200
    assert await _events(pg_dsn, gate.creds.device_id) == [1, 2]


def _catalog(node: Node) -> dict[str, list[tuple[Any, ...]]]:
    """Every catalog row the device holds (not its journal, its effects or its sync state)."""
    return dump(node.device.store.path, skip=("journal", "pending", "sync_state"))


def _status(node: Node, ticket_id: uuid.UUID) -> str:
    rows = node.device.store.inline.execute(
        "SELECT status FROM ticket WHERE id = ?", (str(ticket_id),)
    ).fetchall()
    return str(rows[0][0])


async def _history(dsn: str) -> str:
    async with await AsyncConnection.connect(dsn) as conn:
        return await history.read(conn)


async def test_a_device_that_pushed_nothing_reloads_when_central_hands_its_seqs_out_again(
    tmp_path: Path,
    pg_dsn: str,
    fest: SampleFestival,
    central: CentralServer,
    gate: Node,
    backup: Backup,
    nodes: list[Node],
) -> None:
    tickets = [t.ticket_id for t in fest.tickets[:5]]
    await gate.engine.sync_round()
    was = [_status(gate, t) for t in tickets]
    assert TicketStatus.CANCELLED not in was
    backup.take()
    before = gate.device.store.history
    assert before == await _history(pg_dsn)

    await _cancel(pg_dsn, tickets[0])  # two changes the restore loses
    await _cancel(pg_dsn, tickets[1])
    await gate.engine.sync_round()
    ahead = gate.device.store.cursor
    assert [_status(gate, t) for t in tickets[:2]] == [TicketStatus.CANCELLED] * 2
    assert await gate.device.journal.pending_count() == 0
    assert await _events(pg_dsn, gate.creds.device_id) == []  # it pushed nothing, ever

    backup.restore()
    for ticket in tickets[2:]:  # the same seqs again, for other changes, and one beyond
        await _cancel(pg_dsn, ticket)

    await gate.engine.sync_round()
    # Central's catalog exactly, as a device enrolled now gets it.
    fresh = await open_node(await enrolled_dir(central, pg_dsn, fest, "gate", tmp_path))
    nodes.append(fresh)
    await gate.engine.sync_round()
    assert gate.device.store.cursor == fresh.device.store.cursor > ahead
    assert _catalog(gate) == _catalog(fresh)
    assert [_status(gate, t) for t in tickets] == was[:2] + [TicketStatus.CANCELLED] * 3
    assert gate.device.store.history == await _history(pg_dsn) != before
    assert gate.device.store.history == fresh.device.store.history


async def test_a_device_from_before_the_history_adopts_the_first_it_is_told(
    pg_dsn: str, fest: SampleFestival, gate: Node, nodes: list[Node]
) -> None:
    path = gate.device.store.path
    await gate.close()
    nodes.remove(gate)
    # As an older festgate left it: no history; and a mark a reload would wipe.
    marked = fest.tickets[0].ticket_id
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM sync_state WHERE key = 'history'")
        conn.execute(
            "UPDATE ticket SET status = ? WHERE id = ?", (TicketStatus.CANCELLED, str(marked))
        )
    conn.close()
    old = await open_node(path.parent)
    nodes.append(old)
    assert old.device.store.history is None

    await _cancel(pg_dsn, fest.tickets[1].ticket_id)
    await old.engine.sync_round()
    assert old.device.store.history == await _history(pg_dsn)
    assert _status(old, marked) == TicketStatus.CANCELLED  # no reload: its cursor is trusted
    assert _status(old, fest.tickets[1].ticket_id) == TicketStatus.CANCELLED


async def test_central_answers_a_cursor_from_another_history_409_and_states_its_own(
    pg_dsn: str, gate: Node
) -> None:
    ours = await _history(pg_dsn)
    cursor = gate.device.store.cursor
    auth = {PROTOCOL_HEADER: str(PROTOCOL_VERSION), "Authorization": f"Bearer {gate.creds.token}"}
    async with httpx.AsyncClient(base_url=gate.creds.central_url, headers=auth) as http:
        snapshot = await http.get(Paths.SNAPSHOT)
        assert snapshot.headers[HISTORY_HEADER] == ours
        page = {"after": cursor}
        same = await http.get(Paths.CHANGES, params=page, headers={HISTORY_HEADER: ours})
        assert same.status_code == 200
        assert same.headers[HISTORY_HEADER] == ours
        # Another history: 409 even with nothing acknowledged and the cursor at the head.
        other = {HISTORY_HEADER: "1.2.3", ACKED_HEADER: "0"}
        resp = await http.get(Paths.CHANGES, params=page, headers=other)
        assert resp.status_code == 409, resp.text
        behind = CentralBehindBody.model_validate_json(resp.content)
        assert (behind.acked_through, behind.head_seq) == (0, cursor)
        assert resp.headers[HISTORY_HEADER] == ours
        # A client from before it sends none: answered as before.
        assert (await http.get(Paths.CHANGES, params=page)).status_code == 200
