"""Run the conflict rules against stored facts and store what they find, with its outcomes.

For each affected subject this loads *every* stored fact of it (not just the new batch),
runs the pure rules of `central.conflicts`, and makes the stored conflicts equal to the
result: new ones inserted, changed ones updated, unresolved ones no longer found deleted
(a ``sequence_gap`` is marked resolved instead, so ops see that a hole was filled).
Outcomes are derived the same way, so they too end the same whatever the arrival order:
a ticket is suspicious while it has an open duplicate entry; an account is held (blocked)
while its replayed balance is in debt.

Callers hold the festival's ingest lock (see `central.ingest.festival_lock`), so two
classifications of one subject never interleave.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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
from central.rows import ticket_row, zone_row

K = ConflictKind
TICKET_KINDS = (K.DUPLICATE_ENTRY, K.STALE_CATALOG, K.POLICY_VIOLATION)
ACCOUNT_KINDS = (K.OVERDRAFT, K.STALE_CATALOG, K.POLICY_VIOLATION)
_BAD_STATUS = {"CANCELLED": "cancelled", "REFUNDED": "refunded"}
_EVENT_COLS = (
    "event_id, device_id, device_seq, hlc, wall_ms, catalog_seq, kind, verdict,"
    " ticket_id, zone_id, account_id, coalesce(amount, 0),"
    " (extract(epoch FROM received_at) * 1000)::bigint"
)


@dataclass(slots=True)
class StoreResult:
    """Natural keys a `store_conflicts` call inserted and removed."""

    inserted: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)


def _fact(rec: Sequence[Any]) -> EventFact:
    return EventFact(
        event_id=str(rec[0]),
        device_id=str(rec[1]),
        device_seq=rec[2],
        hlc=rec[3],
        wall_ms=rec[4],
        catalog_seq=rec[5],
        kind=rec[6],
        verdict=rec[7],
        ticket_id=None if rec[8] is None else str(rec[8]),
        zone_id=None if rec[9] is None else str(rec[9]),
        account_id=None if rec[10] is None else str(rec[10]),
        amount=rec[11],
        received_ms=rec[12],
    )


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
    cur = await conn.execute(
        "SELECT table_name, key, op, seq, row->>'status',"
        " (extract(epoch FROM committed_at) * 1000)::bigint FROM change_feed"
        " WHERE festival_id = %s AND table_name = ANY(%s) AND key = ANY(%s)",
        (festival_id, sorted({t for t, _ in keys}), sorted({k for _, k in keys})),
    )
    for table_name, key, op, seq, status, at_ms in await cur.fetchall():
        subject = keys.get((table_name, key))
        if subject is None:
            continue
        if table_name == "block":
            bad = "blocked" if op == "upsert" else None
            out[subject].append(CatalogChange(seq, at_ms, "block", bad))
        elif status is not None:
            out[subject].append(CatalogChange(seq, at_ms, "status", _BAD_STATUS.get(status)))
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


# A ticket can have a conflict only if two devices admitted it, central ever made it unusable,
# or it already has one stored: a cheap indexed test that spares loading every other ticket.
_TICKET_CANDIDATES = """
SELECT t.id FROM unnest(%(ids)s::uuid[]) AS t(id) WHERE
  EXISTS (SELECT 1 FROM conflict c WHERE c.subject_type = 'ticket' AND c.subject_id = t.id)
  OR EXISTS (SELECT 1 FROM change_feed f WHERE f.festival_id = %(fid)s
             AND f.table_name = 'block' AND f.key = 'ticket:' || t.id::text)
  OR EXISTS (SELECT 1 FROM change_feed f WHERE f.festival_id = %(fid)s
             AND f.table_name = 'ticket' AND f.key = t.id::text
             AND f.row->>'status' IN ('CANCELLED', 'REFUNDED'))
  OR (SELECT count(DISTINCT e.device_id) FROM device_event e WHERE e.ticket_id = t.id
      AND e.status = 'applied' AND e.kind = 'entry' AND e.verdict IN ('ok', 'ok_reentry')) > 1
"""


async def classify_tickets(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, ticket_ids: Iterable[uuid.UUID]
) -> None:
    """Re-run the ticket rules for these tickets, and settle their presence and occupancy."""
    ids = sorted(set(ticket_ids))
    if ids:
        # Conflicts first: marking a ticket suspicious locks its row, which must happen
        # before this transaction takes the feed head (catalog writes lock in that order).
        await _ticket_conflicts(conn, festival_id, ids)
        await update_presence(conn, festival_id, ids)


async def _ticket_conflicts(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, ids: list[uuid.UUID]
) -> None:
    """Run the ticket rule on the candidates among `ids`, store it, settle suspicion."""
    cur = await conn.execute(_TICKET_CANDIDATES, {"ids": ids, "fid": festival_id})
    candidates = sorted(r[0] for r in await cur.fetchall())
    if not candidates:
        return
    cur = await conn.execute(
        f"SELECT {_EVENT_COLS} FROM device_event WHERE ticket_id = ANY(%s) AND status = 'applied'"
        " AND ((kind = 'entry' AND verdict IN ('ok', 'ok_reentry'))"
        " OR (kind = 'exit' AND verdict = 'ok'))",
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
    if touched:
        await refresh_suspicious(conn, festival_id, [uuid.UUID(t) for t in sorted(touched)])


async def refresh_suspicious(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, ticket_ids: list[uuid.UUID]
) -> None:
    """suspicious := has an open duplicate entry, for tickets whose duplicates just changed."""
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
    await feed.publish_rows(conn, festival_id, "ticket", rows)


# Presence per (ticket, zone) is its latest admitted entry or exit in (hlc, device, seq)
# order; only rows that change are written, and the statement returns them with what they
# were (all CTEs read one snapshot), so occupancy moves by exactly the difference.
_PRESENCE = """
WITH latest AS (
  SELECT DISTINCT ON (e.ticket_id, e.zone_id) e.ticket_id, e.zone_id,
         e.kind = 'entry' AS inside, e.hlc
  FROM device_event e
  WHERE e.ticket_id = ANY(%s) AND e.status = 'applied'
    AND ((e.kind = 'entry' AND e.verdict IN ('ok', 'ok_reentry'))
         OR (e.kind = 'exit' AND e.verdict = 'ok'))
  ORDER BY e.ticket_id, e.zone_id, e.hlc DESC, e.device_id DESC, e.device_seq DESC),
cur AS (
  SELECT l.*, p.inside AS was_inside, p.hlc AS was_hlc FROM latest l
  LEFT JOIN ticket_presence p ON p.ticket_id = l.ticket_id AND p.zone_id = l.zone_id),
changed AS (
  SELECT * FROM cur WHERE (was_inside, was_hlc) IS DISTINCT FROM (inside, hlc)),
up AS (
  INSERT INTO ticket_presence AS p (ticket_id, zone_id, inside, hlc)
  SELECT ticket_id, zone_id, inside, hlc FROM changed
  ON CONFLICT (ticket_id, zone_id) DO UPDATE SET inside = EXCLUDED.inside, hlc = EXCLUDED.hlc)
SELECT ticket_id, zone_id, inside, hlc, coalesce(was_inside, false) FROM changed
ORDER BY ticket_id, zone_id
"""


async def update_presence(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, ticket_ids: list[uuid.UUID]
) -> None:
    """Settle presence of these tickets and the occupancy of their zones; publish changes."""
    cur = await conn.execute(_PRESENCE, (ticket_ids,))
    changed: list[dict[str, Any]] = []  # PresenceRow dumps, built directly: one per entry
    delta: dict[str, int] = defaultdict(int)
    for tid, zid, inside, hlc_, was_inside in await cur.fetchall():
        delta[str(zid)] += int(inside) - int(was_inside)
        changed.append({"ticket_id": str(tid), "zone_id": str(zid), "inside": inside, "hlc": hlc_})
    if not changed:
        return
    moved = {z: d for z, d in delta.items() if d}
    rows = []
    if moved:  # zone rows are locked before the feed head, as catalog writes lock them
        zones = sorted(moved)
        async with conn.cursor(row_factory=dict_row) as cur3:
            await cur3.execute(
                "UPDATE zone z SET occupancy = z.occupancy + d.delta FROM"
                " unnest(%s::uuid[], %s::int[]) AS d(id, delta) WHERE z.id = d.id RETURNING z.*",
                (zones, [moved[z] for z in zones]),
            )
            rows = [zone_row(r) for r in await cur3.fetchall()]
    await feed.publish_rows(conn, festival_id, "presence", changed)
    await feed.publish_rows(conn, festival_id, "zone", rows)


# An account can have a conflict only if its ledger, replayed in rule order, dips below
# zero, its tag was ever block-listed, or it already has one stored. The replay here is the
# same sum the rule makes (device ids compared bytewise, as Python compares str).
_ACCOUNT_CANDIDATES = """
WITH l AS (
  SELECT t.account_id, (extract(epoch FROM t.created_at) * 1000)::bigint << 16 AS h,
         ''::text AS d, t.id AS s, t.amount AS delta
  FROM cashless_transaction t WHERE t.account_id = ANY(%(ids)s) AND t.event_id IS NULL
  UNION ALL
  SELECT e.account_id, e.hlc, e.device_id::text, e.device_seq,
         CASE WHEN e.kind = 'sale' THEN -e.amount ELSE e.amount END
  FROM device_event e WHERE e.account_id = ANY(%(ids)s) AND e.status = 'applied'
    AND e.verdict = 'approved' AND e.amount > 0),
r AS (
  SELECT account_id,
         sum(delta) OVER (PARTITION BY account_id ORDER BY h, d COLLATE "C", s) AS run,
         sum(delta) OVER (PARTITION BY account_id) AS total
  FROM l),
dip AS (SELECT account_id, min(run - total) AS low FROM r GROUP BY account_id)
SELECT a.id FROM cashless_account a LEFT JOIN dip ON dip.account_id = a.id
WHERE a.id = ANY(%(ids)s) AND (
  a.balance + coalesce(dip.low, 0) < 0
  OR EXISTS (SELECT 1 FROM conflict c WHERE c.subject_type = 'account' AND c.subject_id = a.id)
  OR EXISTS (SELECT 1 FROM change_feed f WHERE f.festival_id = a.festival_id
             AND f.table_name = 'block' AND f.key = 'tag:' || encode(a.tag_hash, 'hex')))
"""


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
    await _account_conflicts(conn, festival_id, ids, accounts)
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
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    ids: list[uuid.UUID],
    accounts: dict[str, dict[str, Any]],
) -> None:
    """Run the account rule on the candidates and store what it finds."""
    cur = await conn.execute(_ACCOUNT_CANDIDATES, {"ids": ids})
    candidates = sorted(r[0] for r in await cur.fetchall())
    if not candidates:
        return
    cur = await conn.execute(
        f"SELECT {_EVENT_COLS} FROM device_event WHERE account_id = ANY(%s)"
        " AND status = 'applied' AND verdict = 'approved' AND amount > 0",
        (candidates,),
    )
    ledgers: dict[str, list[LedgerFact]] = defaultdict(list)
    for rec in await cur.fetchall():
        fact = _fact(rec)
        delta = -fact.amount if fact.kind == "sale" else fact.amount
        ledgers[fact.account_id or ""].append(LedgerFact(fact.order, fact.event_id, delta, fact))
    # Ops entries have no HLC: they sort by central's clock, before device facts of that ms.
    cur = await conn.execute(
        "SELECT account_id, id, amount, (extract(epoch FROM created_at) * 1000)::bigint"
        " FROM cashless_transaction WHERE account_id = ANY(%s) AND event_id IS NULL",
        (candidates,),
    )
    for aid, lid, amount, at_ms in await cur.fetchall():
        ledgers[str(aid)].append(LedgerFact((at_ms << 16, "", lid), f"ledger:{lid}", amount))
    tag_keys = {
        ("block", f"tag:{bytes(accounts[str(a)]['tag_hash']).hex()}"): str(a) for a in candidates
    }
    history = await _history(conn, festival_id, tag_keys)
    found: list[Conflict] = []
    for aid in map(str, candidates):
        ledger = ledgers.get(aid, [])
        opening = accounts[aid]["balance"] - sum(e.delta for e in ledger)  # set outside ledger
        found.extend(classify_account(aid, ledger, history.get(aid, ()), opening=opening).conflicts)
    await store_conflicts(conn, festival_id, "account", candidates, ACCOUNT_KINDS, found)


async def classify_device(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    device_id: uuid.UUID,
    *,
    acked_through: int,
    skew_bound_ms: int,
    check_clock: bool,
) -> tuple[int, int]:
    """Sequence gaps (always) and clock skew (when asked); returns (acked_through, max_seq)."""
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
    if check_clock:
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
        skew = classify_clock(
            str(device_id), facts, skew_bound_ms, resolved_through=resolved_through
        )
        await store_conflicts(conn, festival_id, "device", [device_id], (K.CLOCK_SKEW,), skew)
    return acked, max_seq
