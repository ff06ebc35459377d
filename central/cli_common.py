"""What every `festgate-central` command shares: where the database is, one connection per
command, readable tables for people, one JSON object for scripts, errors in one line.

Where the database is gets resolved once, in the app's callback (`resolve`): ``--dsn``, else
``FESTGATE_CENTRAL_DSN``, else the settings file's ``dsn``, else an embedded PostgreSQL in
``--data-dir`` / ``FESTGATE_CENTRAL_DATA_DIR`` / the file's ``data_dir`` / the default
(`config.central.default_data_dir`). Only `migrate` and `serve` may create a database;
every other command refuses a missing, unreachable or unmigrated one with one line that
says what to run. With ``--json`` an error is one JSON object on stdout as well.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import psycopg
import typer
from psycopg import AsyncConnection
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from central import kek, pg, refs
from central.errors import CatalogError, ImportRowError
from config.central import CentralConfig, load_central_config
from config.errors import ConfigError

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object for scripts")]
FestivalOpt = Annotated[str, typer.Option("--festival", "-f", help="festival slug or id")]


def actor() -> str:
    """Who the audit log names for a command run here: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container)
        return "cli"


def resolve(
    ctx: typer.Context, config: Path | None, dsn: str | None, data_dir: Path | None
) -> CentralConfig:
    """Central's settings from the file, the environment and these flags (None: not given)."""
    try:
        return load_central_config(config, dsn=dsn, data_dir=data_dir)
    except ConfigError as exc:
        # The command's own options are not parsed yet: its --json is still a raw argument.
        fail(str(exc), "bad_config", status=2, as_json="--json" in _raw_args(ctx))


def _raw_args(ctx: typer.Context) -> list[str]:
    return [*getattr(ctx, "protected_args", []), *ctx.args]


def settings(ctx: typer.Context) -> CentralConfig:
    """The settings the app's callback resolved."""
    config = ctx.find_root().obj
    assert isinstance(config, CentralConfig)
    return config


def wants_json(ctx: typer.Context) -> bool:
    """Whether the command asked for JSON (its ``--json`` option)."""
    return bool(ctx.params.get("as_json"))


def fail(message: str, code: str = "error", *, status: int = 1, as_json: bool = False) -> NoReturn:
    """Stop the command: one line on stderr (and one JSON object on stdout with `as_json`)."""
    if as_json:
        typer.echo(json.dumps({"error": code, "detail": message}))
    # One line whatever the terminal's width, and the message taken as text, not markup.
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(status)


def run(ctx: typer.Context, work: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
    """Open the command's database (which must exist at the newest schema), run `work` on
    one connection and commit; a refusal (unknown name, bad row, conflict) is one line."""

    async def go(dsn: str) -> T:
        async with await AsyncConnection.connect(dsn) as conn:
            result = await work(conn)
            await conn.commit()
            return result

    as_json = wants_json(ctx)
    try:
        with pg.open_database(settings(ctx), create=False) as dsn:
            pg.check_schema(dsn)
            kek.install(kek.resolve(settings(ctx)))
            return asyncio.run(go(dsn))
    except pg.DatabaseUnusable as exc:
        fail(str(exc), "database_unusable", status=2, as_json=as_json)
    except kek.KekError as exc:
        fail(str(exc), "kek_unusable", status=2, as_json=as_json)
    except CatalogError as exc:
        # The API's code for the same refusal (central.errors), but a bad import file's.
        fail(
            str(exc), "bad_import" if isinstance(exc, ImportRowError) else exc.code, as_json=as_json
        )
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0]
        fail(f"lost the database: {first}", "database_unusable", as_json=as_json)


async def festival_id(conn: AsyncConnection[Any], ref: str) -> Any:
    """A festival's id by slug or id (the `--festival` option)."""
    return await refs.festival(conn, ref)


def emit(as_json: bool, data: Any, human: str) -> None:
    """Print `data` as one JSON object for scripts, or `human` (rich markup) for people."""
    if as_json:
        typer.echo(json.dumps(data, default=str))
    else:
        console.print(human)


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    nowrap: Collection[str] = (),
) -> None:
    """Print rows as a table for people (values shown as text; None as "-"); the `nowrap`
    columns (times, ids) are never broken across lines."""
    out = Table(title=title)
    for column in columns:
        out.add_column(column, no_wrap=column in nowrap)
    for row in rows:
        out.add_row(*("-" if v is None else escape(str(v)) for v in row))
    console.print(out)
