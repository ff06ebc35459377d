"""A ticket found by its holder reference through an index (issue 17): Lookup read every
ticket of the festival for a reference or an outside code (98 ms at 1,000,000 tickets).

Revision ID: 0015_holder_ref_index
Revises: 0014_rollups
"""

from __future__ import annotations

from alembic import op

revision = "0015_holder_ref_index"
down_revision = "0014_rollups"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE INDEX ticket_holder_ref_idx ON ticket (festival_id, holder_ref)
    WHERE holder_ref IS NOT NULL;
"""


def upgrade() -> None:
    """Apply this revision (forward only)."""
    op.execute(SCHEMA)
