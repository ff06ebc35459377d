"""The quick start's walk-through runs and shows the verdicts it promises."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from edge import demo


async def test_walkthrough_shows_each_story(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "DATA", tmp_path / "demo")
    buffer = io.StringIO()
    await demo._run(Console(file=buffer, width=200))
    text = buffer.getvalue()
    for code in ("already_inside", "ok_reentry", "wrong_zone", "cancelled", "blocked", "forged",
                 "unknown", "approved", "insufficient_funds", "offline_limit", "tag_blocked",
                 "unknown_tag", "Exit recorded"):  # fmt: skip
        assert code in text, code
    assert "gate: 11 events journaled" in text
