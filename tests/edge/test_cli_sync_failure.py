"""`festgate sync` when central is gone: the last success stays, the error is added, and the
site tech reads both as local time; against a real central, then a closed port."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from psycopg import AsyncConnection
from typer.testing import CliRunner

from central.sample import SampleFestival, create_sample_festival
from edge.cli import app
from edge.cli_sync import enrol_device
from edge.humanize import local_time
from tests.integration.conftest import enrol_code, serving

runner = CliRunner()


async def _festival(dsn: str) -> SampleFestival:
    async with await AsyncConnection.connect(dsn) as conn:
        return await create_sample_festival(conn, signed_tickets=2, opaque_tickets=1, wristbands=1)


def _status(data: Path) -> dict[str, object]:
    result = runner.invoke(app, ["status", "-d", str(data), "--json"])
    assert result.exit_code == 0, result.output
    sync: dict[str, object] = json.loads(result.stdout)["sync"]
    return sync


def test_a_failed_sync_keeps_the_last_success_and_shows_the_error(
    pg_dsn: str, tmp_path: Path
) -> None:
    data = tmp_path / "gate"
    with serving(pg_dsn) as central:
        fest = asyncio.run(_festival(pg_dsn))
        code = asyncio.run(enrol_code(pg_dsn, fest, "gate"))
        asyncio.run(enrol_device(central.url, code, name="gate-1", data_dir=data))
        synced = runner.invoke(app, ["sync", "-d", str(data), "--json"])
        assert synced.exit_code == 0, synced.output
    # Central has stopped: its port is closed now.
    success = json.loads(synced.stdout)["last_success_ms"]
    assert isinstance(success, int)
    failed = runner.invoke(app, ["sync", "-d", str(data), "--json"])
    assert failed.exit_code == 2, failed.output
    after = _status(data)
    assert after["last_success_ms"] == success
    assert str(after["last_error"]).startswith("ConnectError")
    assert isinstance(after["last_error_ms"], int) and after["last_error_ms"] >= success
    body = json.loads(failed.stdout)
    assert body["error"] == "sync_failed"
    assert f"last success: {local_time(success)} (" in body["detail"]
    human = runner.invoke(app, ["sync", "-d", str(data)])
    assert human.exit_code == 2 and human.stderr.count("\n") == 1
    assert human.stderr.startswith("error sync_failed: ConnectError")
    assert human.stderr.rstrip().endswith(
        f"check the link to {central.url}, then run `festgate sync -d {data}` again"
    )
    assert _status(data)["last_success_ms"] == success  # a second failure keeps it too
