"""True figures for ops (issue 15): a device log line's text whichever key the device wrote
it under, a device's pending events from the highest seq it says it journaled, and a
ticket's transfer among the changes that make it (its older codes) unusable.

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

-- The highest device_seq the device says it has journaled (`Festgate-Journal-Seq`, or from
-- an older device's `Festgate-Pending` on a push). It only grows, so a report that arrives
-- late changes nothing; pending_events is recomputed from it and acked_through whenever
-- either moves (`central.ingest.pending_set`).
ALTER TABLE device ADD COLUMN journal_seq bigint CHECK (journal_seq >= 0);

-- The keys central ever made unusable, now with transferred tickets: a transfer raises a
-- signed ticket's code version from 0 (`central.tickets.transfer_ticket`), and the code it
-- replaced is judged like a cancelled ticket (`central.conflicts.replaced_at`). The
-- predicate is `central.classify._UNUSABLE`, word for word, so the planner uses the index.
DROP INDEX change_feed_unusable_idx;
CREATE INDEX change_feed_unusable_idx ON change_feed (festival_id, key)
    WHERE table_name = 'block'
       OR (table_name = 'ticket' AND (row->>'status' IN ('CANCELLED', 'REFUNDED')
                                      OR row->>'code_version' ~ '^[1-9]'));
"""


def upgrade() -> None:
    """Apply this revision (forward only)."""
    op.execute(SCHEMA)
