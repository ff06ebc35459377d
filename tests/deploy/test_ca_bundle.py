"""A festival CA bundle the service user cannot read: `init` (run by root for that user) and
the daemon stop with exit status 2 and the command that installs it, never a traceback (the
unit does not restart on 2; a traceback's exit 1 would restart forever)."""

from __future__ import annotations

import pwd
import subprocess
from pathlib import Path

from tests.deploy.conftest import SERVICE_USER

FIX = "sudo install -m 0644 festival-ca.pem"


def _root_only_ca(where: Path) -> Path:
    ca = where / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    ca.chmod(0o600)  # as `cp` leaves a copy of a 0600 file: root reads it, the service not
    return ca


def test_init_refuses_a_ca_bundle_the_service_user_cannot_read(
    open_dir: Path, cli: list[str]
) -> None:
    ca = _root_only_ca(open_dir)
    data = open_dir / "data"
    done = subprocess.run(
        [*cli, "init", "--central", "https://127.0.0.1:9", "--code", "x", "-d", str(data),
         "--ca-bundle", str(ca), "--user", SERVICE_USER],
        check=False, capture_output=True, text=True, cwd=open_dir, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"{SERVICE_USER} cannot read {ca} (Permission denied)" in done.stderr
    assert FIX in done.stderr and "Traceback" not in done.stderr
    assert not (data / "credentials.json").exists()


def test_the_daemon_stops_with_a_config_error_on_an_unreadable_ca_bundle(
    open_dir: Path, cli: list[str]
) -> None:
    ca = _root_only_ca(open_dir)
    config = open_dir / "festgate.toml"
    config.write_text(
        f'[device]\nname = "bar-1"\nrole = "bar"\nvendor = "Main Bar"\n'
        f'data_dir = "{open_dir / "data"}"\n'
        f'[central]\nurl = "https://central.festival.example"\nca_bundle = "{ca}"\n'
    )
    config.chmod(0o644)
    as_service = [
        "setpriv", f"--reuid={SERVICE_USER}", f"--regid={pwd.getpwnam(SERVICE_USER).pw_gid}",
        "--init-groups",
    ]  # fmt: skip
    done = subprocess.run(
        [*as_service, *cli, "run", "--config", str(config)],
        check=False, capture_output=True, text=True, cwd=open_dir, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "central.ca_bundle" in done.stderr and FIX in done.stderr
    assert "Traceback" not in done.stderr
    # Root reads it: the same file passes `config check` for root, which is why the doctor
    # asks on the service user's behalf (tests/edge/test_doctor.py).
    checked = subprocess.run(
        [*cli, "config", "check", str(config)], check=False, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
