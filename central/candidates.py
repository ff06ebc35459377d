"""Which tickets and accounts may hold a conflict: the SQL tests that pick them.

Which subjects may hold a conflict is decided set-based, per batch, with tests that only
ever grow (so skipping a subject never hides a conflict, whatever the order facts arrive):

- a ticket: a second device admitted an entry into one of its zones (`ticket_presence.multi`,
  kept as the batch's presence is merged), or central ever made it unusable (a cancel,
  refund or block in the change feed, or a transfer: a code version above 0), or the
  batch admitted it with an outside code that one of its rows in the feed does not have
  (a transfer replaced that code, or gave it);
- an account: the batch's entries replayed from the balance dip below zero, or one of them
  sorts before an entry already in the balance (a late fact: `ledger_hlc`, or an ops entry
  made after it happened), or its tag was ever block-listed.

`central.settle` runs these inside its statements (the tests on a batch's running balances
are written there, in its money statement); the subjects they pick go to the rules
(`central.conflict_store`), and no other subject can hold a conflict.
"""

from __future__ import annotations

from central.conflict_store import EVENT_SQL
from sync import facts

# A change-feed row that made a ticket or tag unusable, or some code of a ticket: its
# status, a block, or a transfer (`central.tickets.transfer_ticket` raises a signed
# ticket's code version from 0). The partial index's predicate (migration 0007; a test
# holds the two equal).
UNUSABLE = facts.unusable_sql("f.")
# A batch's admission with an outside code (read as the rule reads it, `EVENT_SQL`) that a
# row of its ticket in the feed does not have: a transfer replaced the code, or gave it.
# Only a transfer makes a ticket's rows differ in hash, and the feed only grows, so this
# only ever grows. (Outside codes keep their code version: `UNUSABLE` does not see them.)
RECODED = f"""({facts.inside_sql()} AND ({EVENT_SQL["code_version"]}) IS NULL
    AND ({EVENT_SQL["code_hash"]}) IS NOT NULL
    AND EXISTS (SELECT 1 FROM change_feed f WHERE f.festival_id = %(fid)s
                AND f.table_name IN ('ticket', 'block') AND f.table_name = 'ticket'
                AND f.key = ticket_id::text
                AND f.row->>'code_hash' IS DISTINCT FROM payload->>'code_hash'))"""


# The ops path (`classify_accounts`): an account can have a conflict only if its ledger,
# replayed in rule order, dips below zero, its tag was ever block-listed, or it already has
# one stored. The replay is the same sum the rule makes (device ids compared bytewise, as
# Python compares str).
ACCOUNT_CANDIDATES = f"""
WITH r AS (
  SELECT account_id,
         sum(amount) OVER (PARTITION BY account_id
                           ORDER BY ord_hlc, ord_device COLLATE "C", ord_seq) AS run,
         sum(amount) OVER (PARTITION BY account_id) AS total
  FROM cashless_entry WHERE account_id = ANY(%(ids)s)),
dip AS (SELECT account_id, min(run - total) AS low FROM r GROUP BY account_id)
SELECT a.id FROM cashless_account a LEFT JOIN dip ON dip.account_id = a.id
WHERE a.id = ANY(%(ids)s) AND (
  a.balance + coalesce(dip.low, 0) < 0
  OR EXISTS (SELECT 1 FROM conflict c WHERE c.subject_type = 'account' AND c.subject_id = a.id)
  OR EXISTS (SELECT 1 FROM change_feed f WHERE f.festival_id = a.festival_id AND {UNUSABLE}
             AND f.key = 'tag:' || encode(a.tag_hash, 'hex')))
"""
