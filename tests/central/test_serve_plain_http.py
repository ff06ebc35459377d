"""A device refuses a plain http:// central off loopback unless its config says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.device import load_device_config
from config.errors import ConfigError

_DEVICE = "[device]\nname='g'\nrole='gate'\nzone='A'\n[central]\n"


def _load(tmp_path: Path, central: str) -> str:
    path = tmp_path / "festgate.toml"
    path.write_text(_DEVICE + central, encoding="utf-8")
    return str(load_device_config(path).central.url)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080", "http://127.0.0.2"],
)
def test_plain_http_on_loopback_is_fine(tmp_path: Path, url: str) -> None:
    assert _load(tmp_path, f"url = '{url}'\n").startswith(url)


@pytest.mark.parametrize(
    "url", ["http://10.0.0.5:8080", "http://central.festival.example", "http://[2001:db8::1]"]
)
def test_plain_http_elsewhere_is_refused_in_one_line_naming_the_key(
    tmp_path: Path, url: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, f"url = '{url}'\n")
    message = str(refused.value)
    assert "\n" not in message
    assert "central.allow_plain_http = true" in message
    assert "https://" in message


def test_plain_http_elsewhere_is_allowed_when_told(tmp_path: Path) -> None:
    told = _load(tmp_path, "url = 'http://10.0.0.5:8080'\nallow_plain_http = true\n")
    assert told == "http://10.0.0.5:8080/"


def test_https_anywhere_is_fine(tmp_path: Path) -> None:
    assert _load(tmp_path, "url = 'https://central.festival.example'\n").startswith("https://")
