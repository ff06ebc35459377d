"""The device's SQLite schema as numbered forward-only migrations (PRAGMA user_version)."""

from __future__ import annotations

import sqlite3

from sync.facts import GATE_ADMITTING, spends_sql, sql_in

# Each entry migrates from version i to i + 1. Append only; never edit a shipped step.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE festival (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, starts_at INTEGER, ends_at INTEGER,
        currency TEXT NOT NULL, offline_allowance INTEGER NOT NULL, hash_key TEXT NOT NULL,
        seq INTEGER NOT NULL);
    CREATE TABLE signing_key (
        key_id INTEGER PRIMARY KEY, festival_id TEXT NOT NULL, public_key TEXT NOT NULL,
        revoked INTEGER NOT NULL, seq INTEGER NOT NULL);
    CREATE TABLE category (
        id TEXT PRIMARY KEY, festival_id TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
        valid_from INTEGER, valid_until INTEGER, seq INTEGER NOT NULL);
    CREATE TABLE ticket (
        id TEXT PRIMARY KEY, festival_id TEXT NOT NULL, category_id TEXT NOT NULL,
        status TEXT NOT NULL, code_hash TEXT, code_version INTEGER NOT NULL,
        suspicious INTEGER NOT NULL, seq INTEGER NOT NULL);
    CREATE UNIQUE INDEX ticket_code_hash ON ticket (code_hash) WHERE code_hash IS NOT NULL;
    CREATE TABLE zone (
        id TEXT PRIMARY KEY, festival_id TEXT NOT NULL, name TEXT NOT NULL, capacity INTEGER,
        occupancy INTEGER NOT NULL, required_types TEXT NOT NULL, reentry INTEGER NOT NULL,
        seq INTEGER NOT NULL);
    CREATE TABLE presence (
        ticket_id TEXT NOT NULL, zone_id TEXT NOT NULL, inside INTEGER NOT NULL,
        hlc INTEGER NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY (ticket_id, zone_id)) WITHOUT ROWID;
    CREATE TABLE account (
        id TEXT PRIMARY KEY, festival_id TEXT NOT NULL, tag_hash TEXT NOT NULL,
        balance INTEGER NOT NULL, blocked INTEGER NOT NULL, seq INTEGER NOT NULL);
    CREATE UNIQUE INDEX account_tag_hash ON account (tag_hash);
    CREATE TABLE vendor (
        id TEXT PRIMARY KEY, festival_id TEXT NOT NULL, name TEXT NOT NULL,
        is_open INTEGER NOT NULL, seq INTEGER NOT NULL);
    CREATE TABLE product (
        id TEXT PRIMARY KEY, vendor_id TEXT NOT NULL, name TEXT NOT NULL,
        price INTEGER NOT NULL, seq INTEGER NOT NULL);
    CREATE TABLE block (
        kind TEXT NOT NULL, ref TEXT NOT NULL, reason TEXT NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY (kind, ref)) WITHOUT ROWID;

    -- Facts recorded here. Never updated except for the sync bookkeeping columns.
    CREATE TABLE journal (
        device_seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
        verdict TEXT NOT NULL, hlc INTEGER NOT NULL, wall_ms INTEGER NOT NULL,
        catalog_seq INTEGER NOT NULL, payload TEXT NOT NULL,
        ticket_id TEXT, zone_id TEXT, account_id TEXT,
        delta INTEGER NOT NULL DEFAULT 0,   -- occupancy +-1 at a gate, cents at a bar
        acked INTEGER NOT NULL DEFAULT 0,   -- central holds it
        ack_seq INTEGER,                    -- central's feed head when it acked
        reflected INTEGER NOT NULL DEFAULT 0);  -- central's rows we hold already count it
    CREATE INDEX journal_ticket ON journal (ticket_id, zone_id, device_seq)
        WHERE ticket_id IS NOT NULL AND verdict IN ('ok', 'ok_reentry');
    CREATE INDEX journal_refund ON journal (json_extract(payload, '$.refund_of'))
        WHERE kind = 'refund';
    CREATE INDEX journal_unreflected ON journal (ack_seq) WHERE reflected = 0;

    -- This device's effects that central's snapshot does not show yet, kept by trigger so a
    -- decision reads one row instead of summing the journal.
    CREATE TABLE pending (
        scope TEXT NOT NULL, ref TEXT NOT NULL, delta INTEGER NOT NULL,
        PRIMARY KEY (scope, ref)) WITHOUT ROWID;
    CREATE TRIGGER journal_pending_zone AFTER INSERT ON journal
        WHEN NEW.zone_id IS NOT NULL AND NEW.delta != 0
    BEGIN
        INSERT INTO pending VALUES ('zone', NEW.zone_id, NEW.delta)
            ON CONFLICT (scope, ref) DO UPDATE SET delta = delta + excluded.delta;
    END;
    CREATE TRIGGER journal_pending_account AFTER INSERT ON journal
        WHEN NEW.account_id IS NOT NULL AND NEW.delta != 0
    BEGIN
        INSERT INTO pending VALUES ('account', NEW.account_id, NEW.delta)
            ON CONFLICT (scope, ref) DO UPDATE SET delta = delta + excluded.delta;
        INSERT INTO pending
            SELECT 'spent', NEW.account_id, -NEW.delta WHERE NEW.kind IN ('sale', 'refund')
            ON CONFLICT (scope, ref) DO UPDATE SET delta = delta + excluded.delta;
    END;

    CREATE TABLE sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: sync asks for unacknowledged events on every push; without this it scanned the
    # whole journal (on the writer, between scans) once a festival had filled it.
    """
    CREATE INDEX journal_unacked ON journal (device_seq) WHERE acked = 0;
    """,
    # 3: a presence row names the movement behind it, so a tie in HLC with this device's own
    # movement is broken as central breaks it (`sync.hlc.fact_order`).
    """
    ALTER TABLE presence ADD COLUMN device_id TEXT;
    ALTER TABLE presence ADD COLUMN device_seq INTEGER;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)

# What a fact means, as the statements of MIGRATIONS spell it: each fragment, generated from
# its declaration in `sync.facts`, and the statement (`sqlite_master.name`) it is frozen in.
# A test checks every one is there, word for word, in the migrated database: a declaration
# that changes needs a new step here. `edge.store` and `edge.journal` build their
# statements from the same generators (the scan's lookup must say what the index says).
FACT_FRAGMENTS: dict[str, str] = {
    "journal_ticket": sql_in("verdict", GATE_ADMITTING),  # admitted gate movements
    "journal_pending_account": spends_sql("NEW.kind"),  # what the offline allowance counts
}


class SchemaTooNew(RuntimeError):
    """The replica was written by a newer festgate; refuse rather than guess."""


def migrate(conn: sqlite3.Connection) -> int:
    """Bring a database to SCHEMA_VERSION, one step per transaction; return the version."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"replica schema {version} is newer than this festgate ({SCHEMA_VERSION})"
        )
    for step in range(version, SCHEMA_VERSION):
        # executescript commits first, so wrap each step in its own explicit transaction.
        conn.executescript(
            f"BEGIN IMMEDIATE;\n{MIGRATIONS[step]}\nPRAGMA user_version = {step + 1};\nCOMMIT;"
        )
    return SCHEMA_VERSION
