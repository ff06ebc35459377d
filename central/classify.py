"""Run the conflict rules against stored facts and store what they find, with its outcomes.

For a subject that may hold a conflict this loads *every* stored fact of it (not just the
new batch), runs the pure rules of `central.conflicts`, and makes the stored conflicts equal
to the result: new ones inserted, changed ones updated, unresolved ones no longer found
deleted (a ``sequence_gap`` is marked resolved instead, so ops see that a hole was filled).
Outcomes are derived the same way, so they too end the same whatever the arrival order:
a ticket is suspicious while it has an open duplicate entry; an account is held (blocked)
while its balance is in debt.

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

Everything else a batch does is aggregate SQL over the batch's stored rows (read back by
primary key): presence merged per (ticket, zone) and occupancy moved by the difference
(`settle_gate`), balances moved per account with holds settled (`settle_money`), each
published down in the same statement unless a rule must run first.

Callers hold the festival's ingest lock (see `central.ingest.festival_lock`), so two
classifications of one subject never interleave.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from central import feed
from central.conflicts import (
    CatalogChange,
    Conflict,
    ConflictKind,
    EventFact,
    LedgerFact,
    classify_account,
    classify_clock,
    classify_gaps,
    classify_ticket,
    contiguous_through,
)
from central.events import ADMITS_GATE, ADMITS_MONEY
from central.rows import ticket_row

K = ConflictKind
TICKET_KINDS = (K.DUPLICATE_ENTRY, K.STALE_CATALOG, K.POLICY_VIOLATION)
ACCOUNT_KINDS = (K.OVERDRAFT, K.STALE_CATALOG, K.POLICY_VIOLATION)
_BAD_STATUS = {"CANCELLED": "cancelled", "REFUNDED": "refunded"}
# An EventFact's fields as device_event columns, in the dataclass's order (`_fact` builds
# one positionally). Ids as text: the rules compare and show them as str, and psycopg's
# text loader is far cheaper than a UUID per column formatted again (an account in debt is
# reclassified on every push that touches it, with its whole ledger).
_EVENT_SQL = {
    "event_id": "event_id::text", "device_id": "device_id::text", "device_seq": "device_seq",
    "hlc": "hlc", "wall_ms": "wall_ms", "catalog_seq": "catalog_seq", "kind": "kind",
    "verdict": "verdict", "ticket_id": "ticket_id::text", "zone_id": "zone_id::text",
    "account_id": "account_id::text", "amount": "coalesce(amount, 0)",
    "received_ms": "(extract(epoch FROM received_at) * 1000)::bigint",
    "device_hlc": "coalesce(device_hlc, 0)",
    # The scanned code, read only where a rule judges it (a ticket's admissions): NULL when
    # the payload does not hold one of the shape devices write.
    "code_version": "CASE WHEN jsonb_typeof(payload->'code_version') = 'number'"
                    " AND payload->>'code_version' ~ '^[0-9]+$'"
                    " AND length(payload->>'code_version') <= 9"
                    " THEN (payload->>'code_version')::int END",
    "code_hash": "CASE WHEN jsonb_typeof(payload->'code_hash') = 'string'"
                 " THEN payload->>'code_hash' END",
}  # fmt: skip
_CODE_FIELDS = ("code_version", "code_hash")
_TICKET_EVENT_COLS = ", ".join(_EVENT_SQL[f.name] for f in fields(EventFact))
_EVENT_COLS = ", ".join(
    "NULL" if f.name in _CODE_FIELDS else _EVENT_SQL[f.name] for f in fields(EventFact)
)


@dataclass(slots=True)
class StoreResult:
    """Natural keys a `store_conflicts` call inserted and removed."""

    inserted: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)


def _fact(rec: Sequence[Any]) -> EventFact:
    return EventFact(*rec)  # `_EVENT_COLS` is EventFact's fields, in order


async def store_conflicts(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    subject_type: str,
    subject_ids: Iterable[uuid.UUID],
    kinds: Sequence[ConflictKind],
    found: Sequence[Conflict],
    *,
    auto_resolve: bool = False,
) -> StoreResult:
    """Make the stored conflicts of these subjects and kinds equal to `found`."""
    ids = list(subject_ids)
    result = StoreResult()
    if not ids:
        return result
    cur = await conn.execute(
        "SELECT natural_key, resolved_at IS NOT NULL, event_ids, facts, detail FROM conflict"
        " WHERE subject_type = %s AND subject_id = ANY(%s) AND kind = ANY(%s)",
        (subject_type, ids, [str(k) for k in kinds]),
    )
    existing = {r[0]: r for r in await cur.fetchall()}
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    wanted: set[str] = set()
    for c in found:
        key = c.natural_key
        wanted.add(key)
        event_ids = [uuid.UUID(e) for e in c.event_ids]
        old = existing.get(key)
        if old is None:
            inserts.append(
                (festival_id, str(c.kind), key, subject_type, uuid.UUID(c.subject_id),
                 event_ids, Jsonb(c.facts), Jsonb(c.detail))
            )  # fmt: skip
            result.inserted.add(key)
        elif (list(old[2]), old[3], old[4]) != (event_ids, c.facts, c.detail):
            updates.append((event_ids, Jsonb(c.facts), Jsonb(c.detail), key))
    stale = [k for k, r in existing.items() if k not in wanted and not r[1]]
    async with conn.cursor() as cur2:
        if inserts:
            await cur2.executemany(
                "INSERT INTO conflict (festival_id, kind, natural_key, subject_type, subject_id,"
                " event_ids, facts, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (natural_key) DO NOTHING",
                inserts,
            )
        if updates:
            await cur2.executemany(
                "UPDATE conflict SET event_ids = %s, facts = %s, detail = %s, updated_at = now()"
                " WHERE natural_key = %s",
                updates,
            )
        if stale and auto_resolve:
            await cur2.execute(
                "UPDATE conflict SET resolved_at = now(), resolved_by = 'system',"
                " resolution_note = 'resolved by later facts' WHERE natural_key = ANY(%s)",
                (stale,),
            )
        elif stale:
            await cur2.execute("DELETE FROM conflict WHERE natural_key = ANY(%s)", (stale,))
    result.removed.update(stale)
    return result


async def _history(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, keys: dict[tuple[str, str], str]
) -> dict[str, list[CatalogChange]]:
    """Catalog changes per subject; `keys` maps (feed table, feed key) to a subject id."""
    out: dict[str, list[CatalogChange]] = defaultdict(list)
    if not keys:
        return out
    # One index probe per (table, key): a filter over the festival's whole catalog history
    # would grow with every ticket it ever issued. A ticket row (`sync.catalog.TicketRow`)
    # also gives the ticket's code as of that change.
    cur = await conn.execute(
        "SELECT k.t, k.key, f.op, f.seq, f.status, f.at_ms, f.code_version, f.code_hash"
        " FROM unnest(%s::text[], %s::text[]) AS k(t, key), LATERAL ("
        "  SELECT op, seq, row->>'status' AS status,"
        "   (extract(epoch FROM committed_at) * 1000)::bigint AS at_ms,"
        "   (row->>'code_version')::int AS code_version, row->>'code_hash' AS code_hash"
        "  FROM change_feed"
        "  WHERE festival_id = %s AND table_name IN ('ticket', 'block') AND table_name = k.t"
        "  AND key = k.key OFFSET 0) f",
        ([t for t, _ in keys], [k for _, k in keys], festival_id),
    )
    for table_name, key, op, seq, status, at_ms, version, code_hash in await cur.fetchall():
        subject = keys.get((table_name, key))
        if subject is None:
            continue
        if table_name == "block":
            bad = "blocked" if op == "upsert" else None
            out[subject].append(CatalogChange(seq, at_ms, "block", bad))
        elif status is not None:
            bad = _BAD_STATUS.get(status)
            out[subject].append(CatalogChange(seq, at_ms, "status", bad, version, code_hash))
    return out


# The JSON of AccountRow, built where the account is (no round trip through Python models).
_ACCOUNT_JSON = """
SELECT coalesce(jsonb_agg(jsonb_build_object(
         'id', id::text, 'festival_id', festival_id::text, 'tag_hash', encode(tag_hash, 'hex'),
         'balance', balance, 'blocked', blocked) ORDER BY id), '[]')::text, count(*)
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


async def _ticket_conflicts(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, candidates: list[uuid.UUID]
) -> int | None:
    """Run the ticket rule on these tickets, store what it finds, settle suspicion.

    Returns the last feed seq it published (a ticket's suspicion changed), else None.
    """
    if not candidates:
        return None
    cur = await conn.execute(
        f"SELECT {_TICKET_EVENT_COLS} FROM device_event"
        f" WHERE ticket_id = ANY(%s) AND {ADMITS_GATE}",
        (candidates,),
    )
    events: dict[str, list[EventFact]] = defaultdict(list)
    for rec in await cur.fetchall():
        fact = _fact(rec)
        events[fact.ticket_id or ""].append(fact)
    keys = {("ticket", str(t)): str(t) for t in candidates} | {
        ("block", f"ticket:{t}"): str(t) for t in candidates
    }
    history = await _history(conn, festival_id, keys)
    found: list[Conflict] = []
    for tid in candidates:
        found.extend(classify_ticket(str(tid), events.get(str(tid), []), history.get(str(tid), ())))
    stored = await store_conflicts(conn, festival_id, "ticket", candidates, TICKET_KINDS, found)
    touched = {k.split(":")[2] for k in stored.inserted | stored.removed if k.startswith("dup")}
    if not touched:
        return None
    seqs = await refresh_suspicious(conn, festival_id, [uuid.UUID(t) for t in sorted(touched)])
    return seqs[-1] if seqs else None


async def refresh_suspicious(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, ticket_ids: list[uuid.UUID]
) -> list[int]:
    """suspicious := has an open duplicate entry, for tickets whose duplicates just changed;
    returns the seqs of the ticket rows it published."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE ticket t SET suspicious = s.open, updated_at = now() FROM ("
            "  SELECT id, EXISTS (SELECT 1 FROM conflict c WHERE c.subject_type = 'ticket'"
            "   AND c.subject_id = x.id AND c.kind = 'duplicate_entry' AND c.resolved_at IS NULL)"
            "   AS open FROM unnest(%s::uuid[]) AS x(id)) s"
            " WHERE t.id = s.id AND t.suspicious IS DISTINCT FROM s.open RETURNING t.*",
            (ticket_ids,),
        )
        rows = [ticket_row(r) for r in await cur.fetchall()]
    return await feed.publish_rows(conn, festival_id, "ticket", rows)


# A change-feed row that made a ticket or tag unusable, or some code of a ticket: its
# status, a block, or a transfer (`central.tickets.transfer_ticket` raises a signed
# ticket's code version from 0). The partial index's predicate (migration 0007).
_UNUSABLE = (
    "(f.table_name = 'block'"
    " OR (f.table_name = 'ticket' AND (f.row->>'status' IN ('CANCELLED', 'REFUNDED')"
    " OR f.row->>'code_version' ~ '^[1-9]')))"
)
# A batch's admission with an outside code (read as the rule reads it, `_EVENT_SQL`) that a
# row of its ticket in the feed does not have: a transfer replaced the code, or gave it.
# Only a transfer makes a ticket's rows differ in hash, and the feed only grows, so this
# only ever grows. (Outside codes keep their code version: `_UNUSABLE` does not see them.)
_RECODED = f"""(kind = 'entry' AND ({_EVENT_SQL["code_version"]}) IS NULL
    AND ({_EVENT_SQL["code_hash"]}) IS NOT NULL
    AND EXISTS (SELECT 1 FROM change_feed f WHERE f.festival_id = %(fid)s
                AND f.table_name IN ('ticket', 'block') AND f.table_name = 'ticket'
                AND f.key = ticket_id::text
                AND f.row->>'code_hash' IS DISTINCT FROM payload->>'code_hash'))"""
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
WITH b AS (
  SELECT DISTINCT ON (ticket_id, zone_id) ticket_id, zone_id, kind = 'entry' AS inside, hlc,
         device_seq, bool_or(kind = 'entry') OVER (PARTITION BY ticket_id, zone_id) AS entry,
         bool_or({_RECODED}) OVER (PARTITION BY ticket_id, zone_id) AS recoded
  FROM {{batch}}
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
     OR EXISTS (SELECT 1 FROM change_feed f WHERE f.festival_id = %(fid)s AND {_UNUSABLE}
                AND f.key = t.id::text)
     OR EXISTS (SELECT 1 FROM change_feed f WHERE f.festival_id = %(fid)s AND {_UNUSABLE}
                AND f.key = 'ticket:' || t.id::text)),
later AS MATERIALIZED (SELECT EXISTS (SELECT 1 FROM cand) AS yes),
p AS (  -- PresenceRow's JSON, then ZoneRow's
  SELECT 1 AS part, 'presence' AS table_name, ticket_id::text || ':' || zone_id::text AS key,
         jsonb_build_object('ticket_id', ticket_id::text, 'zone_id', zone_id::text,
                            'inside', inside, 'hlc', hlc) AS row
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
    seq = await _ticket_conflicts(conn, festival_id, list(candidates))
    seqs = [] if seq is None else [seq]
    seqs += await feed.publish_json(conn, festival_id, "presence", presence or "[]", n_presence)
    seqs += await feed.publish_json(conn, festival_id, "zone", zones or "[]", n_zones)
    return seqs[-1] if seqs else None


# The ops path (`classify_accounts`): an account can have a conflict only if its ledger,
# replayed in rule order, dips below zero, its tag was ever block-listed, or it already has
# one stored. The replay is the same sum the rule makes (device ids compared bytewise, as
# Python compares str).
_ACCOUNT_CANDIDATES = f"""
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
  OR EXISTS (SELECT 1 FROM change_feed f WHERE f.festival_id = a.festival_id AND {_UNUSABLE}
             AND f.key = 'tag:' || encode(a.tag_hash, 'hex')))
"""
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
WITH m AS (
  SELECT account_id,
         sum(CASE WHEN kind = 'sale' THEN -amount ELSE amount END)
           OVER (PARTITION BY account_id ORDER BY hlc, device_seq) AS run,
         sum(CASE WHEN kind = 'sale' THEN -amount ELSE amount END)
           OVER (PARTITION BY account_id) AS total, hlc, kind <> 'sale' AS credit,
         CASE WHEN kind = 'sale' THEN -amount ELSE 0 END AS debit
  FROM {{batch}}),
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
                                                 WHERE f.festival_id = %(fid)s AND {_UNUSABLE})
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
  SELECT 'account' AS table_name, id::text AS key,
         jsonb_build_object('id', id::text, 'festival_id', festival_id::text,
           'tag_hash', encode(tag_hash, 'hex'), 'balance', balance, 'blocked', blocked) AS row,
         row_number() OVER (ORDER BY id) AS ord
  FROM u),{{publish}}
SELECT {{published}},
  (SELECT coalesce(array_agg(id ORDER BY id) FILTER (WHERE candidate), '{{{{}}}}') FROM u)
"""
_MONEY_SQL = _MONEY.format(
    batch=_BATCH.format(effect="money"),
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
    await _account_conflicts(conn, festival_id, list(candidates))
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
    cur2 = await conn.execute(_ACCOUNT_CANDIDATES, {"ids": ids})
    await _account_conflicts(conn, festival_id, sorted(r[0] for r in await cur2.fetchall()))
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


async def _account_conflicts(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, candidates: list[uuid.UUID]
) -> None:
    """Run the account rule on these accounts (rows locked) and store what it finds."""
    if not candidates:
        return
    cur = await conn.execute(
        "SELECT id::text, balance, encode(tag_hash, 'hex') FROM cashless_account"
        " WHERE id = ANY(%s)",
        (candidates,),
    )
    accounts = {aid: (balance, tag) for aid, balance, tag in await cur.fetchall()}
    cur = await conn.execute(
        f"SELECT {_EVENT_COLS} FROM device_event WHERE account_id = ANY(%s)"
        f" AND {ADMITS_MONEY} AND amount > 0",
        (candidates,),
    )
    ledgers: dict[str, list[LedgerFact]] = defaultdict(list)
    for rec in await cur.fetchall():
        fact = _fact(rec)
        delta = -fact.amount if fact.kind == "sale" else fact.amount
        ledgers[fact.account_id or ""].append(LedgerFact(fact.order, fact.event_id, delta, fact))
    # Central's own entries have no HLC: they sort by central's clock, before device facts
    # of that ms (the order of the `cashless_ledger` view).
    cur = await conn.execute(
        "SELECT account_id, id, amount, (extract(epoch FROM created_at) * 1000)::bigint"
        " FROM cashless_transaction WHERE account_id = ANY(%s)",
        (candidates,),
    )
    for aid, lid, amount, at_ms in await cur.fetchall():
        ledgers[str(aid)].append(LedgerFact((at_ms << 16, "", lid), f"ledger:{lid}", amount))
    tag_keys = {("block", f"tag:{accounts[str(a)][1]}"): str(a) for a in candidates}
    history = await _history(conn, festival_id, tag_keys)
    found: list[Conflict] = []
    for aid in map(str, candidates):
        ledger = ledgers.get(aid, [])
        opening = accounts[aid][0] - sum(e.delta for e in ledger)  # set outside the ledger
        found.extend(classify_account(aid, ledger, history.get(aid, ()), opening=opening).conflicts)
    await store_conflicts(conn, festival_id, "account", candidates, ACCOUNT_KINDS, found)


def continues(acked_through: int, max_seq: int, new: tuple[int, int, int]) -> bool:
    """Whether the seqs just stored, `new` (count, lowest, highest), continue the device's
    ack without a hole while nothing above it was held: then there is no gap to find."""
    count, first, last = new
    # Distinct seqs: count spans first..last, no hole.
    return (
        max_seq <= acked_through
        and count > 0
        and first == acked_through + 1
        and (last - first + 1 == count)
    )


async def classify_device(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    device_id: uuid.UUID,
    *,
    acked_through: int,
    max_seq: int,
    new: tuple[int, int, int],
    skew_bound_ms: int,
    check_clock: bool,
) -> tuple[int, int]:
    """Sequence gaps and clock skew (when asked); returns (acked_through, max_seq).

    `new` is (count, lowest, highest) of the seqs just stored; `acked_through` and `max_seq`
    are the device row's before them. When no seq above the ack was held before and the new
    ones continue it without a hole (a device pushing in order), the ack simply moves and
    there is no gap to find or resolve; otherwise every held seq above the ack is read.
    """
    if check_clock:
        await _clock_conflicts(conn, festival_id, device_id, skew_bound_ms)
    if continues(acked_through, max_seq, new):
        return new[2], new[2]
    cur = await conn.execute(
        "SELECT device_seq, event_id FROM device_event WHERE device_id = %s AND device_seq > %s"
        " ORDER BY device_seq",
        (device_id, acked_through),
    )
    above = [(seq, str(eid)) for seq, eid in await cur.fetchall()]
    acked = contiguous_through(acked_through, (s for s, _ in above))
    max_seq = max([acked, *(s for s, _ in above)])
    gaps = classify_gaps(str(device_id), acked, [a for a in above if a[0] > acked])
    await store_conflicts(
        conn, festival_id, "device", [device_id], (K.SEQUENCE_GAP,), gaps, auto_resolve=True
    )
    return acked, max_seq


async def _clock_conflicts(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, device_id: uuid.UUID, skew_bound_ms: int
) -> None:
    """Re-run the clock rule over the device's skewed events past the last resolution."""
    cur = await conn.execute(
        "SELECT coalesce(max((detail->>'resolved_through')::bigint), 0) FROM conflict"
        " WHERE kind = 'clock_skew' AND subject_id = %s AND resolved_at IS NOT NULL",
        (device_id,),
    )
    rec = await cur.fetchone()
    resolved_through = int(rec[0]) if rec else 0
    cur = await conn.execute(
        f"SELECT {_EVENT_COLS} FROM device_event WHERE device_id = %s AND device_seq > %s"
        " AND (skew_ms > %s OR skew_ms < -%s)",
        (device_id, resolved_through, skew_bound_ms, skew_bound_ms),
    )
    facts = [_fact(r) for r in await cur.fetchall()]
    skew = classify_clock(str(device_id), facts, skew_bound_ms, resolved_through=resolved_through)
    await store_conflicts(conn, festival_id, "device", [device_id], (K.CLOCK_SKEW,), skew)
