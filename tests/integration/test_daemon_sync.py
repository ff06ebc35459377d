"""`festgate run` as a real process: a scan on a simulated reader reaches central by itself."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from psycopg import AsyncConnection

from central.sample import SampleFestival
from edge.cli_sync import enrol_device
from edge.sync_link import load_credentials
from tests.integration.conftest import CentralServer, enrol_code


async def test_daemon_pushes_scans_and_exits_on_sigterm(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path
) -> None:
    data = tmp_path / "gate"
    summary = await enrol_device(
        central.url, await enrol_code(pg_dsn, fest, "gate"), name="gate-1", data_dir=data
    )
    feed = tmp_path / "feed.txt"
    feed.write_text("")
    config = tmp_path / "gate.toml"
    config.write_text(
        summary["config"]
        + "push_interval_s = 0.2\nlong_poll_s = 1\n"
        + f'\n[[readers]]\ntype = "simulated"\nname = "sim"\nfeed = "{feed}"\n'
        + '\n[[actuators]]\ntype = "simulated"\nname = "lamp"\n'
    )
    creds = load_credentials(data)
    assert creds is not None
    proc = subprocess.Popen(  # noqa: ASYNC220 - a real daemon process, signalled below
        [sys.executable, "-m", "edge.cli", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=os.getcwd(),
    )
    try:
        await asyncio.sleep(1.0)
        with feed.open("a") as handle:
            handle.write(fest.tickets[0].code + "\n")
        verdicts: list[str] = []
        async with await AsyncConnection.connect(pg_dsn) as conn:
            for _ in range(200):
                cur = await conn.execute(
                    "SELECT verdict FROM device_event WHERE device_id = %s AND kind = 'entry'",
                    (uuid.UUID(creds.device_id),),
                )
                verdicts = [r[0] for r in await cur.fetchall()]
                if verdicts:
                    break
                await asyncio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert verdicts == ["ok"], err.decode()[-3000:]
    assert proc.returncode == 0, err.decode()[-2000:]
