"""How the festival-running commands (festival, vendor, key, user, device, enrol-code,
report) show what they get: tables of names for people, "5 min ago"; the models' own JSON
for scripts (the API's shapes). Times and money print as `central.cli_ops` prints them."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import typer
from psycopg import AsyncConnection
from pydantic import BaseModel

from central.cli_common import festival_id, table
from central.cli_ops import NOWRAP

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def on_festival(
    ref: str, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any
) -> Callable[[AsyncConnection[Any]], Awaitable[T]]:
    """Work for `run`: ``fn(conn, <the festival's id>, *args, **kw)``, the festival by slug."""

    async def work(conn: AsyncConnection[Any]) -> T:
        return await fn(conn, await festival_id(conn, ref), *args, **kw)

    return work


def ago(seconds: int | None) -> str:
    """How long ago, roughly: "just now", "5 min ago", "3 h ago", "2 days ago"."""
    if seconds is None:
        return "never"
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def to_json(data: BaseModel | Sequence[BaseModel]) -> Any:
    """A model, or a list of them, as plain JSON values (as the API answers)."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    return [item.model_dump(mode="json") for item in data]


def listing(
    json_out: bool,
    key: str,
    items: Sequence[M],
    columns: Sequence[str],
    row: Callable[[M], Sequence[Any]],
    *,
    empty: str = "",
) -> None:
    """Print `items` as ``{key: [...]}`` for scripts, or a table with one `row` each."""
    if json_out:
        typer.echo(json.dumps({key: to_json(items)}))
    elif not items and empty:
        typer.echo(empty)
    else:
        table(columns, (row(item) for item in items), nowrap=NOWRAP)
