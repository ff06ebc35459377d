"""Long-polls stay correct across central processes: a wait on one is answered by a push
through another, through the feed's NOTIFY (two `serve` processes, one database)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from psycopg import AsyncConnection

from central.sample import create_sample_festival
from edge.cli_sync import enrol_device
from tests.central.serve_proc import metric, serve
from tests.integration.conftest import enrol_code, new_dir, open_node


async def test_a_long_poll_on_one_process_is_woken_by_a_push_through_another(
    pg_dsn: str, tmp_path: Path
) -> None:
    async with await AsyncConnection.connect(pg_dsn) as conn:
        fest = await create_sample_festival(conn, signed_tickets=2, opaque_tickets=0)
    with serve(tmp_path, dsn=pg_dsn) as a, serve(tmp_path, dsn=pg_dsn) as b:
        data = new_dir(tmp_path)
        await enrol_device(a.url, await enrol_code(pg_dsn, fest, "gate"), name="g", data_dir=data)
        gate = await open_node(data, url=b.url)  # its pushes go through b
        try:
            head = (await gate.client.changes(0, limit=1)).head_seq
            async with gate.client.__class__(a.url, token=gate.creds.token) as on_a:
                waiting = asyncio.create_task(on_a.changes(head, wait_s=30))
                async with httpx.AsyncClient() as probe:

                    async def waiters_on_a() -> float:
                        text = (await probe.get(f"{a.url}/metrics")).text
                        return metric(text, "festgate_longpoll_waiters")

                    for _ in range(1200):  # until the long-poll is parked on a
                        if await waiters_on_a() >= 1:
                            break
                        await asyncio.sleep(0.05)
                    else:
                        raise AssertionError("the long-poll never waited on a")
                    before = metric(
                        (await probe.get(f"{a.url}/metrics")).text,
                        "festgate_feed_notifications_total",
                    )
                    assert (await gate.device.scan(fest.tickets[0].code)).verdict.code == "ok"
                    assert await gate.engine.push_once() == 1  # pushed through b, acknowledged
                    answer = await asyncio.wait_for(waiting, 60)
                    after = metric(
                        (await probe.get(f"{a.url}/metrics")).text,
                        "festgate_feed_notifications_total",
                    )
            assert answer.next_cursor > head  # a's waiter got the change b's push made
            assert any(c.table == "presence" for c in answer.changes)
            assert after > before  # through a's LISTEN: b's commit notified a
        finally:
            await gate.close()
