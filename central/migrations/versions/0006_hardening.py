"""Hardening (issue 14): conflicts get an opaque public id, outside codes their estimated
entropy, and device events keep the device's own HLC when central orders them otherwise.

Revision ID: 0006_hardening
Revises: 0005_own_rows
"""

from __future__ import annotations

from alembic import op

revision = "0006_hardening"
down_revision = "0005_own_rows"
branch_labels = None
depends_on = None

SCHEMA = """
-- A conflict's id in the API: random, so it says nothing of how many conflicts other
-- festivals have (the bigserial key stays internal).
ALTER TABLE conflict ADD COLUMN ref uuid NOT NULL DEFAULT gen_random_uuid();
CREATE UNIQUE INDEX conflict_ref_idx ON conflict (ref);

-- The entropy an outside (opaque) code was estimated to carry when it was imported, in
-- bits; NULL for signed codes. Codes that a stolen device's key lets a thief guess offline
-- are refused unless ops accept them explicitly, and stay visible here.
ALTER TABLE ticket ADD COLUMN code_bits smallint CHECK (code_bits IS NULL OR code_bits >= 0);

-- The HLC the device sent, when central orders the event by another time (`hlc` is the
-- order of the conflict rules; see `central.events.STORE`); NULL when they are the same.
ALTER TABLE device_event ADD COLUMN device_hlc bigint;
"""


def upgrade() -> None:
    """Apply this revision (forward only)."""
    op.execute(SCHEMA)
