"""Stopping central does not wait for its long-polls: what still waits after
`shutdown_grace_s` is cut (the device reconnects to the next central), and the process
exits cleanly instead of holding its port for the long-poll's 30 s."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from psycopg import AsyncConnection

from central.sample import create_sample_festival
from edge.cli_sync import enrol_device
from sync.client import CentralUnavailable
from tests.central.serve_proc import metric, serve
from tests.integration.conftest import enrol_code, new_dir, open_node


async def test_a_stop_cuts_a_waiting_long_poll_after_the_grace(pg_dsn: str, tmp_path: Path) -> None:
    async with await AsyncConnection.connect(pg_dsn) as conn:
        fest = await create_sample_festival(conn, signed_tickets=1, opaque_tickets=0)
    with serve(tmp_path, dsn=pg_dsn, settings="shutdown_grace_s = 1\n") as central:
        data = new_dir(tmp_path)
        code = await enrol_code(pg_dsn, fest, "gate")
        await enrol_device(central.url, code, name="g", data_dir=data)
        gate = await open_node(data, url=central.url)
        try:
            head = (await gate.client.changes(0, limit=1)).head_seq
            waiting = asyncio.create_task(gate.client.changes(head, wait_s=30))
            async with httpx.AsyncClient() as probe:
                for _ in range(1200):  # until the long-poll is parked
                    text = (await probe.get(f"{central.url}/metrics")).text
                    if metric(text, "festgate_longpoll_waiters") >= 1:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("the long-poll never waited")
            assert await asyncio.to_thread(central.stop) == 0
            # Cut, not answered: a long-poll that ran its course would be a page of changes.
            with pytest.raises(CentralUnavailable):
                await waiting
            assert "graceful shutdown exceeded" in central.log_text()
        finally:
            await gate.close()
