"""Migrations: an empty database goes to head; the embedded server starts and stops."""

from __future__ import annotations

from pathlib import Path

import psycopg
from pydantic import SecretStr

from central import pg
from central.migrations.versions import __name__ as _versions  # noqa: F401  (package exists)
from config.central import CentralConfig

CATALOG_TABLES = {
    "festival",
    "signing_key",
    "ticket_category",
    "ticket",
    "zone",
    "zone_access_log",
    "ticket_presence",
    "cashless_account",
    "cashless_transaction",
    "vendor",
    "product",
    "block_list",
    "staff_member",
    "staff_shift",
    "staff_checkin",
    "ops_user",
    "audit_log",
    "revoked_token",
    "change_feed",
    "replica_row",
    "feed_head",
}


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_migrate_takes_an_empty_database_to_head(pg_empty_dsn: str) -> None:
    assert pg.current_revision(pg_empty_dsn) is None
    pg.migrate(pg_empty_dsn)
    assert _tables(pg_empty_dsn) >= CATALOG_TABLES
    head = pg.current_revision(pg_empty_dsn)
    assert head is not None
    pg.migrate(pg_empty_dsn)  # idempotent at head
    assert pg.current_revision(pg_empty_dsn) == head


def test_schema_checks_refuse_values_outside_the_enums(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        try:
            conn.execute(
                "INSERT INTO ops_user (id, name, role, token_hash) "
                "VALUES (gen_random_uuid(), 'x', 'ROOT', %s)",
                (b"\0" * 32,),
            )
        except psycopg.errors.CheckViolation:
            pass
        else:
            raise AssertionError("role ROOT accepted")


def test_embedded_server_starts_serves_and_stops(pg_home: Path) -> None:
    with pg.start_embedded(pg_home / "pgdata") as server:
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        dsn = server.dsn
    try:
        psycopg.connect(dsn, connect_timeout=2).close()
    except psycopg.OperationalError:
        pass
    else:
        raise AssertionError("embedded server still accepts connections after close")


def test_settings_prefer_a_dsn_and_fall_back_to_embedded(pg_home: Path) -> None:
    given = CentralConfig(dsn=SecretStr("postgresql://example/db"), data_dir=pg_home)
    with pg.open_database(given) as dsn:
        assert dsn == "postgresql://example/db"
    embedded = CentralConfig(dsn=None, data_dir=pg_home / "pg")
    with pg.open_database(embedded) as dsn, psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
