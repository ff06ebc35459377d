"""How every `festgate` command reports an error: one line that says what to do (exit 2)."""

from __future__ import annotations

import json
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

err = Console(stderr=True)


def fail(code: str, detail: str, as_json: bool = False) -> NoReturn:
    """Print `error CODE: detail` on stderr, or `{"error", "detail"}` on stdout; exit 2."""
    if as_json:
        print(json.dumps({"error": code, "detail": detail}))
    else:
        # One line however long (a fix command must stay copyable); the detail is not markup.
        err.print(f"[bold red]error[/] {code}: {escape(detail)}", soft_wrap=True)
    raise typer.Exit(2)
