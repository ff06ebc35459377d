"""Device config: TOML plus FESTGATE_ overrides, and errors that name the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.device import load_device_config
from config.errors import ConfigError
from config.hardware import CameraReaderConfig, RelayConfig

EXAMPLES = Path(__file__).parents[2] / "config" / "examples"


def test_examples_are_valid() -> None:
    gate = load_device_config(EXAMPLES / "gate.toml")
    assert gate.device.role == "gate" and gate.device.zone == "General"
    assert isinstance(gate.readers[0], CameraReaderConfig)
    assert isinstance(gate.actuators[0], RelayConfig) and gate.actuators[0].pulse_ms == 500
    bar = load_device_config(EXAMPLES / "bar.toml")
    assert bar.cashless.offline_allowance_cents == 1500
    sim = load_device_config(EXAMPLES / "gate-sim.toml")
    assert [r.type for r in sim.readers] == ["simulated"]


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FESTGATE_DEVICE__ZONE", "VIP")
    monkeypatch.setenv("FESTGATE_CENTRAL__LONG_POLL_S", "5")
    gate = load_device_config(EXAMPLES / "gate.toml")
    assert (gate.device.zone, gate.central.long_poll_s, gate.device.name) == (
        "VIP", 5.0, "gate-north-1",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[device]\nname='g'\nrole='gate'\nzone='A'\ncolour='red'\n", "device.colour: unknown key"),
        ("[device]\nrole='gate'\nzone='A'\n", "device.name: required key is missing"),
        ("[device]\nname='g'\nrole='door'\nzone='A'\n", "device.role: Input should be"),
        ("[device]\nname='g'\nrole='gate'\n", "device.zone is required for a gate"),
        (
            "[device]\nname='g'\nrole='gate'\nzone='A'\n[[readers]]\ntype='serial_scanner'\n"
            "name='s'\nport='/dev/x'\nbaud='fast'\n",
            "readers[0].baud: Input should be a valid integer",
        ),
        (
            "[device]\nname='g'\nrole='gate'\nzone='A'\n[[actuators]]\ntype='laser'\nname='l'\n",
            "actuators[0]: Input tag 'laser'",
        ),
        ("[device\nname=", "Expected"),
    ],
)
def test_errors_name_the_key_path(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_device_config(path)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_device_config(tmp_path / "nope.toml")
