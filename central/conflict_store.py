"""Run the conflict rules against stored facts and store what they find, with its outcomes.

For a subject that may hold a conflict this loads *every* stored fact of it (not just the
new batch), runs the pure rules of `central.conflicts`, and makes the stored conflicts equal
to the result: new ones inserted, changed ones updated, unresolved ones no longer found
deleted (a ``sequence_gap`` is marked resolved instead, so ops see that a hole was filled).
Outcomes are derived the same way, so they too end the same whatever the arrival order:
a ticket is suspicious while it has an open duplicate entry; an account is held (blocked)
while its balance is in debt (`central.settle`).

Which tickets and accounts to run the rules for is decided where a batch is settled
(`central.settle`, with the tests of `central.candidates`); a device's sequence gaps and
clock skew are found here (`classify_device`).

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
from sync import facts

K = ConflictKind
TICKET_KINDS = (K.DUPLICATE_ENTRY, K.STALE_CATALOG, K.POLICY_VIOLATION)
ACCOUNT_KINDS = (K.OVERDRAFT, K.STALE_CATALOG, K.POLICY_VIOLATION)
# An EventFact's fields as device_event columns, in the dataclass's order (`_fact` builds
# one positionally). Ids as text: the rules compare and show them as str, and psycopg's
# text loader is far cheaper than a UUID per column formatted again (an account in debt is
# reclassified on every push that touches it, with its whole ledger).
EVENT_SQL = {
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
_TICKET_EVENT_COLS = ", ".join(EVENT_SQL[f.name] for f in fields(EventFact))
_EVENT_COLS = ", ".join(
    "NULL" if f.name in _CODE_FIELDS else EVENT_SQL[f.name] for f in fields(EventFact)
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
            out[subject].append(CatalogChange(seq, at_ms, "block", facts.block_bad(op)))
        elif status is not None:
            bad = facts.ticket_bad(status)
            out[subject].append(CatalogChange(seq, at_ms, "status", bad, version, code_hash))
    return out


async def ticket_conflicts(
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


async def account_conflicts(
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
        delta = facts.ledger_delta(fact.kind, fact.amount)
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
