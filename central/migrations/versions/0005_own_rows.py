"""Snapshots read presence and accounts from their own tables: their replica rows go.

Revision ID: 0005_own_rows
Revises: 0004_ingest_hot
"""

from __future__ import annotations

from alembic import op

revision = "0005_own_rows"
down_revision = "0004_ingest_hot"
branch_labels = None
depends_on = None

# `central.feed.OWN_ROWS`: publishing no longer keeps these copies, so stale ones must not
# linger (nothing reads them any more; they would only take space).
SCHEMA = """
DELETE FROM replica_row WHERE table_name IN ('presence', 'account');
"""


def upgrade() -> None:
    """Apply this revision (forward only)."""
    op.execute(SCHEMA)
