"""Device software and readers (issue 17, Devices page): what each device says it runs.

A device sends its festgate version and its readers' states with each changes request
(`sync.device_report`); central keeps the latest well-formed ones on its row. NULL: never
told (a device older than this, or one that only ever sent bad values).

Revision ID: 0012_device_software
Revises: 0011_console_speed
"""

from __future__ import annotations

from alembic import op

revision = "0012_device_software"
down_revision = "0011_console_speed"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE device
    ADD COLUMN software_version text CHECK (length(software_version) BETWEEN 1 AND 64),
    -- reader name -> working; at most 16 readers, as sync.device_report bounds them
    ADD COLUMN readers jsonb CHECK (jsonb_typeof(readers) = 'object');
"""


def upgrade() -> None:
    """Apply this revision (forward only)."""
    op.execute(SCHEMA)
