"""The identity of the history central serves (`sync.protocol.HISTORY_HEADER`).

A restore from a backup takes central back in time, and feed seqs after the backup are
handed out again to other changes: a device's cursor then names changes it never saw. The
database's own rows cannot tell (a dump restores every table), so the identity is taken
from PostgreSQL, from what a restore changes:

- the cluster's system identifier: a restore into a new cluster (`initdb`, then restore);
- the database's OID: a `pg_restore` into a new database (docs/backup.md's procedure);
- the WAL timeline: a point-in-time recovery or a promoted replica starts a new one.

Read once per process at start (central is stopped for a restore). Each part is read on
its own: a part the role may not read (an operator revoked the function from PUBLIC) is
``?`` and logged, and the rest still tell a restore into a new database.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import AsyncConnection

log = logging.getLogger(__name__)
UNKNOWN = "?"
# The insert timeline, not `pg_control_checkpoint().timeline_id`: after a promotion the
# control file keeps the old timeline until the first checkpoint on the new one, which is
# requested, not waited for, and a central started meanwhile would serve the old identity
# (PostgreSQL 15, 3 s after `pg_ctl promote -w`: the control file said 1, the WAL 2).
_PARTS: tuple[tuple[str, str], ...] = (
    ("system identifier", "SELECT system_identifier::text FROM pg_control_system()"),
    ("database", "SELECT oid::text FROM pg_database WHERE datname = current_database()"),
    (
        "timeline",
        "SELECT ('x' || left(pg_walfile_name(pg_current_wal_lsn()), 8))::bit(32)::int::text",
    ),
)


async def _part(conn: AsyncConnection[Any], what: str, query: str) -> str:
    try:
        async with conn.transaction():  # a savepoint: a refused part leaves the rest readable
            cur = await conn.execute(query)
            rec = await cur.fetchone()
    except psycopg.errors.InsufficientPrivilege as exc:
        log.warning(
            "central cannot read the database's %s (%s): devices may not be told of a"
            " restore into a new cluster or a point-in-time recovery; GRANT EXECUTE on the"
            " function to central's role (docs/deploy-central.md)",
            what, exc.diag.message_primary,
        )  # fmt: skip
        return UNKNOWN
    if rec is None or rec[0] is None:
        return UNKNOWN
    return str(rec[0])


async def read(conn: AsyncConnection[Any]) -> str:
    """This database's history identity, e.g. ``7716242452624578704.16384.1``."""
    parts = [await _part(conn, what, query) for what, query in _PARTS]
    await conn.commit()
    return ".".join(parts)  # at most 20 + 10 + 10 digits and two dots: MAX_HISTORY_CHARS
