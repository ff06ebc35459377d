"""The README's device CLI block says what it shows: each line of it, run as written after
the sample catalog it refers to, exits as expected and prints the key part of its answer
(`tests/test_readme.py` runs the whole README; this checks what these lines claim)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.test_readme import ROOT, blocks

SETUP = ".venv/bin/festgate catalog sample var/sample"  # made earlier in the README

# Per line of the block: the exit status and what its output must show.
EXPECTED = [
    (0, "festgate 0."),
    (0, "config/examples/gate.toml: valid"),
    (0, "into var/gate: a gate at General"),
    (0, "into var/bar: a bar at Main Bar"),
    (0, "into var/topup: a topup"),
    (0, "ok — Welcome in  (zone General)"),
    (0, "ok — Exit recorded"),
    (0, "approved — Approved  (amount 9.00 EUR, balance 41.00 EUR)"),
    (0, "approved — Approved  (amount 20.00 EUR, balance 70.00 EUR)"),
    (0, "role          bar, vendor Main Bar (set by catalog load)"),
    (0, '"role": "gate", "zone": "General"'),
]


def _device_cli_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.index("## The device CLI")
    found = [b for b in blocks(text) if b.lang == "sh" and text.count("\n", 0, section) < b.line]
    return found[0].body.splitlines()


def test_the_readme_device_cli_block_shows_what_it_says(tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "config").symlink_to(ROOT / "config")
    lines = _device_cli_block()
    assert len(lines) == len(EXPECTED), lines
    steps = [(SETUP, (0, "wrote var/sample")), *zip(lines, EXPECTED, strict=True)]
    for line, (status, shown) in steps:
        done = subprocess.run(
            ["bash", "-c", line], check=False, cwd=tmp_path, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert done.returncode == status, (line, done.stdout, done.stderr)
        assert shown in done.stdout, (line, done.stdout, done.stderr)
    assert sorted(p.name for p in (tmp_path / "var").iterdir()) == [
        "bar",
        "gate",
        "sample",
        "topup",
    ]
