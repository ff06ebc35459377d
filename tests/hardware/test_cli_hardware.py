"""`festgate hardware list|test` as a site tech runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.cli import app
from hardware.discovery import cameras, nfc_readers
from hardware.serial_relay import lcus_frame
from hardware.sim_serial import PtyDevice

runner = CliRunner()


def write_config(tmp_path: Path, parts: str) -> Path:
    toml = tmp_path / "gate.toml"
    toml.write_text(
        f'[device]\nname = "g"\nrole = "gate"\nzone = "General"\ndata_dir = "{tmp_path}"\n' + parts
    )
    return toml


def test_hardware_list_json_is_a_list_of_found_parts() -> None:
    result = runner.invoke(app, ["hardware", "list", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert isinstance(found, list)
    assert all({"kind", "path", "name", "problems"} <= set(item) for item in found)


def test_nfc_reader_held_by_kernel_driver_is_flagged(tmp_path: Path) -> None:
    sys_root, dev = tmp_path / "sys", tmp_path / "dev"
    usb = sys_root / "bus/usb/devices/1-2"
    usb.mkdir(parents=True)
    for name, value in {
        "idVendor": "054c",
        "idProduct": "06c3",
        "busnum": "1",
        "devnum": "5",
    }.items():
        (usb / name).write_text(value + "\n")
    iface = sys_root / "bus/usb/devices/1-2/1-2:1.0"
    iface.mkdir()
    (tmp_path / "drivers/port100").mkdir(parents=True)
    os.symlink(tmp_path / "drivers/port100", iface / "driver")
    found = nfc_readers(sys_root, dev)
    assert [(f.path, f.name) for f in found] == [("usb:001:005", "Sony RC-S380")]
    assert "modprobe -r" in found[0].problems[0]


def test_cameras_are_listed_by_index(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/video0").write_text("")
    (tmp_path / "dev/video10").write_text("")
    found = cameras(tmp_path / "dev", tmp_path / "sys")
    assert [f.path for f in found] == ["0", "10"]


def test_hardware_test_prints_each_code_and_tag_as_it_arrives(tmp_path: Path) -> None:
    feed = tmp_path / "feed.txt"
    feed.write_text("FG1.hello\ntag:04a1b2c3d4e5f6\n")
    toml = write_config(
        tmp_path, f'[[readers]]\ntype = "simulated"\nname = "sim"\nfeed = "{feed}"\n'
    )
    result = runner.invoke(app, ["hardware", "test", "sim", "-c", str(toml), "--seconds", "0.5"])
    assert result.exit_code == 0, result.output
    assert "sim: code 'FG1.hello'" in result.output
    assert "sim: tag 04a1b2c3d4e5f6" in result.output


def test_hardware_test_pulse_opens_the_relay_once(tmp_path: Path) -> None:
    with PtyDevice() as relay:
        toml = write_config(
            tmp_path,
            f'[[actuators]]\ntype = "relay"\nname = "turnstile"\nport = "{relay.port}"\n'
            "pulse_ms = 20\n",
        )
        result = runner.invoke(app, ["hardware", "test", "turnstile", "-c", str(toml), "--pulse"])
        sent = relay.read(0.5)
    assert result.exit_code == 0, result.output
    # One pulse: ON, then OFF (closing sends OFF again, which leaves it released).
    on, off = lcus_frame(1, True), lcus_frame(1, False)
    assert sent.startswith(on + off) and sent.count(on) == 1 and sent.endswith(off)
    assert "turnstile: test verdict sent" in result.output


def test_hardware_test_fails_plainly_on_a_missing_port(tmp_path: Path) -> None:
    toml = write_config(
        tmp_path,
        '[[readers]]\ntype = "serial_scanner"\nname = "hand"\nport = "/dev/ttyNOPE3"\n',
    )
    # A bound, not a wait: the test ends as soon as its only reader has failed.
    result = runner.invoke(app, ["hardware", "test", "-c", str(toml), "--seconds", "60"])
    assert result.exit_code == 1, result.output
    assert "no serial port /dev/ttyNOPE3" in result.output
    assert result.output.strip().splitlines()[-1] == "hardware test failed: hand"
    unknown = runner.invoke(app, ["hardware", "test", "nope", "-c", str(toml)])
    assert unknown.exit_code == 2 and "no reader or actuator named 'nope'" in unknown.output


def test_hardware_test_fails_when_a_decoder_library_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "zxingcpp", None)  # as on a machine without zxing-cpp
    toml = write_config(tmp_path, '[[readers]]\ntype = "camera"\nname = "cam"\nsource = "0"\n')
    result = runner.invoke(app, ["hardware", "test", "-c", str(toml), "--seconds", "60"])
    assert result.exit_code == 1, result.output
    assert "cam: zxing decoder disabled: cannot import zxingcpp" in result.output
    assert result.output.strip().splitlines()[-1] == "hardware test failed: cam"


def test_hardware_test_fails_when_a_reader_is_unplugged_during_the_test(tmp_path: Path) -> None:
    cli = [sys.executable, "-c", "from edge.cli import main; main()"]
    with PtyDevice() as scanner:
        toml = write_config(
            tmp_path,
            f'[[readers]]\ntype = "serial_scanner"\nname = "hand"\nport = "{scanner.port}"\n',
        )
        proc = subprocess.Popen(
            [*cli, "hardware", "test", "-c", str(toml), "--seconds", "120"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("reading from hand")
        scanner.close()  # unplugged (before or after the driver opened it: both are failures)
        _, errors = proc.communicate(timeout=60)
    assert proc.returncode == 1, errors
    assert errors.strip().splitlines()[-1] == "hardware test failed: hand"
