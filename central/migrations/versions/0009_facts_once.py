"""What each kind of fact means, once (issue 16): the views and the function over device
events that say which facts admit, a ledger entry's sign and type, and an access log
action, (re)created from the declarations of `sync.facts` as they stand at this revision.

The text below is frozen: it is what `central.events.FACT_VIEWS` generated when this
revision was written, and `tests/central/test_facts_sql.py` checks that it still is. A
change to a declaration those read needs a new migration with the new text.
Behaviour is that of 0002's views and 0004's function: the same rows, the same columns.

Revision ID: 0009_facts_once
Revises: 0008_ops_surface
"""

from __future__ import annotations

from alembic import op

revision = "0009_facts_once"
down_revision = "0008_ops_surface"
branch_labels = None
depends_on = None

SCHEMA = """CREATE OR REPLACE VIEW zone_access_log AS
    SELECT festival_id, zone_id, ticket_id,
           CASE kind
             WHEN 'entry' THEN 'ENTRY'
             WHEN 'exit' THEN 'EXIT'
             END AS action,
           to_timestamp((hlc >> 16) / 1000.0) AS at, event_id, device_id, device_seq, hlc
    FROM device_event
    WHERE ticket_id IS NOT NULL AND status = 'applied'
      AND ((kind = 'entry' AND verdict IN ('ok', 'ok_reentry'))
             OR (kind = 'exit' AND verdict = 'ok'));

CREATE OR REPLACE VIEW cashless_entry AS
    SELECT t.festival_id, t.account_id, t.id, t.type, t.amount, t.event_id, t.device_id,
           t.vendor_id, t.created_at,
           (extract(epoch FROM t.created_at) * 1000)::bigint << 16 AS ord_hlc,
           ''::text AS ord_device, t.id AS ord_seq
    FROM cashless_transaction t
    UNION ALL
    SELECT e.festival_id, e.account_id, NULL::bigint,
           CASE e.kind
             WHEN 'sale' THEN 'PAYMENT'
             WHEN 'topup' THEN 'TOPUP'
             WHEN 'refund' THEN 'REFUND'
             END,
           CASE WHEN e.kind = 'sale' THEN -e.amount ELSE e.amount END, e.event_id, e.device_id,
           CASE WHEN e.kind = 'sale' THEN
             (SELECT d.vendor_id FROM device d WHERE d.id = e.device_id) END,
           to_timestamp((e.hlc >> 16) / 1000.0), e.hlc, e.device_id::text, e.device_seq
    FROM device_event e
    WHERE e.account_id IS NOT NULL AND e.status = 'applied' AND e.verdict = 'approved'
      AND e.amount > 0;

CREATE OR REPLACE FUNCTION pushed_effects(dev uuid, first bigint, last bigint, seqs bigint[],
                                          effect text)
RETURNS SETOF device_event LANGUAGE plpgsql STABLE ROWS 1000 AS $$
BEGIN
  RETURN QUERY SELECT * FROM device_event e
    WHERE e.device_id = dev AND e.device_seq BETWEEN first AND last
      AND (seqs IS NULL OR e.device_seq = ANY(seqs)) AND e.status = 'applied'
      AND CASE effect
        WHEN 'gate' THEN e.ticket_id IS NOT NULL
          AND ((e.kind = 'entry' AND e.verdict IN ('ok', 'ok_reentry'))
             OR (e.kind = 'exit' AND e.verdict = 'ok'))
        WHEN 'money' THEN e.account_id IS NOT NULL AND e.verdict = 'approved'
          AND e.amount > 0
      END;
END
$$;
"""


def upgrade() -> None:
    """Apply this revision (forward only)."""
    op.execute(SCHEMA)
