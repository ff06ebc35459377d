"""`festgate doctor` end to end against a real central: an enrolled device passes every check
(exit 0), the same device before enrolment fails (exit 1)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from psycopg import AsyncConnection
from typer.testing import CliRunner

from central.sample import create_sample_festival
from edge.cli import app
from edge.doctor.run import replica_cursor
from tests.integration.conftest import enrol_code, serving

runner = CliRunner()


def _machine(tmp_path: Path) -> Path:
    """A root whose clock is synchronised (timesyncd's flag) and no kernel NFC module."""
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc/modules").write_text("ext4 1011712 2 - Live 0x0000000000000000\n")
    (root / "run/systemd/timesync").mkdir(parents=True)
    (root / "run/systemd/timesync/synchronized").touch()
    return root


async def _central_cursor(dsn: str, device_id: str) -> int:
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT cursor FROM device WHERE id = %s", (device_id,))
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def test_doctor_passes_an_enrolled_device_and_fails_one_that_is_not(
    pg_dsn: str, tmp_path: Path
) -> None:
    async def festival() -> str:
        async with await AsyncConnection.connect(pg_dsn) as conn:
            fest = await create_sample_festival(conn, signed_tickets=2, opaque_tickets=1)
        return await enrol_code(pg_dsn, fest, "gate")

    code = asyncio.run(festival())
    root, data = _machine(tmp_path), tmp_path / "gate"
    feed = tmp_path / "feed.txt"
    feed.touch()
    with serving(pg_dsn) as central:
        before = runner.invoke(app, ["doctor", "-d", str(data), "--root", str(root), "--json"])
        assert before.exit_code == 1, before.output
        failing = {c["name"] for c in json.loads(before.stdout)["checks"] if not c["ok"]}
        assert {"config", "data dir", "enrolled"} <= failing

        enrolled = runner.invoke(
            app, ["init", "--central", central.url, "--code", code, "-d", str(data), "--json"]
        )
        assert enrolled.exit_code == 0, enrolled.output
        config = data / "festgate.toml"  # where init wrote it: the doctor finds it there
        with config.open("a") as handle:
            handle.write(f'\n[[readers]]\ntype = "simulated"\nname = "feed"\nfeed = "{feed}"\n')
        after = runner.invoke(app, ["doctor", "-d", str(data), "--root", str(root), "--json"])
        assert after.exit_code == 0, after.output
        report = json.loads(after.stdout)
        assert report["ok"] is True
        names = [c["name"] for c in report["checks"]]
        assert {"central", "enrolled", "reader feed", "clock", "data dir"} <= set(names)
        # Central records the cursor a device asks from: the doctor asked from the device's own.
        device_id = json.loads(enrolled.stdout)["device_id"]
        cursor = replica_cursor(data)
        assert cursor is not None and cursor > 0
        assert asyncio.run(_central_cursor(pg_dsn, device_id)) == cursor

    # Central gone: the device is still enrolled, but central does not answer.
    gone = runner.invoke(app, ["doctor", "-d", str(data), "--root", str(root), "--json"])
    assert gone.exit_code == 1
    central_check = next(c for c in json.loads(gone.stdout)["checks"] if c["name"] == "central")
    assert not central_check["ok"] and "did not answer" in central_check["found"]
