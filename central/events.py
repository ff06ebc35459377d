"""What a device event means at central: the payload contract and the checks made on receipt.

Payloads (JSON object; unknown keys are kept as received):

- ``entry`` / ``exit`` (gate): ``ticket_id`` (uuid; absent when the code was not recognised),
  ``zone_id`` (uuid; defaults to the device's zone). An exit takes effect with verdict ``ok``.
  The code scanned: a signed code's ``code_version`` (and ``key_id``), an outside code's
  ``code_hash``; an admission of a code a transfer had replaced is a conflict
  (`central.conflicts.replaced_at`).
- ``sale`` (bar): ``account_id`` (uuid) or ``tag_hash`` (32 hex), ``amount`` (cents > 0 when
  approved), optional ``items``. The vendor is the device's.
- ``topup`` / ``refund`` (top-up point; ``refund`` also at a bar): same account fields and
  ``amount``; a refund gives money back onto the wristband (credits it), a sale debits it.
- ``log``: verdict is the level (debug/info/warning/error/critical), ``message`` the text
  (`sync.logline`; devices before it wrote ``msg``, which the ``device_log`` view reads too).
- any kind may carry ``festival_id``; one that is not the device's refuses the whole batch.

An event that fails a check here is stored anyway with status ``rejected`` and a stable
reason, takes no effect, and never holds back the device's queue. That holds for what
PostgreSQL cannot store too: a payload with a NUL character in a string or key, or a number
beyond a float (``bad_payload``), is stored as its size; a verdict with a NUL is not an
allowed one (``verdict_not_allowed``) and is stored with U+FFFD in its place. What the wire
model bounds (ids, integers within bigint, a wall clock the HLC can pack) never gets here:
a push that breaks one is malformed and refused whole (`sync.protocol.Event`).

The checks are split by what they need. What one event says on its own (kind and verdict
for the device's role, the payload's types and uuids, the amount, the payload's size) is
read in Python from the model the wire check already built (`row`), which costs a fraction
of what PostgreSQL's JSON functions cost for the same; what needs the catalog (ticket, zone
and account in the device's festival) runs in `STORE`, which lifts the subject and inserts
the batch, all in one ``INSERT ... SELECT`` (issue 3: per-event Python was most of the CPU
an ingest cost; per-event JSON work in SQL was most of what was left).
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json

from central.auth import DevicePrincipal
from sync import facts
from sync.facts import FACTS, GATE_KINDS, MONEY_KINDS, admits_sql, kinds, sql_in
from sync.protocol import MAX_PAYLOAD_BYTES, Event
from sync.vocab import EventKind

KINDS_BY_ROLE: dict[str, frozenset[str]] = {
    "gate": frozenset({"entry", "exit", "log"}),
    "bar": frozenset({"sale", "refund", "log"}),
    "topup": frozenset({"topup", "refund", "log"}),
}
LOG_LEVELS = frozenset(facts.LOG_LEVELS)
VERDICTS_BY_KIND: dict[str, frozenset[str]] = {k: frozenset(f.verdicts) for k, f in FACTS.items()}
MAX_AMOUNT = 10**9  # 10 million in cents: far above any real basket, below BIGINT trouble

# An event takes effect (moves presence or the ledger) when it is applied and, for a gate,
# admitted with a ticket, or for money, approved on an account (`sync.facts.admits`).
# SQL over device_event; the views of migration 0009 (`FACT_VIEWS`) say the same.
ADMITS_GATE = f"status = 'applied' AND ticket_id IS NOT NULL AND {admits_sql('gate')}"
ADMITS_MONEY = f"status = 'applied' AND account_id IS NOT NULL AND {admits_sql('money')}"


# What the facts mean, as the database's views and functions over device_event say it
# (migration 0009 holds this text, frozen; a test compares the two):
# - the zone access log: every admitted entry and exit, at the time it happened (the HLC's
#   physical part);
# - every entry of the cashless ledger, unordered: central's own (cashless_transaction) and
#   approved device events, signed and typed by their kind (the vendor is a sale's bar
#   device's); `ord_hlc, ord_device, ord_seq` is the replay order of the conflict rules: a
#   central entry sorts by its time, before device entries of the same millisecond;
# - `pushed_effects`: the events one push just stored that move presence (`effect` 'gate')
#   or a balance ('money'), read back by primary key (`central.classify`). A function, so
#   that the planner counts on a batch's worth of rows: a generic plan would guess one row
#   and join the rest of the statement by nested loops over whole tables.
_BR = "\n             "  # between the cases of a generated test, in FACT_VIEWS' layout
FACT_VIEWS = f"""
CREATE OR REPLACE VIEW zone_access_log AS
    SELECT festival_id, zone_id, ticket_id,
           {facts.access_sql(sep=_BR)} AS action,
           to_timestamp((hlc >> 16) / 1000.0) AS at, event_id, device_id, device_seq, hlc
    FROM device_event
    WHERE ticket_id IS NOT NULL AND status = 'applied'
      AND {admits_sql("gate", sep=_BR)};

CREATE OR REPLACE VIEW cashless_entry AS
    SELECT t.festival_id, t.account_id, t.id, t.type, t.amount, t.event_id, t.device_id,
           t.vendor_id, t.created_at,
           (extract(epoch FROM t.created_at) * 1000)::bigint << 16 AS ord_hlc,
           ''::text AS ord_device, t.id AS ord_seq
    FROM cashless_transaction t
    UNION ALL
    SELECT e.festival_id, e.account_id, NULL::bigint,
           {facts.transaction_sql("e.", sep=_BR)},
           {facts.delta_sql("e.")}, e.event_id, e.device_id,
           CASE WHEN {sql_in("e.kind", [EventKind.SALE])} THEN
             (SELECT d.vendor_id FROM device d WHERE d.id = e.device_id) END,
           to_timestamp((e.hlc >> 16) / 1000.0), e.hlc, e.device_id::text, e.device_seq
    FROM device_event e
    WHERE e.account_id IS NOT NULL AND e.status = 'applied' AND {admits_sql("money", "e.")}
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
          AND {admits_sql("gate", "e.", sep=_BR)}
        WHEN 'money' THEN e.account_id IS NOT NULL AND {admits_sql("money", "e.")}
          AND e.amount > 0
      END;
END
$$;
"""


class Mismatch(Exception):
    """An event claims another device or festival: the whole batch is refused (403)."""


def check_identity(device: DevicePrincipal, events: list[Event]) -> None:
    """Raise Mismatch if any event names another device or festival."""
    mine, festival = str(device.id), str(device.festival_id)
    for event in events:
        if event.device_id != mine:  # the canonical spelling needs no parse
            try:
                same = uuid.UUID(event.device_id) == device.id
            except ValueError:
                same = False
            if not same:
                raise Mismatch(f"event {event.event_id} is for device {event.device_id!r}")
        claimed = event.payload.get("festival_id")
        if claimed is not None and str(claimed) != festival:
            raise Mismatch(f"event {event.event_id} is for festival {claimed!r}")


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX_OR_HYPHEN = re.compile(r"[-0-9a-fA-F]+")
_HEX = re.compile(r"[0-9a-fA-F]+")


def payload_uuid(value: object) -> str | None:
    """A payload's uuid field in canonical form, read as migration 0002's ``payload_uuid``
    reads one (hyphens, braces and urn:uuid: prefixes ignored, 32 hex digits), or None."""
    if not isinstance(value, str):
        return None
    if _CANONICAL_UUID.fullmatch(value):  # what devices send: no more to do
        return value
    if (
        len(value) == 36
        and value[8] == value[13] == value[18] == value[23] == "-"
        and _HEX_OR_HYPHEN.fullmatch(value)
        and len(value.replace("-", "")) == 32
    ):
        return value.lower()
    bare = value.lower().replace("urn:", "").replace("uuid:", "").replace("-", "").strip("{}")
    if len(bare) == 32 and _HEX.fullmatch(bare):
        return f"{bare[:8]}-{bare[8:12]}-{bare[12:16]}-{bare[16:20]}-{bare[20:]}"
    return None


def _amount(value: object) -> int | None:
    """A payload's amount: None when absent, -1 when not an integer in [0, MAX_AMOUNT]."""
    if value is None:
        return None
    if type(value) is int and 0 <= value <= MAX_AMOUNT:  # not a bool, not a float
        return value
    return -1


@dataclass(frozen=True, slots=True)
class RowContext:
    """What `row` needs of the device: the kinds its role records and its zone."""

    kinds: frozenset[str]
    zone: str | None

    @classmethod
    def of(cls, device: DevicePrincipal) -> RowContext:
        """The context of a device."""
        zone = None if device.zone_id is None else str(device.zone_id)
        return cls(KINDS_BY_ROLE.get(device.role, frozenset()), zone)


def unstorable(value: object) -> bool:
    """Whether a payload value, nested, holds what PostgreSQL's jsonb cannot: a NUL character
    in a string or key (text never holds one), or a number Python read as a non-finite float
    (``1e400``, ``NaN``)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(unstorable(k) or unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(unstorable(v) for v in value)
    return False


def _dropped(text: str) -> dict[str, int]:
    """What is kept of a payload that cannot be kept: the fact that it happened, its size."""
    return {"dropped_bytes": len(text)}


def row(
    ctx: RowContext, event: Event, *, event_id: str | None = None, forced: str | None = None
) -> list[Any]:
    """One event as a positional row of `STORE`'s array, with what it says on its own read.

    ``[seq, event_id, kind, verdict, hlc, wall_ms, catalog_seq, payload, early]`` and then,
    for a gate event ``ticket, ticket_malformed, zone``, for a money event ``account, tag,
    amount``: `early` is the reason it is stored rejected whatever the catalog holds (`forced`
    first, then payload size, a payload PostgreSQL cannot store, kind for the role, verdict
    for the kind, the amount), the rest its subject fields as `STORE` looks them up (uuids
    canonical, a tag lowercase hex, None when absent or unreadable). An oversized or
    unstorable payload is replaced by its size here, and a rejected verdict's NULs by U+FFFD
    (an allowed verdict has none), so every row is one PostgreSQL can store.
    """
    payload: Any = event.payload
    kind = str(event.kind)  # a plain str: enum members hash and serialise slowly
    verdict = event.verdict
    early = forced
    amount: int | None = None
    raw = to_json(payload)  # compact UTF-8 JSON, as stored (pydantic-core: about 0.5 us)
    text = raw.decode()  # a str scan costs a third of a bytes scan here (measured)
    if early is None and len(raw) > MAX_PAYLOAD_BYTES:
        payload, early = _dropped(text), "payload_too_large"
    # How to_json spells a NUL and a non-finite float: the three scans cost about 0.1 us for
    # a gate's payload; the walk runs only when one matches (a string may spell them).
    elif ("\\u0000" in text or "NaN" in text or "Infinity" in text) and unstorable(payload):
        payload, early = _dropped(text), early or "bad_payload"
    elif early is None:
        if kind not in ctx.kinds:
            early = "kind_not_allowed"
        elif verdict not in VERDICTS_BY_KIND[kind]:
            early = "verdict_not_allowed"
        elif kind in MONEY_KINDS:
            amount = _amount(payload.get("amount"))
            if amount == -1 or (not amount and facts.admits(kind, verdict)):
                early = "bad_amount"
    if early is not None and "\x00" in verdict:
        verdict = verdict.replace("\x00", "\ufffd")
    out = [
        event.device_seq, event_id or event.event_id, kind, verdict, event.hlc, event.wall_ms,
        event.catalog_seq, payload, early,
    ]  # fmt: skip
    if early is None:
        if kind in GATE_KINDS:
            ticket = payload.get("ticket_id")
            zone = payload.get("zone_id")
            ticket_id = payload_uuid(ticket)
            out += (ticket_id, ticket is not None and ticket_id is None,
                    ctx.zone if zone is None else payload_uuid(zone))  # fmt: skip
        elif kind in MONEY_KINDS:
            tag = payload.get("tag_hash")
            if not (isinstance(tag, str) and len(tag) == 32 and _HEX.fullmatch(tag)):
                tag = None
            out += (payload_uuid(payload.get("account_id")), tag and tag.lower(), amount)
    return out


@dataclass(frozen=True, slots=True)
class Rows:
    """A batch as `STORE` takes it: its JSON array of rows, how many, and the lowest seq."""

    json: str
    count: int
    lowest: int


def first_by_seq(events: list[Event], *, above: int = 0) -> dict[int, Event]:
    """Each seq above `above` with the first event the batch gives it: a seq sent twice in one
    batch counts once, as it would across batches."""
    first: dict[int, Event] = {}
    for event in events:
        if event.device_seq > above:
            first.setdefault(event.device_seq, event)
    return first


def batch_rows(ctx: RowContext, events: list[Event], *, acked: int) -> Rows | None:
    """The batch as `STORE`'s rows, in seq order (`first_by_seq`), without seqs up to
    `acked` (held already); None when none is left."""
    first = first_by_seq(events, above=acked)
    if not first:
        return None
    seqs = sorted(first)
    return Rows(to_json([row(ctx, first[seq]) for seq in seqs]).decode(), len(seqs), seqs[0])


# Every event of the batch in one statement: the rows of `batch_rows`, in seq order. A row
# `row` gave no early reason is checked against the catalog:
#   gate: zone (payload or the device's) in the festival, else unknown_zone; a ticket_id
#     that is not a uuid, bad_payload; a ticket of the festival is lifted with the zone; an
#     admitting verdict without one, unknown_ticket or missing_ticket; anything else keeps
#     only the zone (a refused scan of something unknown, kept as a record);
#   money: the account by account_id or else by tag_hash, lifted with the amount when found
#     in the festival; approved without one, unknown_account.
# Only rows not held yet are inserted (ON CONFLICT DO NOTHING: (device, seq) or event_id;
# `STORE_FRESH` leaves that check out, for rows the caller knows are all past the device's
# highest held seq, and then an event id already taken fails the statement); the answer is
# one row summing up what was stored (see `central.ingest`), with whether any of it moves
# presence or money (`central.classify` reads those rows back by primary key: cheaper than
# summing them up as JSON here and parsing that there).
# `hlc` is stored as the order the conflict rules replay facts in. An event from a clock off
# beyond the bound (its `skew`) whose HLC lies past its arrival is ordered at its arrival
# instead (its own HLC kept in `device_hlc`): no fact happens after central receives it, and
# one glitched clock must not sort a gate's facts after later ones from healthy gates.
# Events arriving together tie on that time and keep their device's order (device, seq).
STORE = f"""
WITH e AS (
  SELECT (r->>0)::bigint AS seq, (r->>1)::uuid AS event_id, r->>2 AS kind, r->>3 AS verdict,
         (r->>4)::bigint AS hlc, (r->>5)::bigint AS wall_ms, (r->>6)::bigint AS catalog_seq,
         r->7 AS payload, r->>8 AS early, r->>9 AS subject, r->>10 AS second, r->>11 AS third,
         r->>8 IS NULL AND {sql_in("r->>2", kinds("gate"))} AS gate,
         r->>8 IS NULL AND {sql_in("r->>2", kinds("money"))} AS money
  FROM jsonb_array_elements(%(rows)s::jsonb) AS x(r)),
zs AS MATERIALIZED (SELECT id FROM zone WHERE festival_id = %(fid)s),  -- a festival has few
c AS MATERIALIZED (  -- catalog lookups: an index probe per event, whatever the size
  SELECT seq, event_id, kind, verdict, hlc, wall_ms, catalog_seq, payload, early, gate, money,
         -- a row's last fields mean what its kind says (see `row`): CASE reads them so
         CASE WHEN gate THEN subject::uuid END AS t_id,
         CASE WHEN gate THEN second::boolean END AS t_bad,
         CASE WHEN gate THEN CASE WHEN third::uuid IN (SELECT id FROM zs) THEN third::uuid END
           END AS zone_found,
         CASE WHEN gate AND subject IS NOT NULL THEN
           (SELECT t.id FROM ticket t WHERE t.id = subject::uuid AND t.festival_id = %(fid)s)
           END AS ticket_found,
         CASE WHEN money AND subject IS NOT NULL THEN
           (SELECT a.id FROM cashless_account a
            WHERE a.id = subject::uuid AND a.festival_id = %(fid)s)
         WHEN money AND second IS NOT NULL THEN
           (SELECT a.id FROM cashless_account a
            WHERE a.festival_id = %(fid)s AND a.tag_hash = decode(second, 'hex')) END
           AS account_found,
         CASE WHEN money THEN third::bigint END AS amt
  FROM e),
v AS (
  SELECT c.*,
    -- `sync.facts.clock_skew_ms`: ahead of central's receive time, or behind the HLC
    {facts.skew_sql("wall_ms", "hlc", "%(recv)s")} AS skew,
    CASE
    WHEN early IS NOT NULL THEN early
    WHEN gate THEN CASE
      WHEN zone_found IS NULL THEN 'unknown_zone'
      WHEN t_bad THEN 'bad_payload'
      WHEN ticket_found IS NOT NULL THEN NULL
      WHEN {sql_in("verdict", facts.GATE_ADMITTING)} THEN
        CASE WHEN t_id IS NOT NULL THEN 'unknown_ticket' ELSE 'missing_ticket' END END
    WHEN money THEN CASE
      WHEN account_found IS NOT NULL THEN NULL
      WHEN {sql_in("verdict", facts.MONEY_ADMITTING)} THEN 'unknown_account' END
    END AS reason
  FROM c),
ins AS (
  INSERT INTO device_event (device_id, device_seq, event_id, festival_id, kind, verdict, hlc,
      device_hlc, wall_ms, catalog_seq, payload, received_at, skew_ms, status, reason,
      ticket_id, zone_id, account_id, amount)
  SELECT %(dev)s, seq, event_id, %(fid)s, kind, verdict,
         CASE WHEN capped THEN %(recv)s::bigint << 16 ELSE hlc END,
         CASE WHEN capped THEN hlc END, wall_ms, catalog_seq, payload, %(at)s, skew,
         CASE WHEN reason IS NULL THEN 'applied' ELSE 'rejected' END, reason,
         CASE WHEN reason IS NULL AND gate THEN ticket_found END,
         CASE WHEN reason IS NULL AND gate THEN zone_found END,
         CASE WHEN reason IS NULL AND money THEN account_found END,
         CASE WHEN reason IS NULL AND money AND account_found IS NOT NULL
              THEN coalesce(amt, 0) END
  FROM (SELECT v.*, abs(skew) > %(bound)s AND hlc > %(recv)s::bigint << 16 AS capped
        FROM v) v
  ON CONFLICT DO NOTHING
  RETURNING device_seq, kind, verdict, status, ticket_id, zone_id, account_id, amount, hlc,
            skew_ms),
s AS (
  SELECT count(*) AS n, min(device_seq) AS first, max(device_seq) AS last,
         count(*) FILTER (WHERE status = 'rejected') AS rejected,
         coalesce(bool_or(abs(skew_ms) > %(bound)s), false) AS skewed,
         coalesce(bool_or({ADMITS_GATE}), false) AS gate,
         coalesce(bool_or({ADMITS_MONEY} AND amount > 0), false) AS money,
         (array_agg(skew_ms ORDER BY device_seq DESC))[1] AS skew
  FROM ins)
SELECT
  s.n, s.first, s.last, s.rejected, s.skew, s.skewed,
  CASE WHEN s.n < %(sent)s THEN  -- some were held already, or their event id taken
    (SELECT array_agg(seq ORDER BY seq) FROM c
     WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.device_seq = c.seq)) END,
  s.gate, s.money,
  CASE WHEN s.n <> s.last - s.first + 1 THEN  -- rows stored before lie in between
    (SELECT array_agg(device_seq ORDER BY device_seq) FROM ins) END
FROM s
"""
# Without the conflict check before each row (two index probes and a speculative insertion
# per row): for a batch whose seqs are all new, the common case.
STORE_FRESH = STORE.replace("  ON CONFLICT DO NOTHING\n", "")
assert STORE_FRESH != STORE
