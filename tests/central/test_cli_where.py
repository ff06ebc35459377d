"""`festgate-central` knows where its database is, and refuses one it cannot use in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner

from central.cli import app
from config.central import CONFIG_ENV

runner = CliRunner()


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No DSN or data dir from the environment, a home of its own, and another directory as
    the working directory."""
    for name in ("FESTGATE_CENTRAL_DSN", "FESTGATE_CENTRAL_DATA_DIR", CONFIG_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return tmp_path


def test_a_command_with_no_database_makes_none_and_says_what_to_run(clean_env: Path) -> None:
    result = runner.invoke(app, ["festival", "list"])
    assert result.exit_code == 2
    default = clean_env / "xdg" / "festgate" / "central"
    assert result.output.count("\n") == 1, result.output  # one line, no traceback
    assert f"no central database in {default}" in result.output
    assert "festgate-central migrate" in result.output
    assert not (clean_env / "xdg").exists() and not list((clean_env / "elsewhere").iterdir())
    as_json = runner.invoke(app, ["festival", "list", "--json"])
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout.splitlines()[0])["error"] == "database_unusable"


def test_an_unmigrated_database_is_refused_with_the_command_to_run(
    pg_empty_dsn: str, clean_env: Path
) -> None:
    dsn = pg_empty_dsn
    result = runner.invoke(app, ["--dsn", dsn, "festival", "list"])
    assert result.exit_code == 2
    assert "has no festgate schema: run `festgate-central migrate` first" in result.output
    assert runner.invoke(app, ["--dsn", dsn, "migrate"]).exit_code == 0
    assert runner.invoke(app, ["--dsn", dsn, "festival", "list", "--json"]).exit_code == 0


def test_a_wrong_dsn_is_one_line(pg_admin_dsn: str, clean_env: Path) -> None:
    parts = conninfo_to_dict(pg_admin_dsn)
    wrong = make_conninfo(pg_admin_dsn, dbname="festgate_no_such_db")
    proc = subprocess.run(
        [sys.executable, "-m", "central.cli", "--dsn", wrong, "festival", "list"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "COLUMNS": "80"},
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: cannot connect to PostgreSQL:")
    assert "festgate_no_such_db" in proc.stderr and parts.get("dbname") != "festgate_no_such_db"


def test_the_settings_file_names_the_database(pg_dsn: str, clean_env: Path) -> None:
    settings = clean_env / "central.toml"
    settings.write_text(f"dsn = {json.dumps(pg_dsn)}\n")
    by_flag = runner.invoke(app, ["--config", str(settings), "festival", "list", "--json"])
    assert by_flag.exit_code == 0, by_flag.output
    assert json.loads(by_flag.stdout) == {"festivals": []}
    os.environ[CONFIG_ENV] = str(settings)
    try:
        by_env = runner.invoke(app, ["festival", "list", "--json"])
    finally:
        del os.environ[CONFIG_ENV]
    assert by_env.exit_code == 0, by_env.output
    bad = clean_env / "bad.toml"
    bad.write_text("colour = 'red'\n")
    refused = runner.invoke(app, ["--config", str(bad), "festival", "list"])
    assert refused.exit_code == 2 and "colour: unknown key" in refused.output


def test_migrate_makes_the_embedded_database_in_the_default_place(
    clean_env: Path, pg_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(pg_home))  # where the embedded server may run
    assert runner.invoke(app, ["migrate", "--json"]).exit_code == 0
    assert (pg_home / "festgate" / "central" / "PG_VERSION").is_file()
    assert not list((clean_env / "elsewhere").iterdir())  # nothing where it was started
    listed = runner.invoke(app, ["festival", "list", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == {"festivals": []}


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("festgate-central ")
