"""The device CLI does no harm by accident: a mistyped path creates nothing, a data dir knows
what it was set up as, and every error says in one line what to do."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.cli import app
from edge.store import DB_NAME, Store
from edge.sync_link import Credentials, save_credentials
from tests.edge.conftest import NOW_MS
from tests.edge.test_cli import BAR, _sample

runner = CliRunner()

# Commands that use a device and never set one up.
USERS = {
    "status": ["status"],
    "sync": ["sync"],
    "scan": ["scan", "EXT-0000000000000000"],
    "charge": ["charge", "04a1b2c3d4e5f6", "--amount", "100"],
    "topup": ["topup", "04a1b2c3d4e5f6", "--amount", "100"],
    "refund": ["refund", "0190f000-0000-7000-8000-000000000000"],
}


@pytest.mark.parametrize("command", USERS.values(), ids=USERS.keys())
def test_a_mistyped_data_dir_is_an_error_naming_it_and_nothing_is_created(
    tmp_path: Path, command: list[str]
) -> None:
    typo = tmp_path / "var" / "gaet"
    as_json = runner.invoke(app, [*command, "-d", str(typo), "--json"])
    assert as_json.exit_code == 2, as_json.output
    body = json.loads(as_json.stdout)
    assert body["error"] == "no_data_dir"
    assert body["detail"].startswith(f"no device at {typo}: no such directory; ")
    human = runner.invoke(app, [*command, "-d", str(typo)])
    assert human.exit_code == 2
    assert human.stderr.count("\n") == 1, human.stderr
    assert human.stderr.startswith(f"error no_data_dir: no device at {typo}: ")
    assert f"`festgate catalog load FILE -d {typo}`" in human.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", USERS.values(), ids=USERS.keys())
def test_a_directory_that_holds_no_device_is_left_as_it_was(
    tmp_path: Path, command: list[str]
) -> None:
    parent = tmp_path / "var"  # `-d var` for `-d var/gate`
    parent.mkdir(mode=0o700)
    result = runner.invoke(app, [*command, "-d", str(parent), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"] == "no_data_dir"
    assert f"holds no {DB_NAME}" in json.loads(result.stdout)["detail"]
    assert list(parent.iterdir()) == []


def test_a_relative_path_is_shown_as_typed_and_as_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["status", "-d", "var/gaet", "--json"])
    detail = json.loads(result.stdout)["detail"]
    assert detail.startswith(f"no device at var/gaet ({tmp_path}/var/gaet): no such directory")


def test_catalog_load_sets_a_device_up_that_remembers_what_it_is(tmp_path: Path) -> None:
    data, codes = _sample(tmp_path, "--role", "bar", "--vendor", "main bar")
    assert (data / DB_NAME).is_file()
    info = json.loads(runner.invoke(app, ["status", "-d", str(data), "--json"]).stdout)
    assert (info["role"], info["vendor"], info["set_by"]) == ("bar", "Main Bar", "catalog load")
    human = runner.invoke(app, ["status", "-d", str(data)])
    assert "role          bar, vendor Main Bar (set by catalog load)" in human.stdout
    # The bar charges for its vendor without being told again, and is no gate.
    sale = runner.invoke(
        app, ["charge", codes["tags"]["alice"], "--amount", "450", "-d", str(data)]
    )
    assert sale.exit_code == 0, sale.output
    scan = runner.invoke(app, ["scan", codes["codes"]["standard-8"], "-d", str(data), "--json"])
    assert scan.exit_code == 2
    assert json.loads(scan.stdout)["error"] == "wrong_role"
    assert f"{data} is a bar (set by its catalog load), not a gate" in scan.stdout
    # A reload keeps what it is; it cannot make the bar a gate.
    catalog = str(tmp_path / "s" / "catalog.json")
    again = runner.invoke(app, ["catalog", "load", catalog, "-d", str(data), "--json"])
    assert (json.loads(again.stdout)["role"], json.loads(again.stdout)["vendor"]) == (
        "bar",
        "Main Bar",
    )
    gate = runner.invoke(app, ["catalog", "load", catalog, "-d", str(data), "--role", "gate"])
    assert gate.exit_code == 2 and "error wrong_role: " in gate.stderr


def test_a_gate_scans_in_the_zone_it_was_set_up_for(tmp_path: Path) -> None:
    data, codes = _sample(tmp_path, "--role", "gate", "--zone", "general")
    scan = runner.invoke(app, ["scan", codes["codes"]["standard-8"], "-d", str(data), "--json"])
    assert scan.exit_code == 0, scan.output
    assert json.loads(scan.stdout)["zone"] == "General"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["--zone", "Nowhere"], "unknown_zone"),
        (["--role", "bar", "--vendor", "Nobody"], "unknown_vendor"),
        (["--role", "bar", "--zone", "General"], "bad_option"),
        (["--role", "topup", "--vendor", "Main Bar"], "bad_option"),
    ],
)
def test_catalog_load_checks_what_it_is_told_before_creating_anything(
    tmp_path: Path, options: list[str], error: str
) -> None:
    _sample(tmp_path)
    new = tmp_path / "new"
    catalog = str(tmp_path / "s" / "catalog.json")
    result = runner.invoke(app, ["catalog", "load", catalog, "-d", str(new), *options, "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"] == error
    assert not new.exists()


def test_an_enrolled_device_takes_its_catalog_from_central_not_from_a_file(tmp_path: Path) -> None:
    _sample(tmp_path)
    enrolled = tmp_path / "enrolled"
    creds = Credentials(central_url="https://central.example", device_id="d", token="t",
                        festival_id="f", role="gate")  # fmt: skip
    save_credentials(enrolled, creds)
    catalog = str(tmp_path / "s" / "catalog.json")
    result = runner.invoke(app, ["catalog", "load", catalog, "-d", str(enrolled), "--json"])
    assert result.exit_code == 2
    body = json.loads(result.stdout)
    assert body["error"] == "enrolled" and f"`festgate sync -d {enrolled}`" in body["detail"]
    assert os.listdir(enrolled) == ["credentials.json"]


def test_a_command_that_needs_a_catalog_says_which_command_loads_it(tmp_path: Path) -> None:
    data = tmp_path / "gate"

    async def empty_device() -> None:  # as an interrupted first load leaves one
        await (await Store.open(data)).close()

    asyncio.run(empty_device())
    result = runner.invoke(app, ["scan", "EXT-0000000000000000", "-d", str(data)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error no_catalog: no catalog in {data}: run "
        f"`festgate catalog load FILE -d {data} --role gate`\n"
    )
    info = json.loads(runner.invoke(app, ["status", "-d", str(data), "--json"]).stdout)
    assert [w["code"] for w in info["warnings"]] == ["no_catalog", "not_enrolled"]
    assert info["role"] is None


@pytest.mark.usefixtures("fixed_tz")
def test_status_shows_local_time_and_how_long_ago_and_json_keeps_unix_ms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _ = _sample(tmp_path, *BAR)
    before = runner.invoke(app, ["status", "-d", str(data)])
    assert "last sync     never" in before.stdout
    # What the sync engine leaves after a success 3 minutes ago and a failure 1 minute ago.
    saved = {"head_seq": 60, "lag": 0, "last_success_ms": NOW_MS - 180_000,
             "last_error": "ConnectError: refused", "last_error_ms": NOW_MS - 60_000,
             "clock_offset_ms": 1_250, "refused": None}  # fmt: skip
    conn = sqlite3.connect(data / DB_NAME)
    with conn:
        conn.execute("INSERT INTO sync_state VALUES ('sync_status', ?)", (json.dumps(saved),))
    conn.close()
    monkeypatch.setattr("edge.cli.wall_clock_ms", lambda: NOW_MS)
    human = runner.invoke(app, ["status", "-d", str(data)])
    assert human.exit_code == 0, human.output
    assert "last sync     2026-09-21 16:10:20 FGT (3 min ago)" in human.stdout
    assert (
        "sync error    2026-09-21 16:12:20 FGT (1 min ago): ConnectError: refused" in human.stdout
    )
    assert "clock         central 1.2 s ahead" in human.stdout
    as_json = json.loads(runner.invoke(app, ["status", "-d", str(data), "--json"]).stdout)
    assert as_json["sync"] == saved


def test_version_is_the_installed_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"festgate {version('festgate')}\n"
