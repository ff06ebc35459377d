"""Ingest: account and replica rows rewritten in place (HOT); a push's stored rows read back.

Revision ID: 0004_ingest_hot
Revises: 0003_ticket_vouch
"""

from __future__ import annotations

from alembic import op

revision = "0004_ingest_hot"
down_revision = "0003_ticket_vouch"
branch_labels = None
depends_on = None

SCHEMA = """
-- A batch rewrites each of its accounts' rows and their replica rows, and rows imported
-- together share pages: leave room on each page for a new version of every row on it, so
-- each update stays on its page and touches no index (HOT). Applies to pages written from
-- now on (a table rewrite would apply it to the rest).
ALTER TABLE cashless_account SET (fillfactor = 50);
ALTER TABLE replica_row SET (fillfactor = 50);

-- The events one push just stored that move presence (`effect` 'gate') or a balance
-- ('money'), read back by primary key (`central.classify`): the range of its new seqs, or
-- the list when older rows lie in between. The same tests as `central.events.ADMITS_GATE`
-- and `ADMITS_MONEY` (and the views of 0002). A function, so that the planner counts on a
-- batch's worth of rows: a generic plan would guess one row and join the rest of the
-- statement by nested loops over whole tables.
CREATE FUNCTION pushed_effects(dev uuid, first bigint, last bigint, seqs bigint[], effect text)
RETURNS SETOF device_event LANGUAGE plpgsql STABLE ROWS 1000 AS $$
BEGIN
  RETURN QUERY SELECT * FROM device_event e
    WHERE e.device_id = dev AND e.device_seq BETWEEN first AND last
      AND (seqs IS NULL OR e.device_seq = ANY(seqs)) AND e.status = 'applied'
      AND CASE effect
        WHEN 'gate' THEN e.ticket_id IS NOT NULL
          AND ((e.kind = 'entry' AND e.verdict IN ('ok', 'ok_reentry'))
               OR (e.kind = 'exit' AND e.verdict = 'ok'))
        WHEN 'money' THEN e.account_id IS NOT NULL AND e.verdict = 'approved' AND e.amount > 0
      END;
END
$$;
"""


def upgrade() -> None:
    """Apply this revision (forward only)."""
    op.execute(SCHEMA)
