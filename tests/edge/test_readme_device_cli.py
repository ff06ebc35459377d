"""The README's device CLI block runs as written on a fresh clone after `scripts/bootstrap`:
each line as its own shell command in an empty directory beside the clone's .venv and config."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).parents[2]

# The block proposed for README "The device CLI", verbatim.
README_BLOCK = """\
.venv/bin/festgate --version
.venv/bin/festgate config check config/examples/gate.toml  # each problem by key path, or a summary
.venv/bin/festgate catalog sample var/sample               # a sample catalog, codes and tags to try
.venv/bin/festgate catalog load var/sample/catalog.json -d var/gate --role gate --zone General
.venv/bin/festgate catalog load var/sample/catalog.json -d var/bar --role bar --vendor "Main Bar"
.venv/bin/festgate catalog load var/sample/catalog.json -d var/topup --role topup
.venv/bin/festgate scan EXT-881ED162AE2EB154 -d var/gate         # an entry into the gate's zone
.venv/bin/festgate scan EXT-881ED162AE2EB154 --exit -d var/gate  # and its exit
.venv/bin/festgate charge 9e89fc15e2e424 --product Beer:2 -d var/bar   # or --amount 450 (cents)
.venv/bin/festgate topup 9e89fc15e2e424 --amount 2000 -d var/topup
.venv/bin/festgate status -d var/bar          # what it is, holds and lacks; times as local time
.venv/bin/festgate status -d var/gate --json  # one JSON object; times in unix ms
"""

# Per line: the exit status and what its output must show.
EXPECTED = [
    (0, "festgate 0."),
    (0, "config/examples/gate.toml: valid"),
    (0, "wrote var/sample/catalog.json and var/sample/codes.json"),
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


def test_the_readme_device_cli_block_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    (tmp_path / "config").symlink_to(REPO / "config")
    lines = README_BLOCK.splitlines()
    assert len(lines) == len(EXPECTED)
    for line, (status, shown) in zip(lines, EXPECTED, strict=True):
        done = subprocess.run(
            ["bash", "-c", line],
            check=False,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == status, (line, done.stdout, done.stderr)
        assert shown in done.stdout, (line, done.stdout, done.stderr)
    assert sorted(p.name for p in (tmp_path / "var").iterdir()) == [
        "bar",
        "gate",
        "sample",
        "topup",
    ]
