"""Enrol devices with a real central over HTTP, bootstrap, push and pull."""

from __future__ import annotations

import asyncio
import json
import stat
import uuid
from pathlib import Path

import pytest
from psycopg import AsyncConnection
from typer.testing import CliRunner

from central import tickets
from central.sample import SampleFestival
from config.device import load_device_config
from edge.cli import app
from edge.cli_sync import enrol_device
from sync.client import CentralClient, ProtocolMismatch
from tests.integration.conftest import (
    CentralServer,
    Node,
    enrol_code,
    new_dir,
    open_node,
    run_for,
)


async def _enrolled(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, role: str, tmp_path: Path
) -> Node:
    data = new_dir(tmp_path)
    code = await enrol_code(pg_dsn, fest, role)
    await enrol_device(central.url, code, name=f"{role}-1", data_dir=data)
    return await open_node(data, long_poll_s=5, push_interval_s=0.5)


def test_festgate_init_enrols_bootstraps_and_writes_config(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path
) -> None:
    code = asyncio.run(enrol_code(pg_dsn, fest, "gate"))
    data = tmp_path / "gate"
    result = CliRunner().invoke(
        app, ["init", "--central", central.url, "--code", code, "--name", "north-1",
              "-d", str(data), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["role"] == "gate" and summary["rows"] > 0
    # Private to this user: the replica holds the hash key, the credentials the token.
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
    assert {"replica.sqlite3", "credentials.json", "festgate.toml"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes
    config = load_device_config(Path(summary["config_file"]))
    assert (config.device.role, config.device.zone) == ("gate", str(fest.zone_id))
    scan = CliRunner().invoke(app, ["scan", fest.tickets[0].code, "-d", str(data), "--json"])
    assert json.loads(scan.output)["verdict"] == "ok", scan.output
    again = CliRunner().invoke(
        app, ["init", "--central", central.url, "--code", code, "-d", str(data), "--json"]
    )
    assert again.exit_code == 2 and json.loads(again.output)["error"] == "already_enrolled"
    reused = CliRunner().invoke(
        app, ["init", "--central", central.url, "--code", code, "-d", str(tmp_path / "x"), "--json"]
    )
    assert reused.exit_code == 2 and json.loads(reused.output)["error"] == "enrol_code_invalid"


async def test_events_reach_central_once_and_changes_come_down(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    gate = await _enrolled(central, pg_dsn, fest, "gate", tmp_path)
    nodes.append(gate)
    codes = [t.code for t in fest.tickets[:3]]
    for code in codes:
        assert (await gate.device.scan(code)).verdict.code == "ok"
    pushed, _ = await gate.engine.sync_round()
    assert pushed == 3
    assert await gate.engine.push_once() == 0  # nothing left; a replay would change nothing
    async with await AsyncConnection.connect(pg_dsn) as conn:
        cur = await conn.execute(
            "SELECT device_seq FROM device_event WHERE device_id = %s ORDER BY 1",
            (uuid.UUID(gate.creds.device_id),),
        )
        assert [r[0] for r in await cur.fetchall()] == [1, 2, 3]
        await tickets.cancel_ticket(conn, fest.tickets[4].ticket_id, actor="ops")
        await conn.commit()
    await gate.engine.sync_round()
    assert (await gate.device.scan(fest.tickets[4].code)).verdict.code == "cancelled"
    status = gate.engine.status
    assert status.lag == 0 and status.pending_events == 0 and status.clock_offset_ms is not None


async def test_live_loops_push_at_once_and_pull_by_long_poll(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    gate = await _enrolled(central, pg_dsn, fest, "gate", tmp_path)
    nodes.append(gate)
    task = asyncio.create_task(gate.engine.run())
    try:
        await asyncio.sleep(0.3)
        await gate.device.scan(fest.tickets[0].code)
        async with await AsyncConnection.connect(pg_dsn) as conn:
            for _ in range(100):
                cur = await conn.execute(
                    "SELECT count(*) FROM device_event WHERE device_id = %s",
                    (uuid.UUID(gate.creds.device_id),),
                )
                row = await cur.fetchone()
                if row and row[0] == 1:
                    break
                await asyncio.sleep(0.05)
            assert row is not None and row[0] == 1
            await tickets.cancel_ticket(conn, fest.tickets[5].ticket_id, actor="ops")
            await conn.commit()
        for _ in range(100):
            if (await gate.device.scan(fest.tickets[5].code)).verdict.code == "cancelled":
                break
            await asyncio.sleep(0.05)
        assert (await gate.device.scan(fest.tickets[5].code)).verdict.code == "cancelled"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_refused_protocol_version_is_said_plainly(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    gate = await _enrolled(central, pg_dsn, fest, "gate", tmp_path)
    nodes.append(gate)
    future = CentralClient(central.url, token=gate.creds.token)
    future._http.headers["Festgate-Protocol"] = "99"
    with pytest.raises(ProtocolMismatch):
        await future.changes(0)
    await gate.client.aclose()
    gate.engine.client = future
    gate.client = future
    gate.engine.refused_backoff_s = 0.05
    await run_for(gate.engine, 0.5)
    saved = json.loads(await gate.device.store.get_state("sync_status") or "{}")
    assert "protocol version" in (saved["refused"] or "")


def test_sync_finishes_an_init_whose_snapshot_never_landed(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path
) -> None:
    from edge.sync_link import Credentials, save_credentials

    async def enrol_only() -> Credentials:  # the code is spent; the snapshot never came
        async with CentralClient(central.url) as anonymous:
            got = await anonymous.enrol(await enrol_code(pg_dsn, fest, "gate"), "north-2")
        return Credentials.from_enrolment(central.url, got)

    data = tmp_path / "gate"
    save_credentials(data, asyncio.run(enrol_only()))
    before = CliRunner().invoke(app, ["scan", fest.tickets[0].code, "-d", str(data), "--json"])
    assert before.exit_code == 2 and json.loads(before.output)["error"] == "no_catalog"
    synced = CliRunner().invoke(app, ["sync", "-d", str(data), "--json"])
    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.output)["pulled"] == 0  # a snapshot, not the feed replayed
    scan = CliRunner().invoke(app, ["scan", fest.tickets[0].code, "-d", str(data), "--json"])
    assert json.loads(scan.output)["verdict"] == "ok", scan.output
