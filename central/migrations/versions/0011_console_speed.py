"""Ops console speed (issue 17): Now's chart reads the last hours of entries, not all.

Revision ID: 0011_console_speed
Revises: 0010_console
"""

from __future__ import annotations

from alembic import op

revision = "0011_console_speed"
down_revision = "0010_console"
branch_labels = None
depends_on = None

SCHEMA = """
-- A festival's gate events by when they happened (the HLC's wall clock): Now's chart of the
-- last hours (`central.console.pages.now.gate_minutes`) reads that range only; it read
-- every entry and exit of the festival on each render. The predicate is the first part
-- of `zone_access_log`'s, so the view's queries can use it.
CREATE INDEX device_event_gate_time_idx ON device_event (festival_id, hlc)
    WHERE ticket_id IS NOT NULL AND status = 'applied';
"""


def upgrade() -> None:
    """Apply this revision (forward only)."""
    op.execute(SCHEMA)
