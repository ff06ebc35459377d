"""Sync schema: enrolled devices, enrol codes, device events (facts), their views, conflicts.

Revision ID: 0002_sync
Revises: 0001_catalog
"""

from __future__ import annotations

from alembic import op

revision = "0002_sync"
down_revision = "0001_catalog"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE device (
    id              uuid PRIMARY KEY,
    festival_id     uuid NOT NULL REFERENCES festival(id),
    name            text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    role            text NOT NULL CHECK (role IN ('gate','bar','topup')),
    zone_id         uuid REFERENCES zone(id),
    vendor_id       uuid REFERENCES vendor(id),
    token_hash      bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),  -- sha256 of token
    enrolled_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz,
    last_push_at    timestamptz,
    acked_through   bigint NOT NULL DEFAULT 0,  -- highest contiguous device_seq held
    max_seq         bigint NOT NULL DEFAULT 0,  -- highest device_seq held
    cursor          bigint NOT NULL DEFAULT 0,  -- change-feed seq the device last asked after
    clock_offset_ms bigint,  -- device wall clock minus central's, at its last push
    pending_events  bigint,  -- unacknowledged events the device says it holds
    revoked_at      timestamptz
);
CREATE INDEX device_festival_idx ON device (festival_id);

CREATE TABLE enrol_code (
    code_hash   bytea PRIMARY KEY CHECK (length(code_hash) = 32),  -- sha256 of the code
    festival_id uuid NOT NULL REFERENCES festival(id),
    role        text NOT NULL CHECK (role IN ('gate','bar','topup')),
    zone_id     uuid REFERENCES zone(id),
    vendor_id   uuid REFERENCES vendor(id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    device_id   uuid REFERENCES device(id)
);

-- Every fact a device pushed, stored as received (status says whether it took effect).
-- ticket_id/zone_id/account_id/amount are lifted from the payload when the event is
-- applied, so the conflict rules, the access log and the ledger read one subject's facts
-- through an index. Facts are stored once: the zone access log and the device part of the
-- cashless ledger are views over this table (below), not copies.
-- The highest-volume table and append-only, so no foreign keys: ingest holds the device
-- row FOR UPDATE while it stores, and takes festival_id from that enrolled device (devices
-- and festivals are never deleted). Two FK checks per row cost more than the insert itself.
CREATE TABLE device_event (
    device_id   uuid NOT NULL,  -- device(id), locked by ingest
    device_seq  bigint NOT NULL CHECK (device_seq >= 1),
    event_id    uuid NOT NULL UNIQUE,
    festival_id uuid NOT NULL,  -- festival(id), the device's
    kind        text NOT NULL,
    verdict     text NOT NULL,
    hlc         bigint NOT NULL,
    wall_ms     bigint NOT NULL,
    catalog_seq bigint NOT NULL,
    payload     jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    skew_ms     bigint NOT NULL DEFAULT 0,  -- wall_ms minus central's receive time
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','applied','rejected')),
    reason      text,
    ticket_id   uuid,
    zone_id     uuid,
    account_id  uuid,
    amount      bigint,
    PRIMARY KEY (device_id, device_seq),
    CHECK ((status = 'rejected') = (reason IS NOT NULL))
);
CREATE INDEX device_event_ticket_idx ON device_event (ticket_id, hlc)
    WHERE ticket_id IS NOT NULL AND status = 'applied';
CREATE INDEX device_event_account_idx ON device_event (account_id, hlc)
    WHERE account_id IS NOT NULL AND status = 'applied';

-- A uuid from a payload string the way Python's uuid.UUID reads one (hyphens, braces and
-- urn:uuid: prefixes ignored, 32 hex digits), or NULL when malformed. Ingest checks
-- payloads with it inside its one INSERT ... SELECT (inlined: plain SQL, immutable). The
-- canonical spelling is tested first, cheaply: LIKE for the hyphens' places, then a plain
-- character class (a regex with bounded repetitions, {8}, costs ten times as much).
CREATE FUNCTION payload_uuid(s text) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN s LIKE '________-____-____-____-____________' AND s ~ '^[-0-9a-fA-F]+$'
      AND length(replace(s, '-', '')) = 32
      THEN s::uuid
    WHEN btrim(replace(replace(replace(lower(s), 'urn:', ''), 'uuid:', ''), '-', ''), '{}')
         ~ '^[0-9a-f]+$'
      AND length(btrim(replace(replace(replace(lower(s), 'urn:', ''), 'uuid:', ''), '-', ''),
                       '{}')) = 32
      THEN btrim(replace(replace(replace(lower(s), 'urn:', ''), 'uuid:', ''), '-', ''),
                 '{}')::uuid
  END
$$;

-- The zone access log: every admitted entry and exit (verdict ok/ok_reentry, ok for an
-- exit), at the time it happened (the HLC's physical part).
CREATE VIEW zone_access_log AS
    SELECT festival_id, zone_id, ticket_id,
           CASE kind WHEN 'entry' THEN 'ENTRY' ELSE 'EXIT' END AS action,
           to_timestamp((hlc >> 16) / 1000.0) AS at, event_id, device_id, device_seq, hlc
    FROM device_event
    WHERE ticket_id IS NOT NULL AND status = 'applied'
      AND ((kind = 'entry' AND verdict IN ('ok', 'ok_reentry'))
           OR (kind = 'exit' AND verdict = 'ok'));

-- Every entry of the cashless ledger, unordered: central's own entries (cashless_transaction)
-- and approved device events (a sale debits, a top-up or refund credits; the vendor is the
-- bar device's). `ord_hlc, ord_device, ord_seq` is the replay order of the conflict rules:
-- a central entry sorts by its time, before device entries of the same millisecond.
CREATE VIEW cashless_entry AS
    SELECT t.festival_id, t.account_id, t.id, t.type, t.amount, t.event_id, t.device_id,
           t.vendor_id, t.created_at,
           (extract(epoch FROM t.created_at) * 1000)::bigint << 16 AS ord_hlc,
           ''::text AS ord_device, t.id AS ord_seq
    FROM cashless_transaction t
    UNION ALL
    SELECT e.festival_id, e.account_id, NULL::bigint,
           CASE e.kind WHEN 'sale' THEN 'PAYMENT' WHEN 'topup' THEN 'TOPUP' ELSE 'REFUND' END,
           CASE WHEN e.kind = 'sale' THEN -e.amount ELSE e.amount END, e.event_id, e.device_id,
           CASE WHEN e.kind = 'sale' THEN
             (SELECT d.vendor_id FROM device d WHERE d.id = e.device_id) END,
           to_timestamp((e.hlc >> 16) / 1000.0), e.hlc, e.device_id::text, e.device_seq
    FROM device_event e
    WHERE e.account_id IS NOT NULL AND e.status = 'applied' AND e.verdict = 'approved'
      AND e.amount > 0;

-- The ledger with each entry's balance before and after, in replay order (so the same
-- whatever order the facts arrived in). Filter it by account_id: the filter reaches both
-- tables' account indexes, and the window runs over that account's entries only.
CREATE VIEW cashless_ledger AS
    SELECT festival_id, account_id, id, type, amount,
           (sum(amount) OVER w - amount)::bigint AS balance_before,
           (sum(amount) OVER w)::bigint AS balance_after,
           event_id, device_id, vendor_id, created_at, ord_hlc, ord_device, ord_seq
    FROM cashless_entry
    WINDOW w AS (PARTITION BY account_id ORDER BY ord_hlc, ord_device COLLATE "C", ord_seq);

-- Device log lines are events of kind 'log': level in the verdict, text in the payload.
CREATE VIEW device_log AS
    SELECT device_id, device_seq, festival_id, hlc, wall_ms, verdict AS level,
           coalesce(payload->>'message', '') AS message, payload, received_at
    FROM device_event WHERE kind = 'log';

CREATE TABLE conflict (
    id              bigserial PRIMARY KEY,
    festival_id     uuid NOT NULL REFERENCES festival(id),
    kind            text NOT NULL CHECK (kind IN ('duplicate_entry','overdraft','stale_catalog',
                        'policy_violation','clock_skew','sequence_gap')),
    natural_key     text NOT NULL UNIQUE,  -- kind:subject_type:subject_id:flagged_event_id
    subject_type    text NOT NULL CHECK (subject_type IN ('ticket','account','device')),
    subject_id      uuid NOT NULL,
    event_ids       uuid[] NOT NULL,
    facts           jsonb NOT NULL,  -- both sides, as the rule saw them
    detail          jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    resolved_by     text,
    resolution_note text,
    CHECK ((resolved_at IS NULL) = (resolved_by IS NULL))
);
CREATE INDEX conflict_open_idx ON conflict (festival_id, created_at) WHERE resolved_at IS NULL;
CREATE INDEX conflict_subject_idx ON conflict (subject_type, subject_id);

-- An account held (blocked) by central because its replayed ledger is in debt; released
-- when a top-up clears the debt. Separate from block_list, which is a person's decision.
CREATE TABLE account_hold (
    account_id uuid PRIMARY KEY REFERENCES cashless_account(id),
    reason     text NOT NULL,
    since      timestamptz NOT NULL DEFAULT now()
);

-- Catalog history of a ticket or tag (the stale_catalog rules read its past states), and
-- the few keys central ever made unusable (ingest's cheap test for which subjects need the
-- rule). Partial: presence, zone and account rows, which ingest publishes by the thousand,
-- pay no entry in either.
CREATE INDEX change_feed_catalog_idx ON change_feed (festival_id, table_name, key, seq)
    WHERE table_name IN ('ticket', 'block');
CREATE INDEX change_feed_unusable_idx ON change_feed (festival_id, key)
    WHERE table_name = 'block'
       OR (table_name = 'ticket' AND row->>'status' IN ('CANCELLED', 'REFUNDED'));
"""


def upgrade() -> None:
    """Create the sync schema."""
    op.execute(SCHEMA)
