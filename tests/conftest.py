"""Real PostgreSQL for every test that needs it: a migrated template, one fresh clone per test.

With ``FESTGATE_TEST_DSN`` set, databases are made on that server; otherwise an embedded
PostgreSQL starts once per session in a temporary directory. No test is ever skipped for
want of a database.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from central import pg
from central.sample import SampleFestival, create_sample_festival

# Central wraps signing keys with a key-encryption key (central.kek): the tests' own, for the
# centrals they run in this process and in the processes they start.
os.environ.setdefault("FESTGATE_CENTRAL_KEK", "ZmVzdGdhdGUtdGVzdHMta2VrLTMyLWJ5dGVzLWxvbmc=")
_RUN = uuid.uuid4().hex[:8]
_counter = itertools.count(1)


def _outside_pytest_tmp() -> Path:
    # As root an embedded server runs as another user, and every new pytest session makes
    # /tmp/pytest-of-root 0700 again, which cut a running server off its own files: two
    # test runs at once must both pass, so servers live in a directory of their own.
    home = Path(tempfile.mkdtemp(prefix="festgate-test-pg-"))
    home.chmod(0o755)
    return home


@pytest.fixture
def pg_home() -> Iterator[Path]:
    """A directory for an embedded PostgreSQL a test starts itself, removed afterwards."""
    home = _outside_pytest_tmp()
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """DSN of a server where tests may create databases (FESTGATE_TEST_DSN or embedded)."""
    given = os.environ.get("FESTGATE_TEST_DSN")
    if given:
        yield given
        return
    home = _outside_pytest_tmp()
    server = pg.start_embedded(home / "pgdata")
    try:
        yield server.dsn
    finally:
        server.close()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(pg_admin_dsn: str) -> Iterator[str]:
    """Name of a database migrated to head, cloned by every test that needs one."""
    name = f"fgt_{_RUN}_template"
    with pg.scratch_database(pg_admin_dsn, name) as dsn:
        pg.migrate(dsn)
        yield name


@pytest.fixture
def pg_empty_dsn(pg_admin_dsn: str) -> Iterator[str]:
    """DSN of a fresh database with no schema at all."""
    with pg.scratch_database(pg_admin_dsn, f"fgt_{_RUN}_e{next(_counter)}") as dsn:
        yield dsn


@pytest.fixture
def pg_dsn(pg_admin_dsn: str, pg_template: str) -> Iterator[str]:
    """DSN of a fresh database at the newest schema, dropped after the test."""
    name = f"fgt_{_RUN}_{next(_counter)}"
    with pg.scratch_database(pg_admin_dsn, name, template=pg_template) as dsn:
        yield dsn


@pytest.fixture
async def pg_pool(pg_dsn: str) -> AsyncIterator[AsyncConnectionPool]:
    """An open async pool on the test's fresh database."""
    pool = await pg.connect_pool(pg_dsn, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


FestivalFactory = Callable[..., Awaitable[SampleFestival]]


@pytest.fixture
def festival(pg_pool: AsyncConnectionPool) -> FestivalFactory:
    """Factory: ``await festival(**kw)`` builds a committed sample festival (key, category,
    zone, signed + opaque tickets, bar with a product, wristbands) via the catalog writes;
    keyword arguments go to `central.sample.create_sample_festival`."""

    async def make(**kw: Any) -> SampleFestival:
        async with pg_pool.connection() as conn:
            return await create_sample_festival(conn, **kw)

    return make
