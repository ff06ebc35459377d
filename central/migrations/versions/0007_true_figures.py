"""True figures for ops (issue 15): a device log line's text whichever key the device wrote
it under.

Revision ID: 0007_true_figures
Revises: 0006_hardening
"""

from __future__ import annotations

from alembic import op

revision = "0007_true_figures"
down_revision = "0006_hardening"
branch_labels = None
depends_on = None

SCHEMA = """
-- A log line's text is `sync.logline.TEXT` ('message'); devices before that declaration
-- wrote it as 'msg' (`LEGACY_TEXT`), and their lines showed empty. Nothing else reads this
-- view, and its columns stay as they were.
CREATE OR REPLACE VIEW device_log AS
    SELECT device_id, device_seq, festival_id, hlc, wall_ms, verdict AS level,
           coalesce(payload->>'message', payload->>'msg', '') AS message, payload, received_at
    FROM device_event WHERE kind = 'log';
"""


def upgrade() -> None:
    """Apply this revision (forward only)."""
    op.execute(SCHEMA)
