"""What a device event means at central: the payload contract and the checks made on receipt.

Payloads (JSON object; unknown keys are kept as received):

- ``entry`` / ``exit`` (gate): ``ticket_id`` (uuid; absent when the code was not recognised),
  ``zone_id`` (uuid; defaults to the device's zone). An exit takes effect with verdict ``ok``.
- ``sale`` (bar): ``account_id`` (uuid) or ``tag_hash`` (32 hex), ``amount`` (cents > 0 when
  approved), optional ``items``. The vendor is the device's.
- ``topup`` / ``refund`` (top-up point; ``refund`` also at a bar): same account fields and
  ``amount``; a refund gives money back onto the wristband (credits it), a sale debits it.
- ``log``: verdict is the level (debug/info/warning/error/critical), ``message`` the text.
- any kind may carry ``festival_id``; one that is not the device's refuses the whole batch.

An event that fails a check here is stored anyway with status ``rejected`` and a stable
reason, takes no effect, and never holds back the device's queue.

The checks run where the catalog is: Python only checks identities (`check_identity`) and
payload sizes, and hands the batch over as one JSON array (`batch_json`); `STORE` checks
every event against the catalog (kind and verdict for the device's role, ticket, zone and
account in the device's festival, amount) with CASE expressions, lifts the subject and
inserts the batch, all in one ``INSERT ... SELECT`` (issue 3: per-event Python was most of
the CPU an ingest cost).
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic_core import to_json

from central.auth import DevicePrincipal
from sync.protocol import MAX_PAYLOAD_BYTES, Event
from sync.verdicts import BarCode, GateCode

KINDS_BY_ROLE: dict[str, frozenset[str]] = {
    "gate": frozenset({"entry", "exit", "log"}),
    "bar": frozenset({"sale", "refund", "log"}),
    "topup": frozenset({"topup", "refund", "log"}),
}
LOG_LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})
_GATE = frozenset(GateCode)
VERDICTS_BY_KIND: dict[str, frozenset[str]] = {
    "entry": _GATE,
    "exit": _GATE - {GateCode.OK_REENTRY},  # an exit is never a re-entry
    "sale": frozenset(BarCode),
    "topup": frozenset({BarCode.APPROVED, BarCode.UNKNOWN_TAG, BarCode.TAG_BLOCKED}),
    "refund": frozenset(
        {BarCode.APPROVED, BarCode.UNKNOWN_TAG, BarCode.TAG_BLOCKED, BarCode.INSUFFICIENT_FUNDS}
    ),
    "log": LOG_LEVELS,
}
MONEY_KINDS = frozenset({"sale", "topup", "refund"})
MAX_AMOUNT = 10**9  # 10 million in cents: far above any real basket, below BIGINT trouble
# Verdicts allowed per kind, as the JSON object STORE reads (`%(verdicts)s`).
VERDICTS_JSON = to_json({k: sorted(v) for k, v in VERDICTS_BY_KIND.items()}).decode()

# An event takes effect (moves presence or the ledger) when it is applied and, for a gate,
# admitted with a ticket (an exit with verdict ok), or for money, approved on an account.
# SQL over device_event; the views in migration 0002 and `central.classify` say the same.
ADMITS_GATE = (
    "status = 'applied' AND ticket_id IS NOT NULL AND ((kind = 'entry'"
    " AND verdict IN ('ok', 'ok_reentry')) OR (kind = 'exit' AND verdict = 'ok'))"
)
ADMITS_MONEY = "status = 'applied' AND account_id IS NOT NULL AND verdict = 'approved'"


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


def row(event: Event, *, event_id: str | None = None, forced: str | None = None) -> list[Any]:
    """One event as a positional row of `STORE`'s array.

    `forced` stores it rejected with that reason whatever it says (with `event_id` replacing
    its own); an oversized payload is replaced by its size here, and rejected.
    """
    payload: Any = event.payload
    if forced is None:
        raw = to_json(payload)  # compact UTF-8 JSON, as stored (pydantic-core: about 0.5 us)
        if len(raw) > MAX_PAYLOAD_BYTES:
            # Keep the fact that it happened, not the oversized body.
            payload = {"dropped_bytes": len(raw.decode())}
            forced = "payload_too_large"
    return [
        event.device_seq, event_id or event.event_id, event.kind, event.verdict, event.hlc,
        event.wall_ms, event.catalog_seq, payload, forced,
    ]  # fmt: skip


def batch_json(events: list[Event]) -> str:
    """The batch as `STORE`'s JSON array of rows (serialised by pydantic-core in one call)."""
    return to_json([row(e) for e in events]).decode()


# Every event of the batch in one statement. A seq sent twice in one batch: the first copy
# counts, as it would across batches. Each row is checked in this order: payload size (by
# `row`, which sends an oversized payload already rejected, as `early`, like a retried
# taken event id), kind for the role, verdict for the kind, then the subject:
#   gate: zone (payload or the device's) in the festival, else unknown_zone; a ticket_id
#     that is not a uuid, bad_payload; a ticket of the festival is lifted with the zone; an
#     admitting verdict without one, unknown_ticket or missing_ticket; anything else keeps
#     only the zone (a refused scan of something unknown, kept as a record);
#   money: an amount that is not an integer in [0, MAX_AMOUNT], or approved without one,
#     bad_amount; the account by account_id (a uuid) or else by tag_hash, lifted with the
#     amount when found in the festival; approved without one, unknown_account.
# Only rows not held yet are inserted (ON CONFLICT DO NOTHING: (device, seq) or event_id);
# the answer is one row summing up what was stored (see `central.ingest`), with this batch's
# effects pre-aggregated as JSON (so no Python touches them on the way to `central.classify`):
#   gate: per (ticket, zone) the latest admitted movement (hlc, seq) and whether an entry;
#   money: per account the total, the lowest running sum, the first and last HLC, whether
#     any entry is a credit, and the sum of the debits.
STORE = f"""
WITH e AS (  -- materialised (DISTINCT ON): each payload field is read once per row
  SELECT DISTINCT ON ((r->>0)::bigint) (r->>0)::bigint AS seq, (r->>1)::uuid AS event_id,
         r->>2 AS kind, r->>3 AS verdict, (r->>4)::bigint AS hlc, (r->>5)::bigint AS wall_ms,
         (r->>6)::bigint AS catalog_seq, r->7 AS payload, r->>8 AS early,
         r->>2 IN ('entry', 'exit') AS gate, r->>2 IN ('sale', 'topup', 'refund') AS money,
         coalesce(jsonb_typeof(r->7->'ticket_id'), 'null') AS t_type,
         r->7->>'ticket_id' AS t_text,
         coalesce(jsonb_typeof(r->7->'zone_id'), 'null') AS z_type, r->7->>'zone_id' AS z_text,
         jsonb_typeof(r->7->'account_id') AS a_type, r->7->>'account_id' AS a_text,
         jsonb_typeof(r->7->'tag_hash') AS tag_type, r->7->>'tag_hash' AS tag_text,
         coalesce(jsonb_typeof(r->7->'amount'), 'null') AS amt_type, r->7->>'amount' AS amt_text
  FROM jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS x(r, o)
  ORDER BY (r->>0)::bigint, o),
p AS MATERIALIZED (
  SELECT e.*,
         CASE WHEN gate AND t_type = 'string' THEN payload_uuid(t_text) END AS t_id,
         t_type <> 'null' AS t_given,
         CASE WHEN NOT gate THEN NULL
              WHEN z_type = 'null' THEN %(zone)s::uuid
              WHEN z_type = 'string' THEN payload_uuid(z_text) END AS z_id,
         CASE WHEN money AND a_type = 'string' THEN payload_uuid(a_text) END AS a_id,
         CASE WHEN money AND tag_type = 'string' AND length(tag_text) = 32
               AND tag_text ~ '^[0-9a-fA-F]+$' THEN decode(lower(tag_text), 'hex') END AS tag,
         CASE WHEN amt_type = 'null' THEN NULL
              WHEN amt_type = 'number' AND length(amt_text) <= 10 AND amt_text ~ '^[0-9]+$'
               AND amt_text::bigint <= {MAX_AMOUNT}
              THEN amt_text::bigint ELSE -1 END AS amt
  FROM e),
c AS MATERIALIZED (  -- catalog lookups: an index probe per event, whatever the size
  SELECT p.*,
         CASE WHEN gate THEN
           (SELECT z.id FROM zone z WHERE z.id = p.z_id AND z.festival_id = %(fid)s) END
           AS zone_found,
         CASE WHEN t_id IS NOT NULL THEN
           (SELECT t.id FROM ticket t WHERE t.id = p.t_id AND t.festival_id = %(fid)s) END
           AS ticket_found,
         CASE WHEN a_id IS NOT NULL THEN
           (SELECT a.id FROM cashless_account a WHERE a.id = p.a_id AND a.festival_id = %(fid)s)
         WHEN tag IS NOT NULL THEN
           (SELECT a.id FROM cashless_account a
            WHERE a.festival_id = %(fid)s AND a.tag_hash = p.tag) END AS account_found
  FROM p),
v AS (
  SELECT c.*, CASE
    WHEN early IS NOT NULL THEN early
    WHEN NOT kind = ANY(%(kinds)s::text[]) THEN 'kind_not_allowed'
    WHEN NOT coalesce((%(verdicts)s::jsonb -> kind) ? verdict, false) THEN 'verdict_not_allowed'
    WHEN gate THEN CASE
      WHEN zone_found IS NULL THEN 'unknown_zone'
      WHEN t_given AND t_id IS NULL THEN 'bad_payload'
      WHEN ticket_found IS NOT NULL THEN NULL
      WHEN verdict IN ('ok', 'ok_reentry') THEN
        CASE WHEN t_id IS NOT NULL THEN 'unknown_ticket' ELSE 'missing_ticket' END END
    WHEN money THEN CASE
      WHEN amt < 0 OR (verdict = 'approved' AND coalesce(amt, 0) = 0) THEN 'bad_amount'
      WHEN account_found IS NOT NULL THEN NULL
      WHEN verdict = 'approved' THEN 'unknown_account' END
    END AS reason
  FROM c),
ins AS (
  INSERT INTO device_event (device_id, device_seq, event_id, festival_id, kind, verdict, hlc,
      wall_ms, catalog_seq, payload, received_at, skew_ms, status, reason, ticket_id, zone_id,
      account_id, amount)
  SELECT %(dev)s, seq, event_id, %(fid)s, kind, verdict, hlc, wall_ms, catalog_seq, payload,
         %(at)s,
         CASE WHEN wall_ms > %(recv)s THEN wall_ms - %(recv)s
              ELSE least(0, wall_ms - (hlc >> 16)) END,
         CASE WHEN reason IS NULL THEN 'applied' ELSE 'rejected' END, reason,
         CASE WHEN reason IS NULL AND gate THEN ticket_found END,
         CASE WHEN reason IS NULL AND gate THEN zone_found END,
         CASE WHEN reason IS NULL AND money THEN account_found END,
         CASE WHEN reason IS NULL AND money AND account_found IS NOT NULL
              THEN coalesce(amt, 0) END
  FROM v ORDER BY seq
  ON CONFLICT DO NOTHING
  RETURNING device_seq, kind, verdict, status, ticket_id, zone_id, account_id, amount, hlc,
            skew_ms),
g AS (
  SELECT DISTINCT ON (ticket_id, zone_id) ticket_id, zone_id, kind = 'entry' AS inside, hlc,
         device_seq, bool_or(kind = 'entry') OVER (PARTITION BY ticket_id, zone_id) AS entry
  FROM ins WHERE {ADMITS_GATE}
  ORDER BY ticket_id, zone_id, hlc DESC, device_seq DESC),
m AS (
  SELECT account_id,
         sum(CASE WHEN kind = 'sale' THEN -amount ELSE amount END)
           OVER (PARTITION BY account_id ORDER BY hlc, device_seq) AS run,
         sum(CASE WHEN kind = 'sale' THEN -amount ELSE amount END)
           OVER (PARTITION BY account_id) AS total, hlc, kind <> 'sale' AS credit,
         CASE WHEN kind = 'sale' THEN -amount ELSE 0 END AS debit
  FROM ins WHERE {ADMITS_MONEY} AND amount > 0)
SELECT
  (SELECT count(*) FROM ins), (SELECT min(device_seq) FROM ins),
  (SELECT max(device_seq) FROM ins),
  (SELECT count(*) FROM ins WHERE status = 'rejected'),
  (SELECT skew_ms FROM ins ORDER BY device_seq DESC LIMIT 1),
  (SELECT coalesce(bool_or(abs(skew_ms) > %(bound)s), false) FROM ins),
  (SELECT array_agg(seq ORDER BY seq) FROM e WHERE seq > %(acked)s
     AND NOT EXISTS (SELECT 1 FROM ins WHERE ins.device_seq = e.seq)),
  (SELECT json_agg(json_build_array(ticket_id, zone_id, inside, hlc, device_seq, entry)
                   ORDER BY ticket_id, zone_id)::text FROM g),
  (SELECT json_agg(json_build_array(account_id, total, low, first, last, credit, debits)
                   ORDER BY account_id)::text
   FROM (SELECT account_id, min(total) AS total, min(run) AS low, min(hlc) AS first,
                max(hlc) AS last, bool_or(credit) AS credit, sum(debit) AS debits
         FROM m GROUP BY account_id) s)
"""
