"""How ops commands show what they get: names, local times, "5 min ago", amounts with their
currency for people; the models' own JSON for scripts (the API's shapes, one per line)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import typer
from psycopg import AsyncConnection
from pydantic import BaseModel
from rich.markup import escape

from central.cli_common import festival_id, table

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
# ISO 4217 minor units where they are not 2 (amounts are integers of the minor unit).
_EXPONENTS = {"BHD": 3, "CLP": 0, "ISK": 0, "JOD": 3, "JPY": 0, "KRW": 0, "KWD": 3, "OMR": 3,
              "TND": 3, "UGX": 0, "VND": 0, "XAF": 0, "XOF": 0}  # fmt: skip


def on_festival(
    ref: str, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any
) -> Callable[[AsyncConnection[Any]], Awaitable[T]]:
    """Work for `run`: ``fn(conn, <the festival's id>, *args, **kw)``, the festival by slug."""

    async def work(conn: AsyncConnection[Any]) -> T:
        return await fn(conn, await festival_id(conn, ref), *args, **kw)

    return work


def local(at: datetime | None) -> str:
    """A time as the festival reads it (the answer's times are in its zone already)."""
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M %Z").strip()


def ago(seconds: int | None) -> str:
    """How long ago, roughly: "just now", "5 min ago", "3 h ago", "2 days ago"."""
    if seconds is None:
        return "never"
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def money(amount: int, currency: str) -> str:
    """Minor units as an amount of `currency`: 1250 EUR → "12.50 EUR"."""
    places = _EXPONENTS.get(currency, 2)
    sign, units = ("-" if amount < 0 else ""), abs(amount)
    if places == 0:
        return f"{sign}{units:,} {currency}"
    whole, minor = divmod(units, 10**places)
    return f"{sign}{whole:,}.{minor:0{places}d} {currency}"


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
        table(columns, (row(item) for item in items))


def fields(pairs: Iterable[tuple[str, Any]]) -> str:
    """``name  value`` lines for one thing shown to people."""
    return "\n".join(
        f"{name:18} {'-' if value is None else escape(str(value))}" for name, value in pairs
    )
