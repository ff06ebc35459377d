"""Ops surface (issue 15): enrol codes get a short public id, a revocation and their maker.

The code itself is shown once, at creation, and only its hash is stored; ops list and
revoke codes by the short id. A revoked code is refused at enrolment like a used one.

Revision ID: 0008_ops_surface
Revises: 0007_true_figures
"""

from __future__ import annotations

from alembic import op

revision = "0008_ops_surface"
down_revision = "0007_true_figures"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE enrol_code ADD COLUMN ref text;
ALTER TABLE enrol_code ADD COLUMN revoked_at timestamptz;
ALTER TABLE enrol_code ADD COLUMN created_by text;
-- Codes made before this revision get a random id of the same shape (8 characters); the
-- id says nothing of the code (it is not derived from its hash).
UPDATE enrol_code SET ref = upper(substr(md5(gen_random_uuid()::text), 1, 8));
ALTER TABLE enrol_code ALTER COLUMN ref SET NOT NULL;
ALTER TABLE enrol_code ADD CONSTRAINT enrol_code_ref_shape CHECK (ref ~ '^[0-9A-Z]{8}$');
CREATE UNIQUE INDEX enrol_code_ref_idx ON enrol_code (ref);
-- What ops list: a festival's codes still usable.
CREATE INDEX enrol_code_open_idx ON enrol_code (festival_id, expires_at)
    WHERE used_at IS NULL AND revoked_at IS NULL;
"""


def upgrade() -> None:
    """Apply this revision (forward only)."""
    op.execute(SCHEMA)
