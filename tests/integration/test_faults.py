"""Nothing lost, nothing doubled: faults on the wire, killed devices, restarted central."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection

from central.sample import SampleFestival
from festdemo.proxy import FAULTS, LinkProxy
from tests.integration.conftest import CentralServer, Node, enrolled_dir, open_node

FAST: dict[str, Any] = {
    "push_interval_s": 0.05,
    "max_backoff_s": 0.2,
    "long_poll_s": 1.0,
    "batch": 40,
}


async def _journal(node: Node, fest: SampleFestival, count: int) -> None:
    """Record `count` events of every kind the role makes: admits, refusals, exits, sales."""
    if node.creds.role == "gate":
        for i in range(count):
            await node.device.scan(fest.tickets[i % 4].code, exit=(i // 4) % 2 == 1)
    else:
        for i in range(count):
            await node.device.charge(fest.tag_uids[i % 2], amount=1 + i % 5)


async def _held(dsn: str, device_id: str) -> tuple[int, int, int]:
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT count(*), count(DISTINCT event_id), coalesce(max(device_seq), 0)"
            " FROM device_event WHERE device_id = %s",
            (uuid.UUID(device_id),),
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])


async def _gaps(dsn: str) -> int:
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM conflict WHERE kind = 'sequence_gap' AND resolved_at IS NULL"
        )
        row = await cur.fetchone()
        return int(row[0]) if row else -1


async def _until_synced(nodes: list[Node], timeout_s: float) -> None:
    async def settled() -> bool:
        for node in nodes:
            if await node.device.journal.pending_count() or node.engine.status.lag:
                return False
        return True

    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await settled():
        assert asyncio.get_running_loop().time() < deadline, "devices did not settle"
        await asyncio.sleep(0.1)


async def test_several_devices_through_a_faulty_network(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    proxy = LinkProxy(upstream_port=central.port, rate=0.35, seed=7)
    url = await proxy.start()
    try:
        for role in ("gate", "gate", "bar"):
            data = await enrolled_dir(central, pg_dsn, fest, role, tmp_path)
            nodes.append(await open_node(data, url=url, **FAST))
        tasks = [asyncio.create_task(n.engine.run()) for n in nodes]
        await asyncio.gather(*(_journal(n, fest, 700) for n in nodes))
        await _until_synced(nodes, timeout_s=120)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        proxy.rate = 0.0  # a clean last round, to compare cursors with central's head
        await asyncio.gather(*(n.engine.sync_round() for n in nodes))
    finally:
        await asyncio.sleep(0.2)  # let the proxy's last exchanges finish
        await proxy.stop()
    assert set(proxy.counts) == set(FAULTS), proxy.counts  # every fault really happened
    for node in nodes:
        assert await _held(pg_dsn, node.creds.device_id) == (700, 700, 700)
    assert await _gaps(pg_dsn) == 0
    async with await AsyncConnection.connect(pg_dsn) as conn:
        cur = await conn.execute(
            "SELECT head FROM feed_head WHERE festival_id = %s", (fest.festival_id,)
        )
        row = await cur.fetchone()
    assert row is not None
    assert {n.device.store.cursor for n in nodes} == {row[0]}


async def test_a_device_killed_mid_push_loses_and_doubles_nothing(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    data = await enrolled_dir(central, pg_dsn, fest, "gate", tmp_path)
    script = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        from tests.integration.conftest import open_node

        async def main():
            node = await open_node(Path({str(data)!r}), batch=10)
            codes = {[t.code for t in fest.tickets[:4]]!r}
            for i in range(400):
                await node.device.scan(codes[i % 4], exit=(i // 4) % 2 == 1)
            print("journaled", flush=True)
            while await node.device.journal.pending_count():
                n = await node.engine.push_once()
                print("acked", n, flush=True)

        asyncio.run(main())
    """)
    proc = subprocess.Popen(  # noqa: ASYNC220 - the child must outlive this event loop's control
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "journaled"
    await asyncio.sleep(0.15)  # in the middle of pushing batches
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    node = await open_node(data, **FAST)
    nodes.append(node)
    held_before = (await _held(pg_dsn, node.creds.device_id))[0]
    assert 0 < held_before < 400 or held_before == 400
    await node.engine.sync_round()
    assert await _held(pg_dsn, node.creds.device_id) == (400, 400, 400)
    assert await _gaps(pg_dsn) == 0


async def test_central_restarted_mid_ingest(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    data = await enrolled_dir(central, pg_dsn, fest, "bar", tmp_path)
    node = await open_node(data, **(FAST | {"batch": 10}))
    nodes.append(node)
    await _journal(node, fest, 600)
    task = asyncio.create_task(node.engine.run())
    while (await _held(pg_dsn, node.creds.device_id))[0] == 0:  # noqa: ASYNC110 - polling central's DB
        await asyncio.sleep(0.01)
    central.stop()  # mid-ingest: the device keeps trying with backoff
    held = (await _held(pg_dsn, node.creds.device_id))[0]
    await asyncio.sleep(1.0)
    assert node.engine.status.last_error is not None
    central.start()
    await _until_synced([node], timeout_s=60)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert held < 600
    assert await _held(pg_dsn, node.creds.device_id) == (600, 600, 600)
