"""Running totals kept at ingest, so reports read minutes and quarters, not every event.

- `gate_by_minute`: each gate's entries and exits into each zone per minute (by when they
  happened: the stored HLC's wall clock). Now's chart and `central.reports` read it.
- `sales_by_quarter`: each vendor's net quantity and amount per product per quarter hour,
  sold less refunded (a bar's refund takes its sale's basket lines back, in the quarter of
  the refund); what a basket's readable lines do not explain (a sale by amount, an
  unreadable line) is the vendor's "no product" line (``product_id`` NULL), which also
  carries the vendor's count of sales and their gross amount. A payment central books with
  a vendor (`central.cashless.ledger_entry`) is a "no product" sale.

A minute and a quarter hour start at the same instant in every time zone in use (offsets
are whole quarter hours), so buckets of a festival's clock of 15 minutes, an hour or a day
are sums of them. Device facts are immutable once stored, so the totals only ever add.

Each fragment is written over a source of stored facts: the rows one push just stored
(`central.settle`, under the festival's ingest lock, so two batches never add to one row at
once) or every stored fact (`REBUILD`, which migration 0014 ran to fill the tables).
"""

from __future__ import annotations

from sync import facts
from sync.vocab import EventKind

QUARTER_S = 900
_SALE = facts.sql_in("{a}kind", [EventKind.SALE])
_REFUND = facts.sql_in("{a}kind", [EventKind.REFUND])
# The minute and the quarter of a stored fact's HLC (milliseconds in its upper 48 bits).
_MINUTE = "to_timestamp((b.hlc >> 16) / 60000 * 60)"
_QUARTER = f"to_timestamp((b.hlc >> 16) / {QUARTER_S * 1000} * {QUARTER_S})"


def gate_ctes(source: str) -> str:
    """CTEs adding `source`'s admitted gate facts (``zone_access_log`` rows) to
    `gate_by_minute`; `source` is a row source of ``device_event`` rows."""
    return f"""
gate_rows AS (
  INSERT INTO gate_by_minute AS g (festival_id, device_id, zone_id, minute, entries, exits)
  SELECT b.festival_id, b.device_id, b.zone_id, {_MINUTE},
         count(*) FILTER (WHERE {facts.sql_in("b.kind", [EventKind.ENTRY])}),
         count(*) FILTER (WHERE {facts.sql_in("b.kind", [EventKind.EXIT])})
  FROM {source} b WHERE b.zone_id IS NOT NULL
  GROUP BY 1, 2, 3, 4 ORDER BY 2, 4, 3
  ON CONFLICT (device_id, minute, zone_id) DO UPDATE
    SET entries = g.entries + EXCLUDED.entries, exits = g.exits + EXCLUDED.exits)"""


def sales_ctes(source: str) -> str:
    """CTEs adding `source`'s approved sales and refunds at bars (a vendor's devices) to
    `sales_by_quarter`; `source` is a row source of ``device_event`` rows that move money."""
    sale, refund = _SALE.format(a="b."), _REFUND.format(a="b.")
    return f"""
sales_ev AS (  -- a refund's lines are its sale's, found by id only for a refund (a join
               -- would let the planner read every sale stored to find a batch's few)
  SELECT b.event_id, b.festival_id, {_QUARTER} AS quarter, d.vendor_id,
         {sale} AS sale, CASE WHEN {sale} THEN 1 ELSE -1 END AS sign, b.amount AS total,
         CASE WHEN {sale} THEN b.payload -> 'items'
              ELSE (SELECT s.payload -> 'items' FROM device_event s
                    WHERE s.event_id = payload_uuid(b.payload ->> 'refund_of')
                      AND s.device_id = b.device_id AND {_SALE.format(a="s.")}) END AS items
  FROM {source} b JOIN device d ON d.id = b.device_id
  WHERE ({sale} OR {refund}) AND d.vendor_id IS NOT NULL),
sales_items AS (
  SELECT ev.event_id, payload_uuid(i ->> 'product_id') AS product_id,
         (i ->> 'qty')::bigint AS qty, (i ->> 'price')::bigint AS price
  FROM sales_ev ev CROSS JOIN LATERAL jsonb_array_elements(
         CASE WHEN jsonb_typeof(ev.items) = 'array' THEN ev.items ELSE '[]'::jsonb END) i
  WHERE jsonb_typeof(i) = 'object' AND i ->> 'qty' ~ '^[0-9]{{1,6}}$'
    AND i ->> 'price' ~ '^[0-9]{{1,10}}$' AND payload_uuid(i ->> 'product_id') IS NOT NULL),
sales_explained AS (
  SELECT event_id, sum(qty * price) AS amount FROM sales_items GROUP BY event_id),
sales_lines AS (
  SELECT ev.festival_id, ev.quarter, ev.vendor_id, it.product_id, ev.sign * it.qty AS qty,
         ev.sign * it.qty * it.price AS amount, 0 AS sales, 0 AS gross
  FROM sales_ev ev JOIN sales_items it ON it.event_id = ev.event_id
  UNION ALL
  SELECT ev.festival_id, ev.quarter, ev.vendor_id, NULL, 0,
         ev.sign * (ev.total - coalesce(x.amount, 0)),
         ev.sale::int, CASE WHEN ev.sale THEN ev.total ELSE 0 END
  FROM sales_ev ev LEFT JOIN sales_explained x ON x.event_id = ev.event_id),
sales_rows AS (
  INSERT INTO sales_by_quarter AS q (festival_id, vendor_id, product_id, quarter, quantity,
                                     amount, sales, gross)
  SELECT festival_id, vendor_id, product_id, quarter, sum(qty), sum(amount), sum(sales),
         sum(gross)
  FROM sales_lines GROUP BY 1, 2, 3, 4 ORDER BY 2, 4, 3
  ON CONFLICT (vendor_id, quarter, product_id) DO UPDATE
    SET quantity = q.quantity + EXCLUDED.quantity, amount = q.amount + EXCLUDED.amount,
        sales = q.sales + EXCLUDED.sales, gross = q.gross + EXCLUDED.gross)"""


# A payment central booked with a vendor: one sale of the vendor's "no product" line, in the
# quarter it was booked (its amount is the ledger's, negative: money out of the account).
PAYMENT = f"""
INSERT INTO sales_by_quarter AS q (festival_id, vendor_id, product_id, quarter, quantity,
                                   amount, sales, gross)
VALUES (%(fid)s, %(vendor)s, NULL,
        to_timestamp(floor(extract(epoch FROM %(at)s::timestamptz) / {QUARTER_S}) * {QUARTER_S}),
        0, -(%(amount)s::bigint), 1, -(%(amount)s::bigint))
ON CONFLICT (vendor_id, quarter, product_id) DO UPDATE
  SET amount = q.amount + EXCLUDED.amount, sales = q.sales + 1, gross = q.gross + EXCLUDED.gross
"""

# Every stored fact, as the tables hold them: gate facts, money facts, then central's own
# payments with a vendor (`PAYMENT`'s, summed).
_STORED = "(SELECT * FROM device_event e WHERE e.status = 'applied' AND {filter})"
_GATE_FACTS = _STORED.format(filter=f"e.ticket_id IS NOT NULL AND {facts.admits_sql('gate', 'e.')}")
_MONEY_FACTS = _STORED.format(
    filter=f"e.account_id IS NOT NULL AND {facts.admits_sql('money', 'e.')} AND e.amount > 0"
)
REBUILD = f"""
WITH {gate_ctes(_GATE_FACTS).strip()},
{sales_ctes(_MONEY_FACTS).strip()}
SELECT 1;
INSERT INTO sales_by_quarter AS q (festival_id, vendor_id, product_id, quarter, quantity,
                                   amount, sales, gross)
SELECT festival_id, vendor_id, NULL,
       to_timestamp(floor(extract(epoch FROM created_at) / {QUARTER_S}) * {QUARTER_S}),
       0, -sum(amount), count(*), -sum(amount)
FROM cashless_transaction WHERE type = 'PAYMENT' AND vendor_id IS NOT NULL GROUP BY 1, 2, 4
ON CONFLICT (vendor_id, quarter, product_id) DO UPDATE
  SET amount = q.amount + EXCLUDED.amount, sales = q.sales + EXCLUDED.sales,
      gross = q.gross + EXCLUDED.gross;
"""
