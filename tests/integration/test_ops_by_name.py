"""Ops act by name on real devices: a real central (uvicorn on loopback, PostgreSQL), real
enrolled devices with their SQLite replicas and sync engines."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from central.cli import app
from central.sample import SampleFestival
from sync.client import CentralRefused
from tests.integration.conftest import CentralServer, Node, enrolled_dir, open_node
from tests.integration.test_slow_clients import ops_headers


async def _cli(dsn: str, *args: str) -> dict[str, object]:
    """``festgate-central --dsn <dsn> <args> --json`` (its own event loop, in a thread)."""
    result = await asyncio.to_thread(CliRunner().invoke, app, ["--dsn", dsn, *args, "--json"])
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


async def test_a_device_revoked_by_name_is_refused_at_its_next_request(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    gate = await open_node(await enrolled_dir(central, pg_dsn, fest, "gate", tmp_path))
    nodes.append(gate)
    assert (await gate.device.scan(fest.tickets[0].code)).verdict.code == "ok"
    assert await gate.engine.push_once() == 1
    revoked = await _cli(pg_dsn, "device", "revoke", "Gate", "-f", fest.slug)
    assert revoked["name"] == "gate" and revoked["revoked_at"]
    # Offline it still decides (the scan is journaled); central refuses what it sends.
    assert (await gate.device.scan(fest.tickets[1].code)).verdict.code == "ok"
    for request in (gate.engine.push_once, gate.engine.pull_once):
        with pytest.raises(CentralRefused) as refused:
            await request()
        assert (refused.value.status, refused.value.error) == (401, "token_revoked")


async def test_a_vendor_closed_by_name_makes_a_synced_bar_answer_vendor_closed(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    bar = await open_node(await enrolled_dir(central, pg_dsn, fest, "bar", tmp_path))
    nodes.append(bar)
    tag = fest.tag_uids[0]
    assert (await bar.device.charge(tag, amount=450)).verdict.code == "approved"
    headers = await ops_headers(pg_dsn, fest)
    async with httpx.AsyncClient(base_url=central.url, headers=headers) as ops:
        closed = await ops.post(f"/v1/ops/festivals/{fest.slug}/vendors/main BAR/close")
    assert closed.status_code == 200, closed.text
    assert closed.json()["is_open"] is False
    await bar.engine.sync_round()
    assert (await bar.device.charge(tag, amount=450)).verdict.code == "vendor_closed"
    await _cli(pg_dsn, "vendor", "open", "Main bar", "-f", fest.slug)
    await bar.engine.sync_round()
    assert (await bar.device.charge(tag, amount=450)).verdict.code == "approved"
