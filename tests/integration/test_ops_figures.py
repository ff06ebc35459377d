"""Issue 15: what ops see of a real device over real HTTP is what the device holds."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
from psycopg import AsyncConnection

from central import users
from central.auth import OpsRole
from central.sample import SampleFestival
from config.device import DeviceConfig
from edge.runtime import Runtime
from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from tests.integration.conftest import CentralServer, Node, enrolled_dir, open_node


async def _ops_get(central: CentralServer, dsn: str, fest: SampleFestival, path: str) -> Any:
    """GET an ops endpoint of the festival as a STAFF user."""
    async with await AsyncConnection.connect(dsn) as conn:
        user = await users.add_ops_user(  # a fresh name: a live user's name is taken
            conn, name=f"staff-{uuid.uuid4().hex[:8]}", role=OpsRole.STAFF, actor="test",
            festival_id=fest.festival_id,
        )  # fmt: skip
    headers = {PROTOCOL_HEADER: str(PROTOCOL_VERSION), "Authorization": f"Bearer {user.token}"}
    async with httpx.AsyncClient(base_url=central.url, headers=headers) as client:
        resp = await client.get(f"/v1/ops/festivals/{fest.festival_id}{path}")
    assert resp.status_code == 200, resp.text
    return resp.json()


async def _pending_at_central(
    central: CentralServer, dsn: str, fest: SampleFestival, node: Node
) -> Any:
    devices = await _ops_get(central, dsn, fest, "/devices")
    (row,) = [d for d in devices if d["id"] == node.creds.device_id]
    return row["pending_events"]


async def test_daemon_log_lines_reach_ops_with_their_text(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    data = await enrolled_dir(central, pg_dsn, fest, "gate", tmp_path)
    node = await open_node(data)
    nodes.append(node)
    device = {"name": "gate", "role": "gate", "zone": node.creds.zone_id, "data_dir": str(data)}
    config = DeviceConfig.model_validate({"device": device, "timeouts": {"shutdown_s": 3}})
    runtime = Runtime(config, node.device, [], [])
    task = asyncio.create_task(runtime.run())
    await runtime.started.wait()
    # A driver's warning, through the daemon's log path (JournalBridge → the journal).
    logging.getLogger("festgate.hardware.cam").warning("lens dirty on %s", "cam-1")
    runtime.stop()
    await asyncio.wait_for(task, 10)
    await node.engine.sync_round()
    lines = await _ops_get(central, pg_dsn, fest, f"/devices/{node.creds.device_id}/log")
    texts = [(line["level"], line["message"]) for line in lines]
    assert ("warning", "lens dirty on cam-1") in texts
    # The daemon's own lifecycle lines too (written by edge.runtime).
    assert texts[0] == ("info", "daemon started") and texts[-1] == ("info", "daemon stopped")


async def test_ops_pending_events_follow_the_device(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    node = await open_node(await enrolled_dir(central, pg_dsn, fest, "gate", tmp_path))
    nodes.append(node)
    await node.engine.sync_round()
    assert await _pending_at_central(central, pg_dsn, fest, node) == 0
    for ticket in fest.tickets[:3]:  # no push yet: as if central could not be reached
        assert (await node.device.scan(ticket.code)).verdict.code == "ok"
    # Only its long-poll gets through: central shows what the device holds.
    await node.engine.pull_once()
    held = await node.device.journal.pending_count()
    assert held == 3
    assert await _pending_at_central(central, pg_dsn, fest, node) == held
    # It pushes: every event acknowledged, and ops see none pending (not the 3 it counted
    # before the push), though the device never pushes again.
    assert await node.engine.push_once() == 3
    assert await node.device.journal.pending_count() == 0
    assert await _pending_at_central(central, pg_dsn, fest, node) == 0
    await node.device.scan(fest.tickets[3].code)
    await node.engine.sync_round()
    assert await _pending_at_central(central, pg_dsn, fest, node) == 0


async def test_ops_see_no_lag_once_a_round_of_sync_caught_up(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    from central import tickets

    node = await open_node(await enrolled_dir(central, pg_dsn, fest, "gate", tmp_path))
    nodes.append(node)
    async with await AsyncConnection.connect(pg_dsn) as conn:  # changes the device must pull
        await tickets.cancel_ticket(conn, fest.tickets[0].ticket_id, actor="ops")
        await conn.commit()
    _, pulled = await node.engine.sync_round()
    assert pulled > 0 and node.engine.status.lag == 0
    devices = await _ops_get(central, pg_dsn, fest, "/devices")
    (row,) = [d for d in devices if d["id"] == node.creds.device_id]
    assert row["sync_lag"] == 0  # central learnt the device's cursor, not the one before
