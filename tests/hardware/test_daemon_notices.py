"""A daemon that cannot do its job says so loudly at start, and `festgate status` says so too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from edge.cli import app
from edge.sample import build_sample

CLI = [sys.executable, "-c", "from edge.cli import main; main()"]
PATIENCE_S = 30.0
runner = CliRunner()


def _gate(tmp_path: Path, parts: str = "") -> tuple[Path, Path]:
    """A gate config (with `parts`) whose data dir was set up from a sample catalog."""
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        build_sample(seed=3, now=int(time.time()), tickets=10).snapshot.model_dump_json()
    )
    data = tmp_path / "data"
    toml = tmp_path / "gate.toml"
    toml.write_text(
        f'[device]\nname = "g"\nrole = "gate"\nzone = "General"\ndata_dir = "{data}"\n'
        f"[timeouts]\nshutdown_s = 2\n{parts}"
    )
    loaded = runner.invoke(app, ["catalog", "load", str(catalog), "-c", str(toml)])
    assert loaded.exit_code == 0, loaded.output
    return toml, data


def test_a_daemon_with_no_readers_and_no_enrolment_says_so_at_start_and_in_status(
    tmp_path: Path,
) -> None:
    toml, data = _gate(tmp_path)
    proc = subprocess.Popen(
        [*CLI, "run", "-c", str(toml)],
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    # A bound, not a wait: a daemon that never says it is ended, and the test fails.
    watchdog = threading.Timer(PATIENCE_S, proc.kill)
    watchdog.start()
    said: dict[str, dict[str, Any]] = {}
    for line in proc.stderr:
        record = json.loads(line)
        said[record.get("event", "")] = record
        if {"daemon.no_readers", "daemon.not_enrolled"} <= said.keys():
            break
    watchdog.cancel()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 0
    assert said["daemon.no_readers"]["level"] == "error"
    assert "add a [[readers]] section" in said["daemon.no_readers"]["msg"]
    assert said["daemon.not_enrolled"]["level"] == "warning"
    assert "`festgate init --central URL --code CODE" in said["daemon.not_enrolled"]["msg"]
    # Without the config, status reads what the daemon started with.
    info = json.loads(runner.invoke(app, ["status", "-d", str(data), "--json"]).stdout)
    assert (info["enrolled"], info["readers"]) == (False, [])
    assert [w["code"] for w in info["warnings"]] == ["no_readers", "not_enrolled"]
    human = runner.invoke(app, ["status", "-d", str(data)]).stdout
    assert "readers       0: none" in human
    assert "enrolled      no" in human
    assert "⚠ no readers: the daemon reads no codes or tags" in human


def test_status_with_a_config_counts_its_readers_before_any_daemon_ran(tmp_path: Path) -> None:
    toml, data = _gate(tmp_path, '[[readers]]\ntype = "simulated"\nname = "feed"\n')
    with_config = json.loads(runner.invoke(app, ["status", "-c", str(toml), "--json"]).stdout)
    assert (with_config["readers"], with_config["daemon"]) == (["feed"], None)
    assert with_config["set_by"] == "config"
    without = json.loads(runner.invoke(app, ["status", "-d", str(data), "--json"]).stdout)
    assert without["readers"] is None  # not known here: no daemon has run, no config given
    assert [w["code"] for w in without["warnings"]] == ["not_enrolled"]
    assert (without["role"], without["zone"]) == ("gate", "General")


def _run_refused(config: Path) -> str:
    """`festgate run -c config`, which must refuse to start: its stderr."""
    proc = subprocess.run(
        [*CLI, "run", "-c", str(config)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    return proc.stderr


def test_a_daemon_refuses_a_config_of_another_role_than_its_data_dir(tmp_path: Path) -> None:
    _, data = _gate(tmp_path)
    bar = tmp_path / "bar.toml"
    bar.write_text(
        f'[device]\nname = "b"\nrole = "bar"\nvendor = "Main Bar"\ndata_dir = "{data}"\n'
    )
    assert _run_refused(bar).startswith(
        f"error config: device.role: the config says bar, but {data} is a gate (set by its config)"
    )


def test_a_daemon_refuses_a_data_dir_that_holds_no_device_and_creates_none(tmp_path: Path) -> None:
    data = tmp_path / "data"
    toml = tmp_path / "gate.toml"
    toml.write_text(f'[device]\nname = "g"\nrole = "gate"\nzone = "General"\ndata_dir = "{data}"\n')
    said = _run_refused(toml)
    assert said.startswith(f"error no_data_dir: no device at {data}: no such directory")
    assert f"`festgate catalog load FILE -c {toml}`" in said
    assert not data.exists()
