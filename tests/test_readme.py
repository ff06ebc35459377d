"""The README runs as written: its shell blocks, in order, in a copy of this repository.

Every fenced ``sh`` block runs, top to bottom, in one bash session (so a variable or a
background job one block starts is there for the next), with ``set -euo pipefail``, in a
fresh directory holding the repository's tracked files and this checkout's ``.venv``. A
block preceded by ``<!-- readme-test: skip (why) -->`` is not run (the quick start's
``scripts/test`` would run this test again). Two things differ from a person's machine, so
that the test never touches theirs: the embedded PostgreSQL lives in a temporary
``XDG_DATA_HOME``, and central's example port 8080 is replaced by a free one.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<mark>[^>]*?) -->[ \t]*\n)?^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```",
    re.S | re.M,
)
EXAMPLE_PORT = "8080"


@dataclass(frozen=True)
class Block:
    """One fenced block of the README: its first line number, language and text."""

    line: int
    lang: str
    body: str
    skip: str | None


def blocks(text: str) -> list[Block]:
    """The README's fenced blocks in order."""
    return [
        Block(
            text.count("\n", 0, m.start("body")) + 1,
            m["lang"],
            m["body"],
            m["mark"][len("skip") :].strip(" ()") if (m["mark"] or "").startswith("skip") else None,
        )
        for m in _BLOCK.finditer(text)
    ]


def script(found: list[Block], port: int) -> str:
    """One bash script running every runnable block, each announced by its line number."""
    parts = [
        "set -euo pipefail",
        # Background jobs a block starts (central) end with the script, whatever happens.
        "trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT",
    ]
    for block in found:
        if block.lang != "sh" or block.skip is not None:
            continue
        body = block.body.replace(EXAMPLE_PORT, str(port))
        parts.append(f"echo '>>> README block at line {block.line}' >&2\n{body}")
    return "\n".join(parts) + "\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _copy_of_repository(dest: Path) -> Path:
    """The tracked files as a clone would have them, with this checkout's .venv."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    return dest


def test_every_block_is_runnable_or_says_why_not() -> None:
    found = blocks((ROOT / "README.md").read_text())
    assert [b for b in found if b.lang == "sh" and b.skip is None], "no runnable block found"
    assert all(b.skip for b in found if b.skip is not None), "a skip must say why"
    assert all(b.lang in ("sh", "text", "toml", "csv", "console") for b in found), [
        (b.line, b.lang) for b in found
    ]


def test_the_readme_runs_as_written(tmp_path: Path, pg_home: Path) -> None:
    work = _copy_of_repository(tmp_path / "festgate")
    text = script(blocks((ROOT / "README.md").read_text()), _free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("FESTGATE_")}
    env |= {"XDG_DATA_HOME": str(pg_home), "COLUMNS": "120"}
    proc = subprocess.run(
        ["bash", "-c", text], cwd=work, env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        announced = re.findall(r">>> README block at line (\d+)", proc.stderr)
        where = f"the block at README line {announced[-1]}" if announced else "the setup"
        said = f"{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}"
        pytest.fail(f"{where} failed (exit {proc.returncode}):\n{said}")
