"""The `festgate` CLI as a site tech uses it, on a real data directory."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from edge.cli import app

runner = CliRunner()


def _sample(tmp_path: Path, *setup: str) -> tuple[Path, dict[str, dict[str, str]]]:
    """A data dir set up from the sample catalog (`setup`: --role and its place)."""
    result = runner.invoke(app, ["catalog", "sample", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    codes = json.loads((tmp_path / "s" / "codes.json").read_text())
    catalog = str(tmp_path / "s" / "catalog.json")
    load = runner.invoke(app, ["catalog", "load", catalog, "-d", str(tmp_path / "d"), *setup])
    assert load.exit_code == 0, load.output
    return tmp_path / "d", codes


BAR = ("--role", "bar", "--vendor", "Main Bar")


def test_scan_shows_code_and_text_and_exit_status(tmp_path: Path) -> None:
    data, codes = _sample(tmp_path)
    code = codes["codes"]["standard-8"]
    first = runner.invoke(app, ["scan", code, "--zone", "General", "-d", str(data)])
    assert first.exit_code == 0 and "ok" in first.output and "Welcome in" in first.output
    again = runner.invoke(app, ["scan", code, "--zone", "General", "-d", str(data), "--json"])
    assert again.exit_code == 1
    assert json.loads(again.output)["verdict"] == "already_inside"


def test_charge_by_product_shows_balance(tmp_path: Path) -> None:
    data, codes = _sample(tmp_path, *BAR)
    tag = codes["tags"]["alice"]
    result = runner.invoke(app, ["charge", tag, "--product", "Beer:2", "-d", str(data), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert (body["verdict"], body["amount"], body["balance"]) == ("approved", 900, 4100)


def test_bad_input_is_an_error_with_a_code(tmp_path: Path) -> None:
    data, codes = _sample(tmp_path, *BAR)
    result = runner.invoke(
        app, ["charge", codes["tags"]["alice"], "--amount", "-5", "-d", str(data), "--json"]
    )
    assert result.exit_code == 2
    assert json.loads(result.output)["error"] == "invalid_amount"
    bad_catalog = tmp_path / "bad.json"
    bad_catalog.write_text('{"format": "festgate-catalog/1", "tables": 3}')
    loaded = runner.invoke(app, ["catalog", "load", str(bad_catalog), "-d", str(data), "--json"])
    assert loaded.exit_code == 2 and json.loads(loaded.output)["error"] == "bad_catalog"


def test_status_counts_events(tmp_path: Path) -> None:
    data, _ = _sample(tmp_path)
    runner.invoke(app, ["scan", "garbage", "--zone", "General", "-d", str(data)])
    result = runner.invoke(app, ["status", "-d", str(data), "--json"])
    assert result.exit_code == 0
    info = json.loads(result.output)
    assert (info["events"], info["pending_events"], info["festival"]) == (1, 1, "Sample Festival")
    assert info["tables"]["ticket"] == 50


def test_config_check(tmp_path: Path) -> None:
    examples = Path(__file__).parents[2] / "config" / "examples"
    ok = runner.invoke(app, ["config", "check", str(examples / "gate.toml")])
    assert ok.exit_code == 0 and "valid" in ok.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[device]\nname='x'\nrole='bar'\nfoo=1\n")
    result = runner.invoke(app, ["config", "check", str(bad), "--json"])
    assert result.exit_code == 2
    problems = json.loads(result.output)["problems"]
    assert "device.foo: unknown key" in problems


def test_a_catalog_file_repeating_a_key_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    data, _ = _sample(tmp_path)
    catalog = json.loads((tmp_path / "s" / "catalog.json").read_text())
    catalog["tables"]["ticket"].append(catalog["tables"]["ticket"][0])
    bad = tmp_path / "dup.json"
    bad.write_text(json.dumps(catalog))
    result = runner.invoke(app, ["catalog", "load", str(bad), "-d", str(data), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.output)["error"] == "bad_catalog"
    status = json.loads(runner.invoke(app, ["status", "-d", str(data), "--json"]).output)
    assert status["tables"]["ticket"] == 50  # the catalog loaded before is untouched
