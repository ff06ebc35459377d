"""Ingest a device's pushed batch: store every event, apply the new ones, classify, answer.

One transaction per batch; steps 2-3 under the festival's ingest lock(s):

1. check and store: every event is inserted (the batch as one JSON array, one
   ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``), rejected ones with a reason, so a
   replayed event changes nothing and a bad one never blocks the device's queue;
2. apply the events stored *now*: access log and ledger (balance before/after);
3. classify every ticket, account and device the new events touch, which also settles
   presence, occupancy, suspicious tickets and held accounts, and publishes them down;
4. answer the highest contiguous ``device_seq`` held.

The lock serialises steps 2-3 per festival: classification reads all facts of a subject,
and two batches classifying the same ticket concurrently could each miss the other's facts.
It comes in two halves, one for ticket facts (gates) and one for account facts (bars and
top-up points), and a batch takes only the half its new events touch: a device role never
produces both, so gate and bar batches apply and classify side by side and only queue at
the feed head (issue 3: one festival-wide lock made four devices exactly as fast as one).
It is taken after storing, so one device's batch stores while another's classifies (a
batch that waits sees the other's facts once it has the lock). Feed writers are serialised
per festival anyway. Lock order everywhere: device row, tickets half, accounts half,
accounts, feed head (`festival_lock` with no arguments takes both halves, in that order).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from psycopg import AsyncConnection
from pydantic_core import to_json

from central import classify, feed
from central.auth import DevicePrincipal
from central.conflicts import clock_skew_ms
from central.events import Lookups, Prepared, check_identity, prepare, subject_refs
from sync.hlc import HybridClock
from sync.protocol import Event, PushResponse

DEFAULT_SKEW_BOUND_MS = 120_000
_DUP_NAMESPACE = uuid.UUID("6b0a3c1e-5a4f-4c1e-9a57-2f7e0c0f6e11")
# The batch travels as one JSON array of positional rows (serialised by pydantic-core in
# one call) and is inserted in one statement: cheaper on both sides than COPY into a temp
# table then INSERT ... SELECT (measured, issue 3). Rows are inserted in device_seq order.
_INSERT = """
INSERT INTO device_event (device_id, device_seq, event_id, festival_id, kind, verdict, hlc,
    wall_ms, catalog_seq, payload, received_at, skew_ms, status, reason, ticket_id, zone_id,
    account_id, amount)
SELECT %(dev)s, (r->>0)::bigint, (r->>1)::uuid, %(fid)s, r->>2, r->>3, (r->>4)::bigint,
       (r->>5)::bigint, (r->>6)::bigint, r->7, %(at)s, (r->>8)::bigint, r->>9, r->>10,
       (r->>11)::uuid, (r->>12)::uuid, (r->>13)::uuid, (r->>14)::bigint
FROM jsonb_array_elements(%(rows)s::jsonb) AS x(r)
ORDER BY (r->>0)::bigint
ON CONFLICT DO NOTHING RETURNING device_seq
"""
_clock = HybridClock()


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What a push did: the ack, how many events were new and how many of those rejected."""

    acked_through: int
    stored: int
    rejected: int
    head_seq: int


def central_hlc(now_ms: int) -> int:
    """Central's HLC for an answer: never goes backwards within this process."""
    return _clock.now(now_ms)


def festival_lock_key(festival_id: uuid.UUID, half: str = "tickets") -> int:
    """The advisory-lock key of one half ("tickets" or "accounts") of a festival's lock."""
    base = int.from_bytes(festival_id.bytes[:8], "big", signed=True) ^ 0x1A2B3C4D
    return base if half == "tickets" else base ^ 0x5A5A


async def festival_lock(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    *,
    tickets: bool = True,
    accounts: bool = True,
) -> None:
    """Take the festival's ingest lock (both halves unless told) until the transaction ends."""
    if tickets:
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (festival_lock_key(festival_id),))
    if accounts:
        key = festival_lock_key(festival_id, "accounts")
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))


def _first_per_seq(events: list[Event]) -> list[Event]:
    """A seq sent twice in one batch: the first copy counts, as it would across batches."""
    seen: set[int] = set()
    out = []
    for event in events:
        if event.device_seq not in seen:
            seen.add(event.device_seq)
            out.append(event)
    return out


async def _lookups(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, events: list[Event]
) -> Lookups:
    tickets, accounts, tags = subject_refs(events)
    found_tickets: set[uuid.UUID] = set()
    if tickets:
        cur = await conn.execute(
            "SELECT id FROM ticket WHERE festival_id = %s AND id = ANY(%s)",
            (festival_id, list(tickets.values())),
        )
        found_tickets = {r[0] for r in await cur.fetchall()}
    cur = await conn.execute("SELECT id FROM zone WHERE festival_id = %s", (festival_id,))
    zones = frozenset(r[0] for r in await cur.fetchall())
    by_tag: dict[str, uuid.UUID] = {}
    found_accounts: set[uuid.UUID] = set()
    if accounts or tags:
        tag_bytes = []
        for tag in tags:
            try:
                tag_bytes.append(bytes.fromhex(tag))
            except ValueError:
                continue
        cur = await conn.execute(
            "SELECT id, encode(tag_hash, 'hex') FROM cashless_account WHERE festival_id = %s"
            " AND (id = ANY(%s) OR tag_hash = ANY(%s))",
            (festival_id, list(accounts.values()), tag_bytes),
        )
        for aid, tag in await cur.fetchall():
            found_accounts.add(aid)
            by_tag[tag] = aid
    ids = tickets | accounts
    return Lookups(frozenset(found_tickets), zones, frozenset(found_accounts), by_tag, ids)


def _by_uuid(ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """Sorted as Postgres sorts uuids (bytewise), without Python-level UUID comparisons."""
    return sorted(set(ids), key=attrgetter("int"))


async def _reject_taken_ids(
    conn: AsyncConnection[Any], device_id: uuid.UUID, prepared: list[Prepared]
) -> list[Prepared]:
    """Events the insert skipped although their (device, seq) is not held: their event id is
    already another event's (a device bug). Keep each, rejected, under a derived id, so the
    device's queue still moves; return them to be stored."""
    cur = await conn.execute(
        "SELECT device_seq FROM device_event WHERE device_id = %s AND device_seq = ANY(%s)",
        (device_id, [p.event.device_seq for p in prepared]),
    )
    held = {r[0] for r in await cur.fetchall()}
    taken = [p for p in prepared if p.event.device_seq not in held]
    for p in taken:
        original = p.event_id
        p.event_id = uuid.uuid5(_DUP_NAMESPACE, f"{device_id}:{p.event.device_seq}")
        p.payload = {"duplicate_event_id": str(original), "payload": p.payload}
        p.reject("duplicate_event_id")
    return taken


async def _store(
    conn: AsyncConnection[Any],
    device: DevicePrincipal,
    prepared: list[Prepared],
    received_ms: int,
    acked: int,
) -> set[int]:
    """Insert every event; return the device_seqs that were not held before.

    The insert skips an event whose (device_id, device_seq) is held (a replay: stored once)
    or whose event_id is taken; the second kind, rare, is stored again as rejected.
    """
    new = await _insert(conn, device, prepared, received_ms)
    skipped = [p for p in prepared if p.event.device_seq > acked and p.event.device_seq not in new]
    if skipped:
        taken = await _reject_taken_ids(conn, device.id, skipped)
        if taken:
            new |= await _insert(conn, device, taken, received_ms)
    return new


async def _insert(
    conn: AsyncConnection[Any],
    device: DevicePrincipal,
    prepared: list[Prepared],
    received_ms: int,
) -> set[int]:
    rows = [
        (e.device_seq, p.event_id, str(e.kind), e.verdict, e.hlc, e.wall_ms, e.catalog_seq,
         p.payload, clock_skew_ms(e.wall_ms, e.hlc, received_ms), p.status, p.reason,
         p.ticket_id, p.zone_id, p.account_id, p.amount)
        for p in prepared
        for e in (p.event,)
    ]  # fmt: skip
    cur = await conn.execute(
        _INSERT,
        {"dev": device.id, "fid": device.festival_id, "rows": to_json(rows).decode(),
         "at": datetime.fromtimestamp(received_ms / 1000, UTC)},
    )  # fmt: skip
    return {r[0] for r in await cur.fetchall()}


# Effects of this batch's newly stored events, computed where they are: the access log (and
# a ticket's first use, earliest admission winning whatever the arrival order) ...
_ACCESS = """
WITH a AS (
  INSERT INTO zone_access_log (festival_id, zone_id, ticket_id, action, at, event_id, device_id)
  SELECT e.festival_id, e.zone_id, e.ticket_id,
         CASE e.kind WHEN 'entry' THEN 'ENTRY' ELSE 'EXIT' END,
         to_timestamp((e.hlc >> 16) / 1000.0), e.event_id, e.device_id
  FROM unnest(%(seqs)s::bigint[]) AS s(seq)
  JOIN device_event e ON e.device_id = %(dev)s AND e.device_seq = s.seq
  WHERE e.ticket_id IS NOT NULL
  RETURNING ticket_id, action, at)
UPDATE ticket t SET used_at = f.at
FROM (SELECT ticket_id, min(at) AS at FROM a WHERE action = 'ENTRY' GROUP BY ticket_id) f
WHERE t.id = f.ticket_id AND (t.used_at IS NULL OR t.used_at > f.at)
"""
# ... and the ledger, with each entry's balance before and after in (hlc, seq) order. The
# accounts are locked first, so the balances read here are the ones the UPDATE changes.
_LEDGER = """
WITH n AS (
  SELECT e.festival_id, e.account_id, e.event_id, e.device_id, e.kind, e.hlc, e.device_seq,
         CASE WHEN e.kind = 'sale' THEN -e.amount ELSE e.amount END AS delta
  FROM unnest(%(seqs)s::bigint[]) AS s(seq)
  JOIN device_event e ON e.device_id = %(dev)s AND e.device_seq = s.seq
  WHERE e.account_id IS NOT NULL),
r AS (
  SELECT n.*, a.balance + sum(n.delta) OVER (
           PARTITION BY n.account_id ORDER BY n.hlc, n.device_seq) AS after
  FROM n JOIN cashless_account a ON a.id = n.account_id),
ins AS (
  INSERT INTO cashless_transaction (festival_id, account_id, type, amount, balance_before,
      balance_after, event_id, device_id, vendor_id, created_at)
  SELECT festival_id, account_id,
         CASE kind WHEN 'sale' THEN 'PAYMENT' WHEN 'topup' THEN 'TOPUP' ELSE 'REFUND' END,
         delta, after - delta, after, event_id, device_id,
         CASE WHEN kind = 'sale' THEN %(vendor)s::uuid END, to_timestamp((hlc >> 16) / 1000.0)
  FROM r)
UPDATE cashless_account a SET balance = a.balance + s.total
FROM (SELECT account_id, sum(delta) AS total FROM n GROUP BY account_id) s
WHERE a.id = s.account_id
RETURNING a.id
"""


async def _apply(
    conn: AsyncConnection[Any], device: DevicePrincipal, new: list[Prepared]
) -> set[uuid.UUID]:
    """Access log and ledger rows for newly stored events; returns accounts whose balance moved."""
    # Only events that take effect are passed (`Prepared.admits`), so the SQL needs no filter.
    effective = [p for p in new if p.admits]
    gate = [p.event.device_seq for p in effective if p.ticket_id is not None]
    if gate:
        await conn.execute(_ACCESS, {"dev": device.id, "seqs": gate})
    money = [p.event.device_seq for p in effective if p.account_id is not None]
    accounts = _by_uuid(p.account_id for p in effective if p.account_id is not None)
    if not accounts:
        return set()
    await conn.execute(
        "SELECT 1 FROM cashless_account WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (accounts,)
    )
    cur = await conn.execute(_LEDGER, {"dev": device.id, "seqs": money, "vendor": device.vendor_id})
    return {r[0] for r in await cur.fetchall()}


async def ingest_batch(
    conn: AsyncConnection[Any],
    device: DevicePrincipal,
    events: list[Event],
    *,
    received_ms: int,
    skew_bound_ms: int = DEFAULT_SKEW_BOUND_MS,
    pending: int | None = None,
) -> IngestResult:
    """Store, apply and classify one pushed batch in one transaction (see module doc).

    Raises `central.events.Mismatch` (nothing stored) if an event claims another device or
    festival. `conn` must be idle; the transaction commits before this returns.
    """
    check_identity(device, events)
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT acked_through FROM device WHERE id = %s FOR UPDATE", (device.id,)
        )
        rec = await cur.fetchone()
        acked = int(rec[0]) if rec else 0
        new_seqs: set[int] = set()
        prepared: list[Prepared] = []
        if events:
            events = _first_per_seq(events)
            lookups = await _lookups(conn, device.festival_id, events)
            prepared = [prepare(device, e, lookups) for e in events]
            new_seqs = await _store(conn, device, prepared, received_ms, acked)
        # Storing needs no festival-wide order (the device row lock orders one device's
        # pushes), so other devices' batches store while this one classifies. From here on
        # every subject's facts are read whole, so pushes touching tickets (or accounts) go
        # one at a time per festival.
        new = [p for p in prepared if p.event.device_seq in new_seqs]
        await festival_lock(
            conn,
            device.festival_id,
            tickets=any(p.admits and p.ticket_id is not None for p in new),
            accounts=any(p.admits and p.account_id is not None for p in new),
        )
        offset: int | None = None
        if new:
            moved = await _apply(conn, device, new)
            await classify.classify_tickets(
                conn, device.festival_id, {p.ticket_id for p in new if p.ticket_id and p.admits}
            )
            await classify.classify_accounts(conn, device.festival_id, moved, balance_changed=moved)
            newest = max(new, key=lambda p: p.event.device_seq).event
            offset = clock_skew_ms(newest.wall_ms, newest.hlc, received_ms)
            acked, max_seq = await classify.classify_device(
                conn,
                device.festival_id,
                device.id,
                acked_through=acked,
                skew_bound_ms=skew_bound_ms,
                check_clock=any(
                    abs(clock_skew_ms(p.event.wall_ms, p.event.hlc, received_ms)) > skew_bound_ms
                    for p in new
                ),
            )
        else:
            max_seq = acked
        await conn.execute(
            "UPDATE device SET last_seen_at = now(), last_push_at = now(),"
            " acked_through = %s, max_seq = greatest(max_seq, %s),"
            " clock_offset_ms = coalesce(%s, clock_offset_ms),"
            " pending_events = coalesce(%s, pending_events) WHERE id = %s",
            (acked, max_seq, offset, pending, device.id),
        )
        head = await feed.head(conn, device.festival_id)
    rejected = sum(1 for p in new if p.status == "rejected")
    return IngestResult(acked, len(new), rejected, head)


def push_response(result: IngestResult, now_ms: int) -> PushResponse:
    """The wire answer for an ingest result."""
    return PushResponse(
        acked_through=result.acked_through,
        central_hlc=central_hlc(now_ms),
        head_seq=result.head_seq,
    )
