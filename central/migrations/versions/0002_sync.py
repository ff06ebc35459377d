"""Sync schema: enrolled devices, enrol codes, device events (facts), conflicts.

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
-- applied, so the conflict rules can read one subject's facts through an index.
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

-- Catalog history of one row (stale_catalog rules read a ticket's or tag's past states).
CREATE INDEX change_feed_key_idx ON change_feed (festival_id, table_name, key, seq);
CREATE INDEX cashless_transaction_vendor_idx ON cashless_transaction (vendor_id, created_at)
    WHERE vendor_id IS NOT NULL;
"""


def upgrade() -> None:
    """Create the sync schema."""
    op.execute(SCHEMA)
