"""Ingest a device's pushed batch: store every event, apply the new ones, classify, answer.

One transaction per batch; steps 2-3 under the festival's ingest lock(s):

1. check and store: what each event says on its own is read from the parsed push
   (`central.events.row`), the batch goes over as one JSON array, and one ``INSERT ...
   SELECT`` checks every event against the catalog and stores it (rejected ones with a
   reason, so a replayed event changes nothing and a bad one never blocks the device's
   queue; `central.events.STORE`). Seqs the device row says are held are not sent, and a
   batch whose seqs are all past the highest held one skips the per-row "held already?"
   check (`STORE_FRESH`). A push that continues the device's ack writes its device row
   here, before the festival lock;
2. apply them: presence merged per (ticket, zone) and occupancy, balances per account with
   debt holds, the batch's rows read back by primary key (`central.settle.settle_gate` /
   `settle_money`); facts are stored once, the access log and the device part of the
   ledger are views over ``device_event``;
3. classify only the subjects where a conflict can be (`central.candidates`), sequence
   gaps and clock skew of the device (the rules of `central.conflicts`, run and stored by
   `central.conflict_store`), and publish the outcomes down, as late as can be (in the
   same statement as applying them when no rule must run in between);
4. answer the highest contiguous ``device_seq`` held, and the feed head that covers it.

A push reads in three places: the API (`central.api.sync`), ingest (this module's intake,
then `central.settle`) and conflicts (`central.conflicts`' pure rules, their storage in
`central.conflict_store`).

Before any of it, the API queues a push for its halves of the lock in process
(`central.turns`, keys from `turn_keys`), so pushes waiting for a festival hold no pooled
connection; the advisory lock below still orders pushes across central's processes.

The lock serialises steps 2-3 per festival: classification reads all facts of a subject,
and two batches classifying the same ticket concurrently could each miss the other's facts.
It comes in two halves, one for ticket facts (gates) and one for account facts (bars and
top-up points), and a batch takes only the half its new events touch: a device role never
produces both, so gate and bar batches apply and classify side by side and only queue at
the feed head. It is taken after storing, so one device's batch stores while another's
classifies (a batch that waits sees the other's facts once it has the lock). The feed head,
held from a batch's first publish to its commit, is the one point every batch of a festival
passes in turn, so publishing comes last. Lock order everywhere: device row, tickets half,
accounts half, zones, tickets, accounts, feed head (`festival_lock` with no arguments
takes both halves).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection, errors
from pydantic_core import to_json

from central import conflict_store, events, feed, settle
from central.auth import DevicePrincipal
from config.vocab import MAX_OFFSET_MS
from sync.facts import GATE_KINDS, MONEY_KINDS, admits
from sync.hlc import HybridClock
from sync.protocol import MAX_BIGINT, Event, PushResponse

DEFAULT_SKEW_BOUND_MS = MAX_OFFSET_MS  # a device beyond it is flagged (`clock_skew`)
_DUP_NAMESPACE = uuid.UUID("6b0a3c1e-5a4f-4c1e-9a57-2f7e0c0f6e11")
_clock = HybridClock()
# Set for each ingest transaction (select-list items; local to it). Generic plans from the
# first push on: ingest's statements take their batch as one JSON parameter, so a plan made
# for its values is no better, and planning the big ones costs milliseconds (PostgreSQL
# plans a statement's first five runs afresh). No sequential scans: each statement touches
# a batch's rows by a probe each, and a generic plan outlives the statistics it was made
# from (presence analysed while still empty, then scanned whole per row as it grows: pushes
# three times slower).
PLAN_SETTINGS = (
    "set_config('plan_cache_mode', 'force_generic_plan', true),"
    " set_config('enable_seqscan', 'off', true)"
)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What a push did: the ack, how many events were new and how many of those rejected."""

    acked_through: int
    stored: int
    rejected: int
    head_seq: int


@dataclass(slots=True)
class _Stored:
    """What one `central.events.STORE` statement stored, summed up."""

    count: int  # events stored now
    first: int | None  # their lowest and highest device_seq
    last: int | None
    rejected: int
    newest_skew_ms: int | None
    skewed: bool  # some new event's clock is off beyond the bound
    skipped: list[int]  # seqs above the ack the insert skipped (held, or event id taken)
    gate: bool  # some moves presence (see STORE)
    money: bool  # some moves a balance
    batch: settle.Batch | None  # the rows stored, as `central.settle` reads them back


def central_hlc(now_ms: int) -> int:
    """Central's HLC for an answer: never goes backwards within this process."""
    return _clock.now(now_ms)


def festival_lock_key(festival_id: uuid.UUID, half: str = "tickets") -> int:
    """The advisory-lock key of one half ("tickets" or "accounts") of a festival's lock."""
    base = int.from_bytes(festival_id.bytes[:8], "big", signed=True) ^ 0x1A2B3C4D
    return base if half == "tickets" else base ^ 0x5A5A


def _lock_keys(festival_id: uuid.UUID, *, tickets: bool, accounts: bool) -> list[int]:
    """The advisory-lock keys of the halves asked for, in lock order (tickets first)."""
    return [festival_lock_key(festival_id, half) for half, on in
            (("tickets", tickets), ("accounts", accounts)) if on]  # fmt: skip


# A push of at most this many events queues in the small lane of its turns (`central.turns`):
# a device keeping up pushes what it scanned since its last push, one catching up a full
# batch (`sync.engine`, 500).
SMALL_PUSH = 50


def turn_keys(device: DevicePrincipal, batch: Sequence[Event], *, held: int = 0) -> list[int]:
    """The keys of the halves of its festival's lock a push may take, in lock order: each
    half some event past `held` (seqs central holds already) admits on. A superset of what
    ingest takes (that also needs the subject found), so pushes queued on these keys
    (`central.turns`) before they take a pooled connection meet no other push of this
    process on the lock but those holding a turn."""
    tickets = accounts = False
    for e in batch:
        if e.device_seq > held and admits(kind := str(e.kind), e.verdict):
            tickets = tickets or kind in GATE_KINDS
            accounts = accounts or kind in MONEY_KINDS
    return _lock_keys(device.festival_id, tickets=tickets, accounts=accounts)


# Takes the keys in array order (one statement: a round trip less while other pushes wait).
_LOCK = (
    "SELECT pg_advisory_xact_lock(k) FROM unnest(%(keys)s::bigint[]) WITH ORDINALITY AS x(k, o)"
    " ORDER BY o"
)


async def festival_lock(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    *,
    tickets: bool = True,
    accounts: bool = True,
) -> None:
    """Take the festival's ingest lock (both halves unless told) until the transaction ends."""
    keys = _lock_keys(festival_id, tickets=tickets, accounts=accounts)
    if keys:
        await conn.execute(_LOCK, {"keys": keys})


async def _store(
    conn: AsyncConnection[Any],
    device: DevicePrincipal,
    rows: events.Rows,
    *,
    fresh: bool,
    received_ms: int,
    skew_bound_ms: int,
) -> _Stored:
    cur = await conn.execute(
        events.STORE_FRESH if fresh else events.STORE,
        {"dev": device.id, "fid": device.festival_id, "rows": rows.json, "sent": rows.count,
         "recv": received_ms, "at": datetime.fromtimestamp(received_ms / 1000, UTC),
         "bound": skew_bound_ms},
        prepare=True,  # at once, not after psycopg's fifth use: planning it takes milliseconds
    )  # fmt: skip
    rec = await cur.fetchone()
    assert rec is not None
    count, first, last, rejected, skew, skewed, skipped, gate, money, seqs = rec
    batch = settle.Batch(device.id, first, last, seqs) if count else None
    skipped = list(skipped or ())
    return _Stored(count, first, last, rejected, skew, skewed, skipped, gate, money, batch)


async def _reject_taken_ids(
    conn: AsyncConnection[Any], device: DevicePrincipal, batch: list[Event], skipped: list[int]
) -> events.Rows | None:
    """Events the insert skipped although their (device, seq) is not held: their event id is
    already another event's (a device bug). Keep each, rejected, under a derived id, so the
    device's queue still moves: returns their rows for `STORE`, or None."""
    cur = await conn.execute(
        "SELECT device_seq FROM device_event WHERE device_id = %s AND device_seq = ANY(%s)",
        (device.id, skipped),
    )
    held = {r[0] for r in await cur.fetchall()}
    taken = [seq for seq in skipped if seq not in held]
    if not taken:
        return None
    first = events.first_by_seq(batch)
    ctx = events.RowContext.of(device)
    rows = []
    for seq in taken:
        event = first[seq]
        derived = str(uuid.uuid5(_DUP_NAMESPACE, f"{device.id}:{seq}"))
        payload = {"duplicate_event_id": event.event_id, "payload": event.payload}
        replaced = event.model_copy(update={"payload": payload})
        rows.append(events.row(ctx, replaced, event_id=derived, forced="duplicate_event_id"))
    return events.Rows(to_json(rows).decode(), len(rows), taken[0])


async def ingest_batch(
    conn: AsyncConnection[Any],
    device: DevicePrincipal,
    batch: list[Event],
    *,
    received_ms: int,
    skew_bound_ms: int = DEFAULT_SKEW_BOUND_MS,
    journal_seq: int | None = None,
) -> IngestResult:
    """Store, apply and classify one pushed batch in one transaction (see module doc).
    `journal_seq` is the device's highest journaled seq, when known (`pushed_journal_seq`).

    Raises `central.events.Mismatch` (nothing stored) if an event claims another device or
    festival. `conn` must be idle; the transaction commits before this returns.
    """
    events.check_identity(device, batch)
    kw = {"received_ms": received_ms, "skew_bound_ms": skew_bound_ms}
    try:
        return await _ingest(conn, device, batch, careful=False, journal=journal_seq, **kw)
    except errors.UniqueViolation as exc:
        if exc.diag.constraint_name != "device_event_event_id_key":
            raise
        # An event id of this batch is taken (a device bug): again, checking every row.
        return await _ingest(conn, device, batch, careful=True, journal=journal_seq, **kw)


def pushed_journal_seq(
    batch: list[Event], *, pending: int | None, journal_seq: int | None
) -> int | None:
    """The highest seq a pushing device has journaled: as it says (`Festgate-Journal-Seq`),
    or else from `Festgate-Pending`, which an older device counts just before the push over
    the events it has not seen acknowledged, the first of them first in the batch."""
    if journal_seq is not None:
        return journal_seq
    if pending is None or not batch:
        return None
    return min(MAX_BIGINT, min(e.device_seq for e in batch) - 1 + pending)


async def _ingest(
    conn: AsyncConnection[Any],
    device: DevicePrincipal,
    batch: list[Event],
    *,
    careful: bool,
    received_ms: int,
    skew_bound_ms: int,
    journal: int | None,
) -> IngestResult:
    ctx = events.RowContext.of(device)
    async with conn.transaction():
        cur = await conn.execute(
            f"SELECT acked_through, max_seq, {PLAN_SETTINGS} FROM device WHERE id = %s FOR UPDATE",
            (device.id,),
        )
        rec = await cur.fetchone()
        acked, max_seq = (int(rec[0]), int(rec[1])) if rec else (0, 0)
        # Under the device row's lock: seqs up to the ack are held and need no round trip,
        # and past the highest held one need no check that they are held.
        rows = events.batch_rows(ctx, batch, acked=acked)
        stored = _Stored(0, None, None, 0, None, False, [], False, False, None)
        if rows is not None:
            at = {"received_ms": received_ms, "skew_bound_ms": skew_bound_ms}
            fresh = not careful and rows.lowest > max_seq
            stored = await _store(conn, device, rows, fresh=fresh, **at)
            if stored.skipped:
                retry = await _reject_taken_ids(conn, device, batch, stored.skipped)
                if retry is not None:
                    stored = _merge(stored, await _store(conn, device, retry, fresh=False, **at))
        new = (stored.count, stored.first or 0, stored.last or 0)
        # A push that continues the device's ack, clock in bound (the usual case), has no
        # device conflict to find: its device row is written now, not while the festival's
        # lock is held. (It is written before the feed head is taken, by the first publish.)
        plain = not stored.skewed and conflict_store.continues(acked, max_seq, new)
        # Storing needs no festival-wide order (the device row lock orders one device's
        # pushes), so other devices' batches store while this one classifies. From here on
        # subjects' facts are read whole, so pushes touching tickets (or accounts) go one at
        # a time per festival.
        halves = {"tickets": stored.gate, "accounts": stored.money}
        if plain or not stored.count:
            acked, max_seq = (new[2], new[2]) if plain else (acked, max_seq)
            row = (acked, max_seq, stored.newest_skew_ms, journal)
            keys = _lock_keys(device.festival_id, **halves)
            await _update_device(conn, device.id, *row, and_lock=keys)
        else:
            await festival_lock(conn, device.festival_id, **halves)
        last_seq: int | None = None
        if stored.count:
            if not plain:
                acked, max_seq = await conflict_store.classify_device(
                    conn, device.festival_id, device.id, acked_through=acked, max_seq=max_seq,
                    new=new, skew_bound_ms=skew_bound_ms, check_clock=stored.skewed,
                )  # fmt: skip
                await _update_device(
                    conn, device.id, acked, max_seq, stored.newest_skew_ms, journal
                )
            if stored.gate and stored.batch is not None:
                last_seq = await settle.settle_gate(conn, device.festival_id, stored.batch)
            if stored.money and stored.batch is not None:
                seq = await settle.settle_money(conn, device.festival_id, stored.batch)
                last_seq = seq if seq is not None else last_seq
        # What this batch published is covered by its own last seq (the feed head is held
        # to commit); a batch that published nothing answers the committed head.
        head = last_seq if last_seq is not None else await feed.head(conn, device.festival_id)
    return IngestResult(acked, stored.count, stored.rejected, head)


def _merge(stored: _Stored, again: _Stored) -> _Stored:
    """One summary of the batch's store and its retry of taken event ids (rare)."""
    if not again.count:
        return stored
    newest = stored if stored.count and (stored.last or 0) > (again.last or 0) else again
    return _Stored(
        stored.count + again.count,
        min(s.first for s in (stored, again) if s.count and s.first is not None),
        max(s.last for s in (stored, again) if s.count and s.last is not None),
        stored.rejected + again.rejected,
        newest.newest_skew_ms,
        stored.skewed or again.skewed,
        [],
        stored.gate,  # the retry's events are all rejected: they take no effect
        stored.money,
        stored.batch,
    )


async def _update_device(
    conn: AsyncConnection[Any],
    device_id: uuid.UUID,
    acked: int,
    max_seq: int,
    offset: int | None,
    journal: int | None,
    *,
    and_lock: list[int] | None = None,
) -> None:
    """Write the device row's ack and health; with `and_lock`, take those advisory locks
    in the same statement (a round trip less)."""
    update = (
        "UPDATE device SET last_seen_at = now(), last_push_at = now(),"
        " acked_through = %(acked)s, max_seq = greatest(max_seq, %(max)s),"
        " clock_offset_ms = coalesce(%(offset)s, clock_offset_ms),"
        f" {pending_set('%(acked)s')} WHERE id = %(id)s"
    )
    params = {"acked": acked, "max": max_seq, "offset": offset, "journal": journal,
              "id": device_id, "keys": and_lock}  # fmt: skip
    if and_lock:
        # A data-modifying CTE runs to completion whatever the outer query reads.
        await conn.execute(f"WITH d AS ({update}) {_LOCK}", params)
    else:
        await conn.execute(update, params)


def pending_set(acked: str) -> str:
    """SET items of a device row: its journal seq (``%(journal)s``, NULL when not told; it
    only grows) and pending_events, the events past `acked` (SQL: the ack after this
    write) up to it. A figure that arrives late cannot lower the seq, so the events pending
    are the same whatever order a device's pushes and changes requests are written in;
    unknown (NULL) until a device says."""
    journal = "greatest(journal_seq, %(journal)s::bigint)"
    return (
        f"journal_seq = {journal}, pending_events = CASE WHEN {journal} IS NULL"
        f" THEN pending_events ELSE greatest(0, {journal} - {acked}) END"
    )


def push_response(result: IngestResult, now_ms: int) -> PushResponse:
    """The wire answer for an ingest result."""
    return PushResponse(
        acked_through=result.acked_through,
        central_hlc=central_hlc(now_ms),
        head_seq=result.head_seq,
    )
