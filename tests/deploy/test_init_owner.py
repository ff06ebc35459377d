"""`festgate init` run by root for the service user leaves nothing owned by root: with
`--user`, and by itself in a data dir deploy/install-device made for that user."""

from __future__ import annotations

import asyncio
import os
import pwd
import stat
import subprocess
from pathlib import Path

from psycopg import AsyncConnection

from central.sample import create_sample_festival
from tests.deploy.conftest import SERVICE_USER
from tests.integration.conftest import enrol_code, serving


def _owners(data: Path) -> set[str]:
    return {pwd.getpwuid(p.stat().st_uid).pw_name for p in [data, *data.iterdir()]}


def _modes(data: Path) -> set[int]:
    return {stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}


def test_root_enrols_for_the_service_user(pg_dsn: str, open_dir: Path, cli: list[str]) -> None:
    assert os.geteuid() == 0, "these tests run as root, as a site tech's sudo does"

    async def codes() -> list[str]:
        async with await AsyncConnection.connect(pg_dsn) as conn:
            fest = await create_sample_festival(conn, signed_tickets=2, opaque_tickets=1)
        return [await enrol_code(pg_dsn, fest, "gate") for _ in range(2)]

    by_option, by_owner = asyncio.run(codes())
    named, made = open_dir / "named", open_dir / "made"
    made.mkdir(mode=0o700)  # as deploy/install-device leaves /var/lib/festgate
    os.chown(made, pwd.getpwnam(SERVICE_USER).pw_uid, pwd.getpwnam(SERVICE_USER).pw_gid)
    with serving(pg_dsn) as central:
        for data, extra, code in [
            (named, ["--user", SERVICE_USER], by_option),
            (made, [], by_owner),
        ]:
            done = subprocess.run(
                [*cli, "init", "--central", central.url, "--code", code, "-d", str(data), *extra],
                check=False, capture_output=True, text=True, cwd=open_dir, timeout=120,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert _owners(data) == {SERVICE_USER}, data
            assert stat.S_IMODE(data.stat().st_mode) == 0o700
            assert _modes(data) == {0o600}
            assert {"credentials.json", "festgate.toml"} <= {p.name for p in data.iterdir()}
    # The service user runs the device from there: its status works without root.
    status = subprocess.run(
        ["setpriv", f"--reuid={SERVICE_USER}", f"--regid={pwd.getpwnam(SERVICE_USER).pw_gid}",
         "--init-groups",
         *cli, "status", "-d", str(named), "--json"],
        check=False, capture_output=True, text=True, cwd=open_dir,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr


def test_user_must_exist(open_dir: Path, cli: list[str]) -> None:
    done = subprocess.run(
        [*cli, "init", "--central", "http://127.0.0.1:9", "--code", "x", "-d",
         str(open_dir / "d"), "--user", "no-such-user-fg"],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no user 'no-such-user-fg' on this machine" in done.stderr
    assert not (open_dir / "d").exists()
