"""The udev rules give every stable name the example configs use, never a plug-order name."""

from __future__ import annotations

import re

from config.device import load_device_config
from config.hardware import CameraReaderConfig
from tests.deploy.conftest import ROOT

RULES = ROOT / "deploy/udev/99-festgate.rules"


def _rules() -> list[str]:
    return [line for line in RULES.read_text().splitlines() if line and not line.startswith("#")]


def test_every_rule_line_is_well_formed_and_sets_a_group() -> None:
    pair = re.compile(r'^(?:[A-Z_]+(?:\{[^}]+\})?)(?:==|\+=|=)"[^"]*"$')
    for rule in _rules():
        parts = [p.strip() for p in rule.split(", ")]
        assert all(pair.match(p) for p in parts), rule
        if not any(p.startswith("ENV{ID_MM_DEVICE_IGNORE}") for p in parts):
            assert any(p.startswith("GROUP=") for p in parts), rule


def test_example_configs_use_only_names_the_rules_make() -> None:
    made = {f"/dev/{name}" for name in re.findall(r'SYMLINK\+="([^"$%]+)"', RULES.read_text())}
    assert {"/dev/festgate-relay", "/dev/festgate-display", "/dev/festgate-scanner"} <= made
    used = set()
    for example in ("gate.toml", "bar.toml"):
        cfg = load_device_config(ROOT / "config/examples" / example)
        for part in [*cfg.readers, *cfg.actuators]:
            port = getattr(part, "port", None) or (
                part.source if isinstance(part, CameraReaderConfig) else None
            )
            if port is not None:
                used.add(port)
    assert used and used <= made, used - made
    assert not any(re.search(r"/dev/tty(USB|ACM)\d", name) for name in used)
