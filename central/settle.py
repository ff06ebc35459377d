"""Settle a pushed batch: presence and occupancy, balances and debt holds, published down.

Everything a batch does is aggregate SQL over the batch's stored rows (read back by
primary key): presence merged per (ticket, zone) and occupancy moved by the difference
(`settle_gate`), balances moved per account with holds settled (`settle_money`), each
published down in the same statement unless a rule must run first: the subjects that may
hold a conflict (`central.candidates`) go to the rules (`central.conflict_store`). An ops
change to an account (a top-up, a block) settles its hold with `classify_accounts`.

Each statement also adds the batch to the running totals (`central.rollups`). Callers hold
the festival's ingest lock (see `central.ingest.festival_lock`), so two classifications of
one subject never interleave, nor two batches' additions to one total.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from central import feed, rollups
from central.candidates import ACCOUNT_CANDIDATES, RECODED, UNUSABLE
from central.conflict_store import account_conflicts, ticket_conflicts
from sync import facts

# The rows a device's push just stored that move presence or money (migration 0004's
# `pushed_effects`, which says the same as `ADMITS_GATE` and `ADMITS_MONEY`).
_BATCH = "pushed_effects(%(dev)s, %(first)s, %(last)s, %(seqs)s::bigint[], '{effect}')"


@dataclass(frozen=True, slots=True)
class Batch:
    """The rows one device's push stored: its new seqs (their range, or the list)."""

    device_id: uuid.UUID
    first: int
    last: int
    seqs: list[int] | None = None  # None: every seq from first to last

    def params(self, festival_id: uuid.UUID) -> dict[str, Any]:
        """The parameters `_BATCH` reads, and the festival's."""
        return {"dev": self.device_id, "first": self.first, "last": self.last,
                "seqs": self.seqs, "fid": festival_id}  # fmt: skip


# A gate batch's presence, merged into the stored one and published in one statement. The
# batch is read back from the rows this transaction just stored (`_BATCH`): per (ticket,
# zone) its latest admitted movement (hlc, seq) and whether it admitted an entry. Presence
# is the latest movement in the order (hlc, device_id, device_seq), so merging is a max:
# the same whatever the arrival order. Only rows that change are written, and occupancy
# moves by the difference in `inside` per zone. Stored presence is read by the batch's
# ticket ids and unusable marks by key, both through an index (not a scan of tables that
# grow with every ticket that ever entered). When no ticket of the batch may hold a
# conflict (the usual case), the changed presence and zone rows are published here too;
# otherwise the statement answers their JSON and those tickets instead, and they are
# published after the rules ran: the feed head, taken by the first publish and held to
# commit, comes last in the lock order (zones, then tickets a rule marks suspicious; only
# gate batches move occupancy, one at a time per festival) and is held as briefly as can be.
_GATE = f"""
WITH fresh AS MATERIALIZED (SELECT * FROM {{batch}}),  -- read once: the rules and the totals
{{rollup}},
b AS (
  SELECT DISTINCT ON (ticket_id, zone_id) ticket_id, zone_id, {facts.inside_sql()} AS inside,
         hlc, device_seq,
         bool_or({facts.inside_sql()}) OVER (PARTITION BY ticket_id, zone_id) AS entry,
         bool_or({RECODED}) OVER (PARTITION BY ticket_id, zone_id) AS recoded
  FROM fresh
  ORDER BY ticket_id, zone_id, hlc DESC, device_seq DESC),
cur AS (
  SELECT b.*, p.ticket_id IS NOT NULL AS held, p.inside AS was_inside, p.hlc AS was_hlc,
         p.device_id AS was_device, p.device_seq AS was_seq, p.entry_device AS was_entry,
         coalesce(p.multi, false) AS was_multi,
         p.ticket_id IS NULL OR (b.hlc, %(dev)s::uuid, b.device_seq)
           > (p.hlc, p.device_id, p.device_seq) AS newer
  FROM b LEFT JOIN LATERAL (  -- OFFSET 0: a probe per row, whatever the planner guesses
    SELECT * FROM ticket_presence p WHERE p.ticket_id = b.ticket_id AND p.zone_id = b.zone_id
    OFFSET 0) p ON true),
n AS (
  SELECT ticket_id, zone_id, newer, was_inside, was_hlc,
         CASE WHEN newer THEN inside ELSE was_inside END AS inside,
         CASE WHEN newer THEN hlc ELSE was_hlc END AS hlc,
         CASE WHEN newer THEN %(dev)s::uuid ELSE was_device END AS device_id,
         CASE WHEN newer THEN device_seq ELSE was_seq END AS device_seq,
         coalesce(was_entry, CASE WHEN entry THEN %(dev)s::uuid END) AS entry_device,
         was_multi OR (entry AND was_entry IS NOT NULL AND was_entry <> %(dev)s::uuid) AS multi,
         was_entry, was_multi, recoded
  FROM cur),
w AS (
  SELECT * FROM n WHERE newer OR entry_device IS DISTINCT FROM was_entry
     OR multi <> was_multi),
up AS (
  INSERT INTO ticket_presence AS p (ticket_id, zone_id, inside, hlc, device_id, device_seq,
      entry_device, multi)
  SELECT ticket_id, zone_id, inside, hlc, device_id, device_seq, entry_device, multi FROM w
  ON CONFLICT (ticket_id, zone_id) DO UPDATE SET inside = EXCLUDED.inside,
      hlc = EXCLUDED.hlc, device_id = EXCLUDED.device_id, device_seq = EXCLUDED.device_seq,
      entry_device = EXCLUDED.entry_device, multi = EXCLUDED.multi),
changed AS (
  SELECT * FROM n WHERE (inside, hlc) IS DISTINCT FROM (was_inside, was_hlc)),
z AS (
  UPDATE zone z SET occupancy = z.occupancy + d.delta
  FROM (SELECT zone_id, sum(inside::int - coalesce(was_inside, false)::int) AS delta
        FROM changed GROUP BY zone_id) d
  WHERE z.id = d.zone_id AND d.delta <> 0
  RETURNING z.id, jsonb_build_object('id', z.id::text, 'festival_id', z.festival_id::text,
    'name', z.name, 'capacity', z.capacity, 'occupancy', greatest(z.occupancy, 0),
    'required_types', to_jsonb(z.required_types), 'reentry', z.reentry) AS row),
cand AS MATERIALIZED (
  SELECT t.id FROM (SELECT ticket_id AS id, bool_or(multi) AS multi, bool_or(recoded) AS recoded
                    FROM n GROUP BY ticket_id) t
  WHERE t.multi OR t.recoded
     OR EXISTS (SELECT 1 FROM change_feed f WHERE f.festival_id = %(fid)s AND {UNUSABLE}
                AND f.key = t.id::text)
     OR EXISTS (SELECT 1 FROM change_feed f WHERE f.festival_id = %(fid)s AND {UNUSABLE}
                AND f.key = 'ticket:' || t.id::text)),
later AS MATERIALIZED (SELECT EXISTS (SELECT 1 FROM cand) AS yes),
p AS (  -- PresenceRow's JSON, then ZoneRow's
  SELECT 1 AS part, 'presence' AS table_name, ticket_id::text || ':' || zone_id::text AS key,
         jsonb_build_object('ticket_id', ticket_id::text, 'zone_id', zone_id::text,
                            'inside', inside, 'hlc', hlc, 'device_id', device_id::text,
                            'device_seq', device_seq) AS row
  FROM changed
  UNION ALL
  SELECT 2, 'zone', id::text, row FROM z),
pub AS (
  SELECT table_name, key, row, row_number() OVER (ORDER BY part, key) AS ord
  FROM p WHERE NOT (SELECT yes FROM later)),{{publish}}
SELECT {{published}}, (SELECT coalesce(array_agg(id ORDER BY id), '{{{{}}}}') FROM cand),
  (SELECT jsonb_agg(row ORDER BY key)::text FROM p WHERE part = 1 AND (SELECT yes FROM later)),
  (SELECT count(*) FROM p WHERE part = 1 AND (SELECT yes FROM later)),
  (SELECT jsonb_agg(row ORDER BY key)::text FROM p WHERE part = 2 AND (SELECT yes FROM later)),
  (SELECT count(*) FROM p WHERE part = 2 AND (SELECT yes FROM later))
"""
_GATE_SQL = _GATE.format(
    batch=_BATCH.format(effect="gate"),
    rollup=rollups.gate_ctes("fresh").strip(),
    publish=feed.publish_ctes(unique=True),
    published=feed.PUBLISHED,
)


async def settle_gate(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, batch: Batch
) -> int | None:
    """Merge a gate batch's presence (the rows `batch` stored), move occupancy, publish
    presence and zones, re-run the ticket rules where a conflict may be.

    Returns the last feed seq published, or None when nothing changed.
    """
    # Prepared at once (not after psycopg's fifth use): planning these takes milliseconds.
    cur = await conn.execute(_GATE_SQL, batch.params(festival_id), prepare=True)
    rec = await cur.fetchone()
    assert rec is not None
    last, _, candidates, presence, n_presence, zones, n_zones = rec
    if not candidates:
        return None if last is None else int(last)
    # Some may hold a conflict: their rules first (a ticket marked suspicious is locked and
    # published), then this batch's presence and zones.
    seq = await ticket_conflicts(conn, festival_id, list(candidates))
    seqs = [] if seq is None else [seq]
    seqs += await feed.publish_json(conn, festival_id, "presence", presence or "[]", n_presence)
    seqs += await feed.publish_json(conn, festival_id, "zone", zones or "[]", n_zones)
    return seqs[-1] if seqs else None


# A batch's money, applied and published in one statement. The batch is read back from the
# rows this transaction just stored (`_BATCH`): per account the total, the lowest running
# sum, the first and last HLC of its entries, whether one is a credit, and the sum of its
# debits. Accounts are locked in id order; balance, debt and the debt hold follow (held
# while in debt; a block from elsewhere is left as it is).
#
# Which accounts may hold a conflict (an account whose tag was ever block-listed always
# may: stale_catalog). Each account keeps `ledger_low`, a lower bound of its replayed
# ledger's running balance after each entry, `ledger_first`, the order (HLC) of its first
# entry, and `ledger_ops`, the latest ops entry they account for; they are recomputed by a
# replay whenever unknown or an ops entry came since (`stale`). Then:
# - in order (every entry of the batch sorts after every entry already in the balance:
#   `ledger_hlc` and the latest ops entry are older, the usual case): replaying the ledger
#   is replaying the batch from the balance, so no conflict goes away and one is added only
#   by a sale crossing from zero or above to below: a candidate if the batch dips below
#   zero, from a balance at or above zero or after one of its credits;
# - late (one entry sorts before a stored one) but after the first entry: each running
#   balance of the merged replay is at least `ledger_low` plus the batch's debits; when
#   that is zero or more the replay never goes below zero, before or after (no conflict,
#   none to remove), and it is the new bound;
# - otherwise the account's whole ledger (this batch included) is replayed here in SQL:
#   a candidate if it goes below zero or already holds a conflict; the bounds become exact.
# The changed accounts are published (in id order) once all of that is written, so the
# feed head is taken after the accounts' locks, as everywhere. The statement answers the
# last seq published and the candidates.
_MONEY = f"""
WITH fresh AS MATERIALIZED (SELECT * FROM {{batch}}),  -- read once: the money and the totals
{{rollup}},
m AS (
  SELECT account_id,
         sum({facts.delta_sql()}) OVER (PARTITION BY account_id ORDER BY hlc, device_seq)
           AS run,
         sum({facts.delta_sql()}) OVER (PARTITION BY account_id) AS total, hlc,
         {facts.credit_sql()} AS credit, {facts.debit_sql()} AS debit
  FROM fresh),
b AS (
  SELECT account_id AS id, min(total) AS total, min(run) AS low, min(hlc) AS first_hlc,
         max(hlc) AS last_hlc, bool_or(credit) AS credit, sum(debit) AS debits
  FROM m GROUP BY account_id),
a AS (
  SELECT a.id, a.balance AS before, a.balance + b.total AS after, b.total, b.low,
         b.first_hlc, b.last_hlc, b.credit, b.debits, a.ledger_hlc,
         a.ledger_low, a.ledger_first, a.ledger_ops, a.blocked,
         (SELECT max(t.created_at) FROM cashless_transaction t WHERE t.account_id = a.id) AS ops,
         a.id IN (SELECT account_id FROM account_hold) AS held,  -- hashed: few rows
         encode(a.tag_hash, 'hex') IN (SELECT ref FROM block_list
                                       WHERE festival_id = %(fid)s AND kind = 'tag') AS manual,
         'tag:' || encode(a.tag_hash, 'hex') IN (SELECT f.key FROM change_feed f
                                                 WHERE f.festival_id = %(fid)s AND {UNUSABLE})
           AS unusable
  FROM cashless_account a JOIN b ON b.id = a.id
  ORDER BY a.id FOR UPDATE OF a),
o AS (
  SELECT a.*, CASE
      WHEN a.ledger_low IS NULL OR a.ops IS DISTINCT FROM a.ledger_ops THEN 'replay'
      WHEN a.first_hlc > a.ledger_hlc
           AND a.first_hlc >= coalesce((extract(epoch FROM a.ops) * 1000)::bigint << 16, 0)
        THEN 'in_order'
      WHEN a.first_hlc > a.ledger_first AND a.ledger_low + a.debits >= 0 THEN 'late_safe'
      ELSE 'replay' END AS path
  FROM a),
r AS (  -- the replayed accounts' whole ledgers (this batch included), in rule order
  SELECT e.account_id, e.ord_hlc,
         sum(e.amount) OVER (PARTITION BY e.account_id
                             ORDER BY e.ord_hlc, e.ord_device COLLATE "C", e.ord_seq) AS run,
         sum(e.amount) OVER (PARTITION BY e.account_id) AS total
  FROM o, LATERAL (  -- each account's entries by index (OFFSET 0: whatever the planner guesses)
    SELECT * FROM cashless_entry x WHERE x.account_id = o.id OFFSET 0) e
  WHERE o.path = 'replay'),
rep AS (  -- an opening balance set outside the ledger shifts every running balance
  SELECT r.account_id, min(r.run - r.total) + min(o.after) AS low, min(r.ord_hlc) AS first
  FROM r JOIN o ON o.id = r.account_id GROUP BY r.account_id),
c AS (
  SELECT o.*,
         CASE o.path WHEN 'in_order' THEN least(o.ledger_low, o.before + o.low)
                     WHEN 'late_safe' THEN o.ledger_low + o.debits
                     ELSE rep.low END AS new_low,
         CASE o.path WHEN 'replay' THEN rep.first ELSE o.ledger_first END AS new_first,
         o.unusable OR CASE o.path
           WHEN 'in_order' THEN o.before + o.low < 0 AND (o.before >= 0 OR o.credit)
           WHEN 'late_safe' THEN false
           ELSE rep.low < 0 OR EXISTS (SELECT 1 FROM conflict k WHERE k.subject_type = 'account'
                                       AND k.subject_id = o.id) END AS candidate
  FROM o LEFT JOIN rep ON rep.account_id = o.id),
u AS (
  UPDATE cashless_account a SET balance = c.after,
      ledger_hlc = greatest(a.ledger_hlc, c.last_hlc), ledger_low = c.new_low,
      ledger_first = c.new_first, ledger_ops = c.ops, debt = greatest(0, -c.after),
      blocked = c.after < 0 OR c.manual OR (a.blocked AND NOT c.held)
  FROM c WHERE a.id = c.id
  RETURNING a.id, a.festival_id, a.tag_hash, a.balance, a.blocked, a.debt, c.held, c.candidate),
hon AS (
  INSERT INTO account_hold (account_id, reason)
  SELECT id, 'overdraft' FROM u WHERE debt > 0 AND NOT held),
hoff AS (
  DELETE FROM account_hold h USING u WHERE h.account_id = u.id AND u.debt = 0 AND u.held),
pub AS (  -- AccountRow's JSON
  SELECT 'account' AS table_name, id::text AS key, {facts.account_json_sql()} AS row,
         row_number() OVER (ORDER BY id) AS ord
  FROM u),{{publish}}
SELECT {{published}},
  (SELECT coalesce(array_agg(id ORDER BY id) FILTER (WHERE candidate), '{{{{}}}}') FROM u)
"""
_MONEY_SQL = _MONEY.format(
    batch=_BATCH.format(effect="money"),
    rollup=rollups.sales_ctes("fresh").strip(),
    publish=feed.publish_ctes(unique=True),
    published=feed.PUBLISHED,
)


async def settle_money(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, batch: Batch
) -> int | None:
    """Apply a batch's money (the rows `batch` stored) to balances and holds, publish the
    accounts, re-run the account rules where a conflict may be.

    Returns the last feed seq published, or None when nothing changed.
    """
    cur = await conn.execute(_MONEY_SQL, batch.params(festival_id), prepare=True)
    rec = await cur.fetchone()
    assert rec is not None
    last, _, candidates = rec
    # The rules store conflicts only (no account row changes), so they may run after the
    # publish: no lock they take comes before the feed head's in any other writer.
    await account_conflicts(conn, festival_id, list(candidates))
    return None if last is None else int(last)


async def classify_accounts(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    account_ids: Iterable[uuid.UUID],
    *,
    balance_changed: Iterable[uuid.UUID] = (),
) -> None:
    """Re-run the account rules; hold (block) accounts in debt, release them when cleared.

    Debt is what the ledger says (``max(0, -balance)``), so holds need no replay. Accounts
    in `balance_changed` are republished even when their hold did not change.
    """
    ids = sorted(set(account_ids))
    if not ids:
        return
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT a.*, h.account_id IS NOT NULL AS held, EXISTS (SELECT 1 FROM block_list b"
            "  WHERE b.festival_id = a.festival_id AND b.kind = 'tag'"
            "  AND b.ref = encode(a.tag_hash, 'hex')) AS manual_block"
            " FROM cashless_account a LEFT JOIN account_hold h ON h.account_id = a.id"
            " WHERE a.id = ANY(%s) ORDER BY a.id FOR UPDATE OF a",
            (ids,),
        )
        accounts = {str(r["id"]): r for r in await cur.fetchall()}
    cur2 = await conn.execute(ACCOUNT_CANDIDATES, {"ids": ids})
    await account_conflicts(conn, festival_id, sorted(r[0] for r in await cur2.fetchall()))
    republish = {str(a) for a in balance_changed}
    holds_on: list[uuid.UUID] = []
    holds_off: list[uuid.UUID] = []
    updates: list[tuple[uuid.UUID, int, bool]] = []
    for aid, acc in accounts.items():
        debt = max(0, -acc["balance"])
        if debt > 0 and not acc["held"]:
            holds_on.append(acc["id"])
        elif debt == 0 and acc["held"]:
            holds_off.append(acc["id"])
        # Held while in debt; a block from elsewhere (ops, block list) is left as it is.
        blocked = debt > 0 or acc["manual_block"] or (acc["blocked"] and not acc["held"])
        if (debt, blocked) != (acc["debt"], acc["blocked"]):
            updates.append((acc["id"], debt, blocked))
            republish.add(aid)
    if updates:
        await conn.execute(
            "UPDATE cashless_account a SET debt = v.debt, blocked = v.blocked"
            " FROM unnest(%s::uuid[], %s::bigint[], %s::bool[]) AS v(id, debt, blocked)"
            " WHERE a.id = v.id",
            ([u[0] for u in updates], [u[1] for u in updates], [u[2] for u in updates]),
        )
    if holds_on:
        await conn.execute(
            "INSERT INTO account_hold (account_id, reason) SELECT unnest(%s::uuid[]), 'overdraft'",
            (holds_on,),
        )
    if holds_off:
        await conn.execute("DELETE FROM account_hold WHERE account_id = ANY(%s)", (holds_off,))
    await publish_accounts(conn, festival_id, [uuid.UUID(a) for a in sorted(republish)])


# The JSON of AccountRow, built where the account is (no round trip through Python models).
_ACCOUNT_JSON = f"""
SELECT coalesce(jsonb_agg({facts.account_json_sql()} ORDER BY id), '[]')::text, count(*)
FROM cashless_account WHERE id = ANY(%s)
"""


async def publish_accounts(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, account_ids: list[uuid.UUID]
) -> None:
    """Publish the current AccountRow of these accounts (one change each, in id order)."""
    if not account_ids:
        return
    cur = await conn.execute(_ACCOUNT_JSON, (account_ids,))
    rec = await cur.fetchone()
    if rec is not None:
        await feed.publish_json(conn, festival_id, "account", rec[0], int(rec[1]))
