"""Ingest a device's pushed batch: store every event, apply the new ones, classify, answer.

One transaction per batch; steps 2-4 under the festival's ingest lock:

1. check and store: every event is inserted (COPY into a temp table, then one
   ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``), rejected ones with a reason, so a
   replayed event changes nothing and a bad one never blocks the device's queue;
2. apply the events stored *now*: access log and ledger (balance before/after);
3. classify every ticket, account and device the new events touch, which also settles
   presence, occupancy, suspicious tickets and held accounts, and publishes them down;
4. answer the highest contiguous ``device_seq`` held.

The lock serialises steps 2-4 per festival: classification reads all facts of a subject,
and two batches classifying the same ticket concurrently could each miss the other's facts.
It is taken after storing, so one device's batch stores while another's classifies (a
batch that waits sees the other's facts once it has the lock). Feed writers are serialised
per festival anyway. Lock order everywhere: device row, festival lock, accounts, feed head.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection

from central import classify, feed
from central.auth import DevicePrincipal
from central.conflicts import clock_skew_ms
from central.events import Lookups, Prepared, check_identity, prepare, subject_refs
from sync.hlc import HybridClock
from sync.protocol import Event, PushResponse

DEFAULT_SKEW_BOUND_MS = 120_000
_DUP_NAMESPACE = uuid.UUID("6b0a3c1e-5a4f-4c1e-9a57-2f7e0c0f6e11")
_TMP = """CREATE TEMP TABLE IF NOT EXISTS ingest_tmp (
    device_id uuid, device_seq bigint, event_id uuid, festival_id uuid, kind text,
    verdict text, hlc bigint, wall_ms bigint, catalog_seq bigint, payload jsonb,
    received_at timestamptz, skew_ms bigint, status text, reason text, ticket_id uuid,
    zone_id uuid, account_id uuid, amount bigint) ON COMMIT DELETE ROWS"""
_COLS = (
    "device_id, device_seq, event_id, festival_id, kind, verdict, hlc, wall_ms, catalog_seq,"
    " payload, received_at, skew_ms, status, reason, ticket_id, zone_id, account_id, amount"
)
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


def festival_lock_key(festival_id: uuid.UUID) -> int:
    """The advisory-lock key that serialises ingest and reclassification per festival."""
    return int.from_bytes(festival_id.bytes[:8], "big", signed=True) ^ 0x1A2B3C4D


async def festival_lock(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> None:
    """Take the festival's ingest lock until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (festival_lock_key(festival_id),))


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
            (festival_id, list(tickets)),
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
            (festival_id, list(accounts), tag_bytes),
        )
        for aid, tag in await cur.fetchall():
            found_accounts.add(aid)
            by_tag[tag] = aid
    return Lookups(frozenset(found_tickets), zones, frozenset(found_accounts), by_tag)


async def _dedupe_event_ids(
    conn: AsyncConnection[Any], device_id: uuid.UUID, prepared: list[Prepared]
) -> None:
    """An event id already used by another (device, seq) is a device bug: keep the event,
    rejected, under a derived id, so the device's queue still moves."""
    cur = await conn.execute(
        "SELECT event_id, device_id, device_seq FROM device_event WHERE event_id = ANY(%s)",
        ([p.event_id for p in prepared],),
    )
    owner = {eid: (dev, seq) for eid, dev, seq in await cur.fetchall()}
    for p in prepared:
        mine = (device_id, p.event.device_seq)
        if owner.setdefault(p.event_id, mine) != mine:
            original = p.event_id
            p.event_id = uuid.uuid5(_DUP_NAMESPACE, f"{device_id}:{p.event.device_seq}")
            p.payload_json = f'{{"duplicate_event_id":"{original}","payload":{p.payload_json}}}'
            p.reject("duplicate_event_id")


async def _store(
    conn: AsyncConnection[Any],
    device: DevicePrincipal,
    prepared: list[Prepared],
    received_ms: int,
) -> set[int]:
    """Insert every event; return the device_seqs that were not held before."""
    received_at = datetime.fromtimestamp(received_ms / 1000, UTC)
    await conn.execute(_TMP)
    async with conn.cursor() as cur:
        async with cur.copy(f"COPY ingest_tmp ({_COLS}) FROM STDIN") as copy:
            for p in prepared:
                e = p.event
                await copy.write_row(
                    (device.id, e.device_seq, p.event_id, device.festival_id, str(e.kind),
                     e.verdict, e.hlc, e.wall_ms, e.catalog_seq, p.payload_json, received_at,
                     clock_skew_ms(e.wall_ms, e.hlc, received_ms), p.status, p.reason,
                     p.ticket_id, p.zone_id, p.account_id, p.amount)
                )  # fmt: skip
        await cur.execute(
            f"INSERT INTO device_event ({_COLS}) SELECT {_COLS} FROM ingest_tmp"
            " ORDER BY device_seq ON CONFLICT DO NOTHING RETURNING device_seq"
        )
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
    accounts = sorted({p.account_id for p in effective if p.account_id is not None})
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
            await _dedupe_event_ids(conn, device.id, prepared)
            new_seqs = await _store(conn, device, prepared, received_ms)
        # Storing needs no festival-wide order (the device row lock orders one device's
        # pushes), so other devices' batches store while this one classifies. From here on
        # every subject's facts are read whole, so the festival's pushes go one at a time.
        await festival_lock(conn, device.festival_id)
        new = [p for p in prepared if p.event.device_seq in new_seqs]
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
