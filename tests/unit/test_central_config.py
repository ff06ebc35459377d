"""Central's settings: one class, read from the settings file, then the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.central import CentralConfig, load_central_config
from config.errors import ConfigError
from config.vocab import MAX_OFFSET_MS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_sync_bounds_are_read_from_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CLOCK_SKEW_BOUND_MS", "MAX_WAIT_S", "SNAPSHOT_CHUNK", "MAX_PUSH_BYTES"):
        monkeypatch.delenv(f"FESTGATE_CENTRAL_{name}", raising=False)
    file = tmp_path / "central.toml"
    file.write_text("clock_skew_bound_ms = 5000\nsnapshot_chunk = 100\n")
    monkeypatch.setenv("FESTGATE_CENTRAL_SNAPSHOT_CHUNK", "200")
    monkeypatch.setenv("FESTGATE_CENTRAL_MAX_PUSH_BYTES", "65536")
    config = load_central_config(file)
    assert (config.clock_skew_bound_ms, config.snapshot_chunk) == (5000, 200)
    assert (config.max_push_bytes, config.max_wait_s) == (65536, 30.0)
    monkeypatch.delenv("FESTGATE_CENTRAL_SNAPSHOT_CHUNK")
    monkeypatch.delenv("FESTGATE_CENTRAL_MAX_PUSH_BYTES")
    # By default central flags the skew devices themselves refuse to adopt.
    assert CentralConfig().clock_skew_bound_ms == MAX_OFFSET_MS


def test_a_bad_sync_bound_names_its_key(tmp_path: Path) -> None:
    file = tmp_path / "central.toml"
    file.write_text("clock_skew_bound_ms = 10\n")
    with pytest.raises(ConfigError, match="clock_skew_bound_ms"):
        load_central_config(file)


def test_every_central_setting_is_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    assert [name for name in CentralConfig.model_fields if f"`{name}`" not in text] == []
