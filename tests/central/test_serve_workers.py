"""`serve` as a service: several workers on one port, long-polls woken across processes by
the feed's NOTIFY, and the embedded PostgreSQL gone when central stops."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from psycopg import AsyncConnection

from central.sample import create_sample_festival
from edge.cli_sync import enrol_device
from tests.central.serve_proc import serve
from tests.integration.conftest import enrol_code, new_dir, open_node


def _metric(text: str, name: str) -> float:
    """The value of an unlabelled metric in a scrape (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


def test_two_workers_start_answer_and_stop_cleanly(pg_dsn: str, tmp_path: Path) -> None:
    with serve(tmp_path, "--workers", "2", "--log-format", "json", dsn=pg_dsn) as central:
        for _ in range(6):  # whichever worker takes each connection, every one answers
            with httpx.Client() as client:
                assert client.get(f"{central.url}/readyz").status_code == 200
        scrape = httpx.get(f"{central.url}/metrics")
        assert scrape.status_code == 200
        assert "festgate_longpoll_waiters" in scrape.text
        assert central.stop() == 0
    log = central.log_text()
    assert log.count("Started server process") == 2  # two workers, each with its own app
    assert "Traceback" not in log


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
                        return _metric(text, "festgate_longpoll_waiters")

                    for _ in range(1200):  # until the long-poll is parked on a
                        if await waiters_on_a() >= 1:
                            break
                        await asyncio.sleep(0.05)
                    else:
                        raise AssertionError("the long-poll never waited on a")
                    before = _metric(
                        (await probe.get(f"{a.url}/metrics")).text,
                        "festgate_feed_notifications_total",
                    )
                    assert (await gate.device.scan(fest.tickets[0].code)).verdict.code == "ok"
                    assert await gate.engine.push_once() == 1  # pushed through b, acknowledged
                    answer = await asyncio.wait_for(waiting, 60)
                    after = _metric(
                        (await probe.get(f"{a.url}/metrics")).text,
                        "festgate_feed_notifications_total",
                    )
            assert answer.next_cursor > head  # a's waiter got the change b's push made
            assert any(c.table == "presence" for c in answer.changes)
            assert after > before  # through a's LISTEN: b's commit notified a
        finally:
            await gate.close()


def _postgres_of(data_dir: Path) -> list[int]:
    """Pids of processes whose command line names `data_dir` (a postgres of that cluster)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "postgres" in cmdline and str(data_dir) in cmdline:
            found.append(int(entry.name))
    return found


def test_the_embedded_postgresql_stops_when_central_stops(tmp_path: Path) -> None:
    data_dir = (tmp_path / "central-pg").resolve()
    with serve(tmp_path, "--log-format", "text", data_dir=data_dir) as central:
        # serve got no DSN: it runs its own cluster, and says so.
        assert _postgres_of(data_dir) != []
        stopped = central.stop()
    assert stopped == 0
    assert "using an embedded PostgreSQL for trials at" in central.log_text()
    assert "set --dsn for production" in central.log_text()
    assert _postgres_of(data_dir) == []
