"""`festgate doctor`'s checks, each passing and failing on real files in a temporary dir."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from config.device import DeviceConfig
from edge.cli import app
from edge.doctor import System, checks, examine
from edge.doctor.parts import needed_groups, needed_libraries, uses_usb_nfc
from edge.doctor.run import blocked_path, member_of, replica_cursor, unit_user
from hardware.sim_serial import PtyDevice

LDCONFIG = """\t3 libs found in cache `/etc/ld.so.cache'
\tlibusb-1.0.so.0 (libc6,x86-64) => /lib/x86_64-linux-gnu/libusb-1.0.so.0
\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1
"""
PROC_MODULES = """\
pn533_usb 20480 0 - Live 0x0000000000000000
pn533 45056 1 pn533_usb, Live 0x0000000000000000
nfc 131072 1 pn533, Live 0x0000000000000000
ext4 1011712 2 - Live 0x0000000000000000
"""
BLACKLIST = Path(__file__).resolve().parents[2] / "deploy/modprobe.d/festgate-blacklist.conf"


def test_system_library_is_found_in_ldconfig_or_named_with_its_package() -> None:
    found = checks.system_library("libusb", "libusb-1.0.so.0", "libusb-1.0-0", "nfc", LDCONFIG)
    assert found.ok
    missing = checks.system_library("libzbar", "libzbar.so.0", "libzbar0", "pyzbar", LDCONFIG)
    assert not missing.ok and missing.fix == "sudo apt install libzbar0"


def test_groups_name_the_missing_ones_and_the_command_that_adds_them() -> None:
    needed = {"dialout": "serial relay", "plugdev": "the NFC reader"}
    assert checks.groups("festgate", {"festgate", "dialout", "plugdev"}, needed).ok
    missing = checks.groups("festgate", {"festgate", "dialout"}, needed)
    assert not missing.ok
    assert missing.fix == "sudo usermod -aG plugdev festgate (then restart festgate)"
    assert "plugdev: the NFC reader" in missing.found


def test_loaded_kernel_nfc_modules_fail_and_a_missing_blacklist_fails() -> None:
    shipped = BLACKLIST.read_text()
    loaded = checks.nfc_modules(PROC_MODULES, shipped)
    assert not loaded.ok and loaded.fix.startswith("sudo modprobe -r pn533_usb pn533 nfc && ")
    clean = "ext4 1011712 2 - Live 0x0000000000000000\n"
    assert checks.nfc_modules(clean, shipped).ok
    unlisted = checks.nfc_modules(clean, None)
    assert not unlisted.ok and "festgate-blacklist.conf" in unlisted.fix


def test_clock_passes_when_synchronised_and_says_what_to_do_without_an_rtc() -> None:
    assert checks.clock(0, timesync_flag=False, has_rtc=False).ok  # TIME_OK from adjtimex
    assert checks.clock(None, timesync_flag=True, has_rtc=False).ok
    no_rtc = checks.clock(checks.TIME_ERROR, timesync_flag=False, has_rtc=False)
    assert not no_rtc.ok and "fake-hwclock" in no_rtc.fix
    with_rtc = checks.clock(checks.TIME_ERROR, timesync_flag=False, has_rtc=True)
    assert not with_rtc.ok and "fake-hwclock" not in with_rtc.fix and "set-ntp" in with_rtc.fix


def test_free_disk_below_the_minimum_fails(tmp_path: Path) -> None:
    assert checks.free_disk(tmp_path, checks.MIN_FREE_BYTES).ok
    low = checks.free_disk(tmp_path, checks.MIN_FREE_BYTES - 1)
    assert not low.ok and "512 MiB" in low.found


def test_data_dir_must_exist_be_private_and_not_be_roots_when_festgate_runs_as_another(
    tmp_path: Path,
) -> None:
    me = "root" if os.geteuid() == 0 else None
    missing = checks.data_dir(tmp_path / "none", "replica.sqlite3", "festgate")
    assert not missing.ok and missing.fix.startswith("sudo festgate init --user festgate ")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "credentials.json").write_text("{}")
    (private / "credentials.json").chmod(0o600)
    assert checks.data_dir(private, "replica.sqlite3", me).ok
    (private / "credentials.json").chmod(0o644)
    opened = checks.data_dir(private, "replica.sqlite3", me)
    assert not opened.ok and "credentials.json 0644" in opened.found
    assert opened.fix.startswith("`chmod 600 ")
    if os.geteuid() == 0:  # root's directory, while the unit runs festgate as `festgate`
        (private / "credentials.json").chmod(0o600)
        owned = checks.data_dir(private, "replica.sqlite3", "festgate")
        assert not owned.ok and owned.fix == f"sudo chown -R festgate: {private}"


def test_enrolment_and_central_outcomes_each_have_their_fix(tmp_path: Path) -> None:
    assert checks.enrolment(True, None, tmp_path).ok
    assert "festgate init" in checks.enrolment(False, None, tmp_path).fix
    revoked = checks.enrolment(True, "unauthorized: device revoked", tmp_path)
    assert not revoked.ok and "revoked" in revoked.fix
    url = "https://central.example"
    assert checks.central(url, None, None, 0.2).ok
    tls = checks.central(url, "ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED]", None, 0.2)
    assert not tls.ok and "ca_bundle" in tls.fix
    wrong_ca = checks.central(url, "SSL: CERTIFICATE_VERIFY_FAILED", tmp_path / "ca.pem", 0.2)
    assert "is not the CA" in wrong_ca.fix
    down = checks.central(url, "ConnectError: connection refused", None, 0.2)
    assert "curl -sv https://central.example" in down.fix
    assert not checks.central(None, None, None, 0).ok


def test_part_problems_split_into_what_and_fix() -> None:
    lib = checks.part(
        "reader",
        "reader",
        "NFC reader disabled: cannot import nfc (x); install the 'nfc' extra (`pip …`)",
    )
    assert lib.found == "NFC reader disabled: cannot import nfc (x)"
    assert lib.fix.startswith("install the 'nfc' extra")
    port = checks.part("relay", "actuator", "no serial port /dev/x: is it plugged in?")
    assert (port.found, port.fix) == ("no serial port /dev/x", "is it plugged in?")
    assert checks.part("feed", "reader", None).ok


def _config(tmp_path: Path, parts: str) -> Path:
    path = tmp_path / "device.toml"
    path.write_text(
        f'[device]\nname = "g"\nrole = "gate"\nzone = "General"\ndata_dir = "{tmp_path / "d"}"\n'
        + parts
    )
    return path


def test_the_parts_say_which_groups_and_libraries_they_need(tmp_path: Path) -> None:
    cfg = DeviceConfig.model_validate(
        {
            "device": {"name": "b", "role": "bar", "vendor": "v"},
            "readers": [
                {"type": "nfc", "name": "tap", "path": "usb"},
                {"type": "camera", "name": "cam", "source": "0", "decoder": "pyzbar"},
            ],
            "actuators": [{"type": "relay", "name": "door", "port": "/dev/festgate-relay"}],
        }
    )
    assert set(needed_groups(cfg)) == {"plugdev", "video", "dialout"}
    assert [lib[0] for lib in needed_libraries(cfg)] == ["libusb", "libzbar"]
    assert uses_usb_nfc(cfg)
    unit = "[Service]\nUser=gatekeeper\nGroup=gatekeeper\n"
    assert unit_user(unit) == "gatekeeper" and unit_user(None) is None
    assert "root" in (member_of("root") or set()) and member_of("no-such-user-fg") is None


def _system(tmp_path: Path, *, synced: bool) -> System:
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc/modules").write_text("ext4 1011712 2 - Live 0x0000000000000000\n")
    (root / "run/systemd/timesync").mkdir(parents=True)
    if synced:
        (root / "run/systemd/timesync/synchronized").touch()
    return System.under(root)


async def test_readers_are_opened_without_reading_and_a_missing_one_fails(
    tmp_path: Path,
) -> None:
    with PtyDevice() as scanner:
        config = _config(
            tmp_path,
            f'[[readers]]\ntype = "serial_scanner"\nname = "hand"\nport = "{scanner.port}"\n'
            '[[actuators]]\ntype = "display"\nname = "lamp"\nport = "/dev/ttyNOPE4"\n',
        )
        found = {c.name: c for c in await examine(config, None, _system(tmp_path, synced=True))}
    assert found["reader hand"].ok, found["reader hand"]
    lamp = found["actuator lamp"]
    assert not lamp.ok and lamp.found == "no serial port /dev/ttyNOPE4"
    assert found["clock"].ok and found["config"].ok
    assert not found["data dir"].ok  # never set up: init is the fix
    assert not found["central"].ok and not found["enrolled"].ok


def test_doctor_json_lists_every_check_and_exits_1_when_one_fails(tmp_path: Path) -> None:
    config = _config(tmp_path, "")
    root = _system(tmp_path, synced=False).proc_modules.parents[1]
    result = CliRunner().invoke(app, ["doctor", "-c", str(config), "--root", str(root), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    names = [c["name"] for c in report["checks"]]
    assert names[:4] == ["config", "data dir", "free disk", "clock"]
    assert "readers" in names and report["ok"] is False
    assert all(c["fix"] for c in report["checks"] if not c["ok"])
    people = CliRunner().invoke(app, ["doctor", "-c", str(config), "--root", str(root)])
    assert people.exit_code == 1 and "check(s) failed" in people.stdout
    assert "fix:" in people.stdout


def test_replica_cursor_is_read_from_a_relative_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    data = tmp_path / "dev"
    data.mkdir()
    with sqlite3.connect(data / "replica.sqlite3") as conn:
        conn.execute("CREATE TABLE sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO sync_state VALUES ('cursor', '41')")
    conn.close()
    monkeypatch.chdir(tmp_path)
    assert replica_cursor(Path("dev")) == 41
    assert replica_cursor(Path("none")) is None


def test_the_ca_bundle_must_be_readable_by_the_user_festgate_runs_as(tmp_path: Path) -> None:
    # Root reads everything; the daemon runs as its own user (here `nobody`).
    open_dir = Path(tempfile.mkdtemp(prefix="festgate-ca-"))
    try:
        open_dir.chmod(0o755)
        ca = open_dir / "ca.pem"
        ca.write_text("-----BEGIN CERTIFICATE-----\n")
        ca.chmod(0o644)
        assert blocked_path(ca, "nobody") is None
        assert checks.ca_bundle(ca, "nobody", None).ok
        ca.chmod(0o600)  # as `cp` leaves a copy of a 0600 file
        read = checks.ca_bundle(ca, "nobody", blocked_path(ca, "nobody"))
        assert not read.ok and read.found == f"nobody cannot read {ca}"
        assert read.fix.startswith(f"`sudo chmod 0644 {ca}`")
        ca.chmod(0o644)
        open_dir.chmod(0o750)  # a directory of another group, as central's /etc/festgate
        enter = checks.ca_bundle(ca, "nobody", blocked_path(ca, "nobody"))
        assert not enter.ok and enter.found.startswith(f"nobody cannot enter {open_dir},")
        assert enter.fix.startswith(f"`sudo chmod o+x {open_dir}`")
        assert blocked_path(ca, "root") is None
    finally:
        shutil.rmtree(open_dir)
    missing = checks.ca_bundle(
        tmp_path / "no.pem", "nobody", blocked_path(tmp_path / "no.pem", "nobody")
    )
    assert not missing.ok and "sudo install -m 0644 festival-ca.pem" in missing.fix


async def test_the_doctor_checks_the_configured_ca_bundle_for_the_service_user(
    tmp_path: Path,
) -> None:
    config = _config(
        tmp_path, f'[central]\nurl = "https://127.0.0.1:9"\nca_bundle = "{tmp_path / "ca.pem"}"\n'
    )
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    system = _system(tmp_path, synced=True)
    system.unit.parent.mkdir(parents=True)
    system.unit.write_text("[Service]\nUser=nobody\n")
    found = {c.name: c for c in await examine(config, None, system)}
    # pytest's tmp dirs are root's only (0700): the service user cannot reach the file.
    assert not found["ca bundle"].ok and "nobody cannot enter" in found["ca bundle"].found
    # A file that is no PEM certificate fails the central check, never the doctor itself.
    assert not found["central"].ok and "SSLError" in found["central"].found
