"""deploy/install-device into a temporary root: the files, their modes and owners, the unit,
and a bar's environment without OpenCV or numpy (a real pip install, from the constraints)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT, SERVICE_USER, SYSTEM_PYTHON


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _owner(path: Path) -> str:
    return pwd.getpwuid(path.stat().st_uid).pw_name


def unit_keys(text: str) -> dict[str, list[str]]:
    """`Section.Key` → every value it has, in order (systemd keys repeat, so no configparser)."""
    keys: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        keys.setdefault(f"{section}.{key}", []).append(value)
    return keys


def test_install_lays_out_the_device_with_private_data(installed: Path) -> None:
    data = installed / "var/lib/festgate"
    assert _mode(data) == 0o700 and _owner(data) == SERVICE_USER
    conf = installed / "etc/festgate"  # the festival's CA bundle: root's, the service may read
    assert _mode(conf) == 0o750 and _owner(conf) == "root"
    assert conf.stat().st_gid == pwd.getpwnam(SERVICE_USER).pw_gid
    for path in [
        "etc/systemd/system/festgate.service",
        "etc/udev/rules.d/99-festgate.rules",
        "etc/modprobe.d/festgate-blacklist.conf",
        "opt/festgate/examples/bar.toml",
        "opt/festgate/docs/deploy-device.md",
    ]:
        assert _mode(installed / path) == 0o644, path
    link = installed / "usr/local/bin/festgate"
    assert link.is_symlink() and str(link.readlink()) == "/opt/festgate/venv/bin/festgate"
    record = dict(
        line.split("=", 1) for line in (installed / "opt/festgate/INSTALL").read_text().split("\n")
        if line
    )  # fmt: skip
    # Not the live system: the user is recorded for the image, never created here.
    assert record["user"] == SERVICE_USER and record["user_created"].startswith("no (--root")
    assert (record["role"], record["extras"]) == ("bar", "nfc")
    assert record["config"] == "/var/lib/festgate/festgate.toml"


def test_unit_runs_what_init_writes_and_stops_on_a_config_error(installed: Path) -> None:
    keys = unit_keys((installed / "etc/systemd/system/festgate.service").read_text())
    assert keys["Service.User"] == [SERVICE_USER]
    # The paths `festgate init` uses by default (config.device.DEFAULT_DATA_DIR).
    assert keys["Service.ExecStart"] == [
        "/opt/festgate/venv/bin/festgate run --config /var/lib/festgate/festgate.toml"
    ]
    assert "FESTGATE_CONFIG=/var/lib/festgate/festgate.toml" in keys["Service.Environment"]
    assert keys["Service.StateDirectory"] == ["festgate"]
    assert keys["Service.StateDirectoryMode"] == ["0700"]
    assert keys["Service.RestartPreventExitStatus"] == ["2"]
    assert keys["Service.Restart"] == ["on-failure"]
    assert "time-sync.target" in keys["Unit.After"][0].split()
    wait = keys["Service.ExecStartPre"][0]
    assert wait.startswith("-/usr/bin/timeout ") and wait.endswith("systemd-time-wait-sync")
    # The wait is bounded below the start timeout: an offline gate still starts.
    assert int(wait.split()[1]) < int(keys["Service.TimeoutStartSec"][0])
    assert set(keys["Service.SupplementaryGroups"][0].split()) >= {"dialout", "plugdev"}
    allowed = {v.split()[0] for v in keys["Service.DeviceAllow"]}
    assert allowed >= {"char-ttyUSB", "char-ttyACM", "char-ttyAMA", "char-usb_device"}
    assert keys["Service.DevicePolicy"] == ["closed"]


def test_systemd_accepts_the_installed_unit(installed: Path, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: `apt-get install systemd` to verify the unit")
    # The unit as shipped (User=festgate: systemd rightly warns about `nobody`), its
    # /opt/festgate pointed at the temporary root, whose program exists.
    text = (ROOT / "deploy/festgate.service").read_text()
    unit = tmp_path / "festgate.service"
    unit.write_text(text.replace("/opt/festgate", str(installed / "opt/festgate")))
    done = subprocess.run(
        [analyze, "verify", str(unit)], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_bar_installs_without_opencv_or_numpy_and_builds_its_nfc_reader(
    installed: Path, tmp_path: Path
) -> None:
    python = installed / "opt/festgate/venv/bin/python"
    for module in ("cv2", "numpy", "zxingcpp", "pyzbar"):
        found = subprocess.run([python, "-c", f"import {module}"], check=False, capture_output=True)
        assert found.returncode == 1, f"{module} is installed on a bar"
    helped = subprocess.run(
        [installed / "opt/festgate/venv/bin/festgate", "--help"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert helped.returncode == 0 and "doctor" in helped.stdout, helped.stderr
    # The bar example's NFC reader is built; a camera added to it is disabled with the fix.
    config = tmp_path / "bar.toml"
    example = (installed / "opt/festgate/examples/bar.toml").read_text()
    config.write_text(
        example.replace('"/var/lib/festgate"', f'"{tmp_path / "data"}"')
        + '\n[[readers]]\ntype = "camera"\nname = "cam"\nsource = "0"\n'
    )
    built = subprocess.run(
        [python, "-c", _BUILD, str(config)],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    lines = built.stdout.splitlines()
    assert lines[0] == "readers: reader (NfcWristbandReader)"
    assert re.fullmatch(
        r"disabled: cam: camera reader disabled: cannot import cv2 \(.*\); install the "
        r"'camera' extra \(`pip install 'festgate\[camera\]'`\)",
        lines[1],
    ), lines[1]
    assert lines[2] == "heavy modules loaded: none"


# Runs in the installed environment: the daemon's parts from a config, and what got imported.
_BUILD = """
import sys
from config.device import load_device_config
import edge.cli, edge.runtime, edge.status, sync.engine
from edge.runtime import build_parts
parts = build_parts(load_device_config(__import__("pathlib").Path(sys.argv[1])))
print("readers:", ", ".join(f"{r.name} ({type(r).__name__})" for r in parts.readers))
print("disabled:", "; ".join(f"{n}: {why}" for n, why in parts.disabled.items()))
heavy = sorted({"cv2", "numpy"} & set(sys.modules))
print("heavy modules loaded:", ", ".join(heavy) or "none")
"""


def test_a_python_the_service_user_cannot_run_is_refused_before_the_program_is_touched(
    open_dir: Path,
) -> None:
    # A Python under a directory only root enters, as root's pyenv in /root is.
    hidden = open_dir / "root-only"
    hidden.mkdir(mode=0o700)
    (hidden / "python3").symlink_to(SYSTEM_PYTHON)
    root = open_dir / "root"
    root.mkdir(mode=0o755)

    def install(python: Path | str, source: Path = ROOT) -> subprocess.CompletedProcess[str]:
        # Root's PATH finds the hidden one first, as a pyenv's shims come first in /root.
        path = f"{hidden}:{os.environ['PATH']}"
        return subprocess.run(
            [str(ROOT / "deploy/install-device"), "--root", str(root), "--role", "bar",
             "--user", SERVICE_USER, "--python", str(python), "--source", str(source)],
            check=False, capture_output=True, text=True, timeout=300,
            env={**os.environ, "PATH": path},
        )  # fmt: skip

    refused = install(hidden / "python3")
    assert refused.returncode == 2, refused.stderr
    assert f"{SERVICE_USER} cannot run {hidden / 'python3'}" in refused.stderr
    assert "give --python /usr/bin/python3" in refused.stderr
    venv_python = root / "opt/festgate/venv/bin/python"
    assert not venv_python.exists()
    # With the system's Python the virtualenv is made, runnable by the service user (an
    # empty --source stops the run at pip, after the virtualenv: the full install is
    # `installed`'s).
    made = install(SYSTEM_PYTHON, source=open_dir / "no-source")
    assert "cannot run" not in made.stderr and made.returncode != 0
    assert _runs_as_service_user(venv_python)
    # An upgrade with the hidden Python, by path or by name on root's PATH (the service
    # user's PATH finds another python3), is refused and leaves the program as it was.
    for python in (hidden / "python3", "python3"):
        again = install(python)
        assert again.returncode == 2, again.stderr
        assert f"cannot run {hidden / 'python3'}" in again.stderr
        assert _runs_as_service_user(venv_python)


def _runs_as_service_user(python: Path) -> bool:
    done = subprocess.run(
        ["runuser", "-u", SERVICE_USER, "--", str(python), "-c", ""],
        check=False,
        capture_output=True,
    )
    return done.returncode == 0
