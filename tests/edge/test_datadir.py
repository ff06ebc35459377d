"""A device's data dir is private to its user: created 0700/0600, an open one refused with
the command that fixes it. Real files in tmp dirs; the daemon as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from config.errors import ConfigError
from edge.cli import app
from edge.store import DB_NAME, Store

runner = CliRunner()


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask most shells have (0022): files would be 0644 unless festgate says otherwise."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _fix(message: str) -> str:
    """The command a refusal tells the site tech to run."""
    found = re.search(r"`([^`]+)`", message)
    assert found is not None, message
    return found.group(1)


async def _run_fix(message: str) -> None:
    """Run that command in a shell, as the site tech would paste it."""
    proc = await asyncio.create_subprocess_shell(_fix(message))
    assert await proc.wait() == 0


async def test_a_new_data_dir_is_created_private_with_its_wal_and_shm(tmp_path: Path) -> None:
    data = tmp_path / "srv" / "gate"  # parents missing too
    store = await Store.open(data)
    try:
        await store.set_state("probe", "x")  # a commit: the WAL holds frames now
        names = {p.name: _mode(p) for p in data.iterdir()}
    finally:
        await store.close()
    assert _mode(data) == 0o700
    assert names == {DB_NAME: 0o600, f"{DB_NAME}-wal": 0o600, f"{DB_NAME}-shm": 0o600}


async def test_an_existing_open_data_dir_is_refused_and_the_fix_works(tmp_path: Path) -> None:
    data = tmp_path / "gate"
    data.mkdir(mode=0o755)
    with pytest.raises(ConfigError) as err:
        await Store.open(data)
    message = str(err.value)
    assert "\n" not in message
    assert "open to other users (directory 0755)" in message
    assert _fix(message) == f"chmod 700 {data}"
    assert list(data.iterdir()) == []  # nothing was created in it
    await _run_fix(message)
    await (await Store.open(data)).close()


async def test_an_open_database_and_wal_are_refused_even_in_a_private_dir(
    tmp_path: Path,
) -> None:
    data = tmp_path / "gate"
    data.mkdir(mode=0o700)
    old = sqlite3.connect(data / DB_NAME, isolation_level=None)  # as festgate 0.x left it
    old.execute("PRAGMA journal_mode = WAL")
    old.execute("CREATE TABLE t (x)")
    try:
        with pytest.raises(ConfigError) as err:
            await Store.open(data)
    finally:
        old.close()
    message = str(err.value)
    assert f"open to other users ({DB_NAME} 0644" in message
    db = data / DB_NAME
    assert _fix(message) == f"chmod 600 {db}*"  # -wal and -shm go when SQLite closes
    assert _mode(db) == 0o644  # refused, not silently changed
    await _run_fix(message)
    await (await Store.open(data)).close()


async def test_a_data_dir_owned_by_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "gate"
    await (await Store.open(data)).close()
    owner = data.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 4242)  # the files stay the real owner's
    with pytest.raises(ConfigError) as err:
        await Store.open(data)
    message = str(err.value)
    assert f"({'directory'}, {DB_NAME})" in message and "owned by" in message
    assert _fix(message).startswith("sudo chown -R ")
    assert "or run festgate as" in message


async def test_root_is_told_to_run_festgate_as_the_owner_not_to_take_it_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `sudo festgate status -d /var/lib/festgate`: a chown to root would lock the daemon out.
    data = tmp_path / "gate"
    await (await Store.open(data)).close()
    if os.geteuid() == 0:
        os.chown(data, 4242, -1)  # as the daemon's user would own it
    else:
        monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(ConfigError) as err:
        await Store.open(data)
    message = str(err.value)
    assert "chown" not in message
    assert "(directory), not by root: run festgate as " in message
    assert message.endswith(" festgate …`)")


def test_the_cli_says_what_is_wrong_in_one_line_and_exits_2(tmp_path: Path) -> None:
    data = tmp_path / "bar"
    data.mkdir(mode=0o750)
    human = runner.invoke(app, ["status", "-d", str(data)])
    assert human.exit_code == 2
    assert human.stderr.count("\n") == 1, human.stderr
    assert human.stderr.startswith("error config: ")
    assert f"`chmod 700 {data}`" in human.stderr
    as_json = runner.invoke(app, ["status", "-d", str(data), "--json"])
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"] == "config"


def test_festgate_run_on_an_open_data_dir_exits_2_with_the_fix(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    toml = tmp_path / "gate.toml"
    toml.write_text(f'[device]\nname = "g"\nrole = "gate"\nzone = "General"\ndata_dir = "{data}"\n')
    cli = [sys.executable, "-c", "from edge.cli import main; main()"]
    proc = subprocess.run(
        [*cli, "run", "-c", str(toml)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error config: ") and f"`chmod 700 {data}`" in last
    assert "Traceback" not in proc.stderr


def test_write_private_closes_an_existing_file_before_writing(tmp_path: Path) -> None:
    from edge.datadir import write_private

    target = tmp_path / "festgate.toml"
    target.write_text("old")
    assert _mode(target) == 0o644
    write_private(target, "new")
    assert (_mode(target), target.read_text()) == (0o600, "new")


def test_saved_credentials_are_private_and_among_the_files_checked(tmp_path: Path) -> None:
    from edge import datadir
    from edge.sync_link import Credentials, save_credentials

    creds = Credentials(central_url="https://central.example", device_id="d", token="t",
                        festival_id="f", role="gate")  # fmt: skip
    path = save_credentials(tmp_path / "dev", creds)
    assert (_mode(path.parent), _mode(path)) == (0o700, 0o600)
    assert path in datadir.secret_files(path.parent, DB_NAME)
