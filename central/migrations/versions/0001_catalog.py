"""Catalog schema: festivals, tickets, zones, cashless, vendors, staff, ops users, feed, keys.

Revision ID: 0001_catalog
Revises:
"""

from __future__ import annotations

from alembic import op

revision = "0001_catalog"
down_revision = None
branch_labels = None
depends_on = None

_TICKET_TYPES = "'STANDARD','VIP','BACKSTAGE','CAMPING','PARKING','COMBO'"
_FEED_TABLES = (
    "'festival','signing_key','category','ticket','zone','presence','account','vendor',"
    "'product','block'"
)

SCHEMA = f"""
CREATE TABLE festival (
    id                uuid PRIMARY KEY,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug              text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{{0,62}}$'),
    starts_at         timestamptz,
    ends_at           timestamptz,
    timezone          text NOT NULL DEFAULT 'Europe/Paris',
    currency          text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{{3}}$'),
    status            text NOT NULL DEFAULT 'DRAFT'
        CHECK (status IN ('DRAFT','PUBLISHED','ONGOING','COMPLETED','CANCELLED')),
    offline_allowance bigint NOT NULL DEFAULT 2000 CHECK (offline_allowance >= 0),
    hash_key          bytea NOT NULL CHECK (length(hash_key) = 32),
    max_capacity      integer CHECK (max_capacity >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,  -- soft delete: the row stays for the audit trail
    CHECK (ends_at IS NULL OR starts_at IS NULL OR ends_at >= starts_at)
);
CREATE INDEX festival_status_idx ON festival (status) WHERE deleted_at IS NULL;

-- Private keys live here only at central; production would keep them in a KMS/HSM and
-- store a key reference instead.
CREATE TABLE signing_key (
    festival_id uuid NOT NULL REFERENCES festival(id),
    key_id      integer NOT NULL CHECK (key_id >= 0),
    public_key  bytea NOT NULL CHECK (length(public_key) = 32),
    private_key bytea NOT NULL CHECK (length(private_key) = 32),
    revoked     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (festival_id, key_id)
);

CREATE TABLE ticket_category (
    id          uuid PRIMARY KEY,
    festival_id uuid NOT NULL REFERENCES festival(id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    type        text NOT NULL CHECK (type IN ({_TICKET_TYPES})),
    price       bigint NOT NULL DEFAULT 0 CHECK (price >= 0),
    quota       integer CHECK (quota >= 0),
    valid_from  timestamptz,
    valid_until timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (festival_id, name),
    CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until >= valid_from)
);

CREATE TABLE ticket (
    id             uuid PRIMARY KEY,
    festival_id    uuid NOT NULL REFERENCES festival(id),
    category_id    uuid NOT NULL REFERENCES ticket_category(id),
    status         text NOT NULL DEFAULT 'SOLD'
        CHECK (status IN ('AVAILABLE','RESERVED','SOLD','USED','CANCELLED','REFUNDED')),
    code_hash      bytea CHECK (code_hash IS NULL OR length(code_hash) = 16),
    code_version   integer NOT NULL DEFAULT 0 CHECK (code_version BETWEEN 0 AND 65535),
    suspicious     boolean NOT NULL DEFAULT false,
    purchase_price bigint NOT NULL DEFAULT 0 CHECK (purchase_price >= 0),
    used_at        timestamptz,  -- set by ops (status USED); first admission: see central.ops
    holder_ref     text,  -- personal data stays at central, never replicated
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- QR lookup of opaque codes; unique so one scanned code is never two tickets.
CREATE UNIQUE INDEX ticket_code_hash_idx ON ticket (festival_id, code_hash)
    WHERE code_hash IS NOT NULL;
CREATE INDEX ticket_category_idx ON ticket (category_id);
CREATE INDEX ticket_festival_status_idx ON ticket (festival_id, status);

CREATE TABLE zone (
    id             uuid PRIMARY KEY,
    festival_id    uuid NOT NULL REFERENCES festival(id),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    capacity       integer CHECK (capacity >= 0),
    -- No CHECK on occupancy: exits synced before their entries may dip it below zero briefly.
    occupancy      integer NOT NULL DEFAULT 0,
    required_types text[] NOT NULL DEFAULT '{{}}'
        CHECK (required_types <@ ARRAY[{_TICKET_TYPES}]::text[]),
    reentry        boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (festival_id, name)
);

-- The zone access log (entries and exits) is not copied: it is the view `zone_access_log`
-- over device_event (0002), which already holds every admitted scan with its ticket and
-- zone. Presence is the latest admitted movement per (ticket, zone) in the order
-- (hlc, device_id, device_seq), kept incrementally by ingest (a batch's latest is merged
-- with the stored one: max is order-independent). `entry_device` is the first device seen
-- admitting an entry and `multi` says a second device did too: only such tickets can hold
-- a duplicate entry, so only they are re-classified. No foreign keys: ingest writes rows
-- only for tickets and zones it has just found in the device's festival, and tickets and
-- zones are never deleted (an FK check per row cost about as much as the row, issue 3).
CREATE TABLE ticket_presence (
    ticket_id    uuid NOT NULL,  -- ticket(id), checked by ingest
    zone_id      uuid NOT NULL,  -- zone(id), checked by ingest
    inside       boolean NOT NULL,
    hlc          bigint NOT NULL CHECK (hlc >= 0),
    device_id    uuid NOT NULL,  -- with device_seq: the latest movement's place in the order
    device_seq   bigint NOT NULL,
    entry_device uuid,
    multi        boolean NOT NULL DEFAULT false,
    PRIMARY KEY (ticket_id, zone_id)
) WITH (fillfactor = 80);  -- room for HOT updates: a row changes on every movement

CREATE TABLE cashless_account (
    id          uuid PRIMARY KEY,
    festival_id uuid NOT NULL REFERENCES festival(id),
    tag_hash    bytea NOT NULL CHECK (length(tag_hash) = 16),
    balance     bigint NOT NULL DEFAULT 0,  -- may go negative after offline overdrafts
    blocked     boolean NOT NULL DEFAULT false,
    debt        bigint NOT NULL DEFAULT 0 CHECK (debt >= 0),
    -- What ingest knows of the replayed ledger, so a batch can tell whether it may change
    -- the account's conflicts without replaying it (see central.classify, _MONEY): the
    -- highest HLC of a device entry in the balance, a lower bound of the running balance
    -- after each entry, the order (HLC) of the first entry, and the latest ops entry
    -- (cashless_transaction.created_at) those two account for. NULL: not known yet.
    ledger_hlc   bigint NOT NULL DEFAULT 0,
    ledger_low   bigint,
    ledger_first bigint,
    ledger_ops   timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (festival_id, tag_hash)  -- NFC lookup
) WITH (fillfactor = 80);  -- room for HOT updates: the balance changes on every sale

CREATE TABLE vendor (
    id                 uuid PRIMARY KEY,
    festival_id        uuid NOT NULL REFERENCES festival(id),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    type               text NOT NULL DEFAULT 'BAR'
        CHECK (type IN ('FOOD','DRINK','BAR','MERCHANDISE')),
    is_open            boolean NOT NULL DEFAULT true,
    commission_rate_bp integer NOT NULL DEFAULT 0 CHECK (commission_rate_bp BETWEEN 0 AND 10000),
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (festival_id, name)
);

CREATE TABLE product (
    id         uuid PRIMARY KEY,
    vendor_id  uuid NOT NULL REFERENCES vendor(id),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    price      bigint NOT NULL CHECK (price >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (vendor_id, name)
);

-- The ledger: an account's balance is the sum of its entries' amounts. Device-sourced
-- entries (sales, top-ups and refunds made at devices) are not copied here: they are
-- approved device_event rows, and the view `cashless_ledger` (0002) unites both kinds with
-- balance before/after in replay order. This table holds the entries central makes itself
-- (opening balances, ops top-ups, refunds, corrections): low-volume, written under the
-- account's row lock. No foreign keys: every writer has the account row locked FOR UPDATE
-- (or just created) and takes the festival from it; accounts, vendors and festivals are
-- never deleted. balance_before/after here are as written; the view's are authoritative.
CREATE TABLE cashless_transaction (
    id             bigserial PRIMARY KEY,
    festival_id    uuid NOT NULL,  -- festival(id), from the locked account row
    account_id     uuid NOT NULL,  -- cashless_account(id), locked by the writer
    type           text NOT NULL
        CHECK (type IN ('TOPUP','PAYMENT','REFUND','TRANSFER','CORRECTION')),
    amount         bigint NOT NULL,  -- signed: a payment is negative
    balance_before bigint NOT NULL,
    balance_after  bigint NOT NULL,
    event_id       uuid,
    device_id      uuid,
    vendor_id      uuid,  -- vendor(id), the enrolled bar device's
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (balance_after = balance_before + amount)
);
-- An account's ledger, and its latest ops entry (ingest's out-of-order test).
CREATE INDEX cashless_transaction_account_idx ON cashless_transaction (account_id, created_at);

CREATE TABLE block_list (
    festival_id uuid NOT NULL REFERENCES festival(id),
    kind        text NOT NULL CHECK (kind IN ('ticket','tag')),
    ref         text NOT NULL,  -- a ticket id, or a tag hash in hex
    reason      text NOT NULL DEFAULT '' CHECK (length(reason) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (festival_id, kind, ref)
);

CREATE TABLE staff_member (
    id           uuid PRIMARY KEY,
    festival_id  uuid NOT NULL REFERENCES festival(id),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    department   text NOT NULL DEFAULT 'OTHER' CHECK (department IN
        ('SECURITY','TICKETING','CASHLESS','BAR','LOGISTICS','MEDICAL','TECHNICAL','OTHER')),
    badge_number text,
    badge_hash   bytea CHECK (badge_hash IS NULL OR length(badge_hash) = 16),  -- keyed tag hash
    created_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);
CREATE UNIQUE INDEX staff_member_badge_idx ON staff_member (festival_id, badge_hash)
    WHERE badge_hash IS NOT NULL;

CREATE TABLE staff_shift (
    id              uuid PRIMARY KEY,
    staff_member_id uuid NOT NULL REFERENCES staff_member(id),
    zone_id         uuid REFERENCES zone(id),
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'SCHEDULED' CHECK (status IN
        ('SCHEDULED','CONFIRMED','IN_PROGRESS','COMPLETED','CANCELLED','NO_SHOW')),
    CHECK (ends_at > starts_at)
);
CREATE INDEX staff_shift_member_idx ON staff_shift (staff_member_id, starts_at);

CREATE TABLE staff_checkin (
    id              bigserial PRIMARY KEY,
    staff_member_id uuid NOT NULL REFERENCES staff_member(id),
    shift_id        uuid REFERENCES staff_shift(id),
    action          text NOT NULL DEFAULT 'IN' CHECK (action IN ('IN','OUT')),
    at              timestamptz NOT NULL,
    event_id        uuid,
    device_id       uuid
);
CREATE INDEX staff_checkin_member_idx ON staff_checkin (staff_member_id, at);

CREATE TABLE ops_user (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role        text NOT NULL CHECK (role IN ('ADMIN','ORGANIZER','STAFF','CASHIER','SECURITY')),
    festival_id uuid REFERENCES festival(id),  -- NULL: every festival
    token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),  -- sha256 of the token
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

-- Append-only: who changed what, with the old and new value.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    actor       text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    action      text NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    entity_type text NOT NULL,
    entity_id   text NOT NULL,
    festival_id uuid,
    old_value   jsonb,
    new_value   jsonb,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity_type, entity_id, at);
CREATE INDEX audit_log_festival_idx ON audit_log (festival_id, at);

CREATE TABLE revoked_token (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    revoked_at timestamptz NOT NULL DEFAULT now()
);

-- The change feed. feed_head.head is the last seq handed out; writers take it with a row
-- lock held to commit, so seqs commit in order and a rollback leaves no hole.
CREATE TABLE feed_head (
    festival_id uuid PRIMARY KEY REFERENCES festival(id),
    head        bigint NOT NULL DEFAULT 0 CHECK (head >= 0)
);

-- change_feed and replica_row take one row per published change, so they carry no FK to
-- festival: every writer first takes the festival's seqs from feed_head, whose row
-- references the festival, and festivals are never deleted (soft deletes).
CREATE TABLE change_feed (
    festival_id  uuid NOT NULL,  -- festival(id), through feed_head
    seq          bigint NOT NULL CHECK (seq >= 1),
    table_name   text NOT NULL CHECK (table_name IN ({_FEED_TABLES})),
    op           text NOT NULL CHECK (op IN ('upsert','delete')),
    key          text NOT NULL,
    row          jsonb NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (festival_id, seq)
);

-- Latest row per key: what a snapshot streams.
CREATE TABLE replica_row (
    festival_id uuid NOT NULL,  -- festival(id), through feed_head
    table_name  text NOT NULL CHECK (table_name IN ({_FEED_TABLES})),
    key         text NOT NULL,
    seq         bigint NOT NULL,
    row         jsonb NOT NULL,
    PRIMARY KEY (festival_id, table_name, key)
) WITH (fillfactor = 80);  -- room for HOT updates: rewritten on every change of its key
"""


def upgrade() -> None:
    """Create the catalog schema."""
    op.execute(SCHEMA)
