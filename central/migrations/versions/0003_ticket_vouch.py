"""Central vouches for each signed ticket's current code by its keyed hash.

A gate that holds the ticket then checks a scanned signed code with one keyed hash and an
indexed lookup instead of an Ed25519 verification; the signature stays the path for a
ticket sold since the device's last sync.

Revision ID: 0003_ticket_vouch
Revises: 0002_sync
"""

from __future__ import annotations

from alembic import op

revision = "0003_ticket_vouch"
down_revision = "0002_sync"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE ticket ADD COLUMN signed_hash bytea
    CHECK (signed_hash IS NULL OR length(signed_hash) = 16);
-- A ticket has one current code: opaque (code_hash) or signed (signed_hash), never both.
ALTER TABLE ticket ADD CONSTRAINT ticket_one_code CHECK (code_hash IS NULL OR signed_hash IS NULL);
"""


def upgrade() -> None:
    """Add the signed-code hash."""
    op.execute(SCHEMA)
