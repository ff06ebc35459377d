"""deploy/festgate-central.service: what it must say, and `systemd-analyze verify`."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

UNIT = Path(__file__).parents[2] / "deploy" / "festgate-central.service"


def _unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)  # systemd repeats keys (DeviceAllow)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT, encoding="utf-8")
    return parser


def test_the_unit_runs_serve_as_its_own_user_and_stops_restarting_on_a_config_error() -> None:
    unit = _unit()
    service = unit["Service"]
    assert service["ExecStart"].split()[1:] == ["serve"]
    assert service["ExecStart"].endswith("festgate-central serve")
    assert service["User"] == "festgate-central"
    assert service["EnvironmentFile"] == "/etc/festgate/central.env"
    assert service["RestartPreventExitStatus"] == "2"  # `fail(..., status=2)`: bad config
    assert service["Restart"] == "on-failure"
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert service[hardening] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is on this machine's image (systemd package)"
    # verify wants ExecStart's binary to exist: point it at one that does.
    text = UNIT.read_text(encoding="utf-8").replace(
        "/opt/festgate/.venv/bin/festgate-central", shutil.which("true") or "/bin/true"
    )
    copy = tmp_path / "festgate-central.service"
    copy.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
    )
    problems = [
        line
        for line in done.stderr.splitlines()
        if "festgate-central.service" in line and "User" not in line  # no such user here
    ]
    assert problems == [], done.stderr
