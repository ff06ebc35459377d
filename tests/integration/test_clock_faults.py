"""Moved and glitched device clocks against a real central: limits hold, order stays true.

Wall clocks are moved through the device's own clock injection (`DeviceClock.wall`); the
monotonic clock is the real one, so "how long since central answered" is measured as the
product measures it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from psycopg import AsyncConnection

from central import ops
from central.sample import SampleFestival
from config.vocab import MAX_OFFSET_MS
from edge.cli_sync import enrol_device
from sync.hlc import wall_ms_of
from tests.integration.conftest import CentralServer, Node, enrol_code, new_dir, open_node

DAY_MS = 86_400_000
YEARS_5_MS = 5 * 365 * DAY_MS
ALLOWANCE = 2000  # the sample festival's offline allowance per wristband, cents


def _real_ms() -> int:
    return time.time_ns() // 1_000_000


def _moved(offset_ms: list[int]) -> Callable[[], int]:
    """The real wall clock plus a settable offset (offset_ms[0])."""
    return lambda: _real_ms() + offset_ms[0]


async def _node(
    central: CentralServer, dsn: str, fest: SampleFestival, role: str, tmp: Path
) -> Node:
    data = new_dir(tmp)
    await enrol_device(central.url, await enrol_code(dsn, fest, role), name=role, data_dir=data)
    return await open_node(data)


async def _wait_offline(node: Node) -> None:
    """Let the online window pass on the monotonic clock (nothing refreshes the contact)."""
    node.device.online_window_ms = 200
    since = node.device.time.since_contact_ms()
    assert since is not None
    await asyncio.sleep((200 - since) / 1000 + 0.02)


async def test_offline_allowance_holds_with_the_wall_clock_moved(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    bar = await _node(central, pg_dsn, fest, "bar", tmp_path)
    nodes.append(bar)
    offset = [0]
    bar.device.time.wall = _moved(offset)
    await bar.engine.sync_round()
    assert bar.device.online()  # central just answered
    await _wait_offline(bar)  # central is gone from now on
    tag = fest.tag_uids[0]  # 50.00 on it: more than the allowance
    approved = 0
    for move in (-DAY_MS, +2 * DAY_MS, -2 * DAY_MS):  # back a day, forward, back again
        offset[0] += move
        assert not bar.device.online()
        for _ in range(4):
            result = await bar.device.charge(tag, amount=450)
            if result.verdict.code == "approved":
                approved += 450
            else:
                assert result.verdict.code == "offline_limit"
    assert approved == 1800  # four beers: the fifth would pass the 20.00 allowance


async def _presence(dsn: str, ticket: uuid.UUID) -> bool | None:
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT inside FROM ticket_presence WHERE ticket_id = %s", (ticket,)
        )
        rec = await cur.fetchone()
    return None if rec is None else bool(rec[0])


async def _open_skew(dsn: str, device_id: str) -> list[dict[str, Any]]:
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT ref, detail FROM conflict WHERE kind = 'clock_skew' AND subject_id = %s"
            " AND resolved_at IS NULL",
            (uuid.UUID(device_id),),
        )
        return [{"id": r[0], "detail": r[1]} for r in await cur.fetchall()]


@pytest.mark.parametrize("knows_central", [True, False], ids=["synced", "never-synced"])
async def test_a_five_year_clock_glitch_does_not_skew_later_facts(
    central: CentralServer,
    pg_dsn: str,
    fest: SampleFestival,
    tmp_path: Path,
    nodes: list[Node],
    knows_central: bool,
) -> None:
    glitchy = await _node(central, pg_dsn, fest, "gate", tmp_path)
    healthy = await _node(central, pg_dsn, fest, "gate", tmp_path)
    nodes += [glitchy, healthy]
    if not knows_central:  # a device restarted on a new boot: no contact it can place
        glitchy.device.time.last_contact = None
        glitchy.device.time.boot_id = "another-boot"
    offset = [YEARS_5_MS]
    glitchy.device.time.wall = _moved(offset)
    ticket = fest.tickets[0]
    entered = await glitchy.device.scan(ticket.code)  # one reading, five years ahead
    offset[0] = 0  # the clock is right again
    assert entered.verdict.code == "ok"
    if knows_central:  # the device does not adopt a time it cannot place
        assert abs(wall_ms_of(entered.event.hlc) - _real_ms()) < 2 * MAX_OFFSET_MS
    await glitchy.engine.sync_round()
    # The contact pulled the device's HLC back: its next facts carry true times.
    later = await glitchy.device.scan(fest.tickets[1].code)
    assert abs(wall_ms_of(later.event.hlc) - _real_ms()) < 2 * MAX_OFFSET_MS

    left = await healthy.device.scan(ticket.code, exit=True)  # later, at a healthy gate
    assert left.verdict.code == "ok"
    await healthy.engine.sync_round()
    assert await _presence(pg_dsn, ticket.ticket_id) is False  # the exit came last
    await healthy.engine.sync_round()  # central's presence reaches the gate
    back = await healthy.device.scan(ticket.code)
    assert back.verdict.code == "ok_reentry"

    skew = await _open_skew(pg_dsn, glitchy.creds.device_id)
    assert len(skew) == 1 and skew[0]["detail"]["skew_ms"] > YEARS_5_MS - DAY_MS
    async with await AsyncConnection.connect(pg_dsn) as conn:
        await ops.resolve_conflict(
            conn, fest.festival_id, skew[0]["id"], actor="ops", note="clock fixed"
        )
    for t in fest.tickets[2:4]:  # healthy scans after the resolution
        assert (await glitchy.device.scan(t.code)).verdict.code == "ok"
    await glitchy.engine.sync_round()
    assert await _open_skew(pg_dsn, glitchy.creds.device_id) == []  # it stays resolved
