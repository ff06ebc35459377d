"""Running totals kept at ingest (issue 17): Now's chart and the Sales page read minutes and
quarter hours per gate and vendor (`central.rollups`), not every entry and sale the festival
ever had; this fills them from the facts already stored.

Revision ID: 0014_rollups
Revises: 0013_keys_at_rest
"""

# ruff: noqa: E501  (REBUILD is generated text, frozen as generated)
from __future__ import annotations

from alembic import op

revision = "0014_rollups"
down_revision = "0013_keys_at_rest"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE gate_by_minute (
    festival_id uuid NOT NULL REFERENCES festival (id) ON DELETE CASCADE,
    device_id uuid NOT NULL,
    zone_id uuid NOT NULL,
    minute timestamptz NOT NULL,
    entries bigint NOT NULL CHECK (entries >= 0),
    exits bigint NOT NULL CHECK (exits >= 0),
    PRIMARY KEY (device_id, minute, zone_id));
CREATE INDEX gate_by_minute_festival ON gate_by_minute (festival_id, minute);

-- product_id NULL: the vendor's "no product" line, which also counts its sales.
CREATE TABLE sales_by_quarter (
    festival_id uuid NOT NULL REFERENCES festival (id) ON DELETE CASCADE,
    vendor_id uuid NOT NULL,
    product_id uuid,
    quarter timestamptz NOT NULL,
    quantity bigint NOT NULL,
    amount bigint NOT NULL,
    sales bigint NOT NULL CHECK (sales >= 0),
    gross bigint NOT NULL CHECK (gross >= 0),
    UNIQUE NULLS NOT DISTINCT (vendor_id, quarter, product_id));
CREATE INDEX sales_by_quarter_festival ON sales_by_quarter (festival_id, quarter);

-- Now's chart read gate events by time through this index (0011); it reads the minutes now,
-- and every gate event stored paid for the index.
DROP INDEX device_event_gate_time_idx;
"""

# `central.rollups.REBUILD` as it was at this revision (a test checks they still agree).
REBUILD = """
WITH gate_rows AS (
  INSERT INTO gate_by_minute AS g (festival_id, device_id, zone_id, minute, entries, exits)
  SELECT b.festival_id, b.device_id, b.zone_id, to_timestamp((b.hlc >> 16) / 60000 * 60),
         count(*) FILTER (WHERE b.kind = 'entry'),
         count(*) FILTER (WHERE b.kind = 'exit')
  FROM (SELECT * FROM device_event e WHERE e.status = 'applied' AND e.ticket_id IS NOT NULL AND ((e.kind = 'entry' AND e.verdict IN ('ok', 'ok_reentry')) OR (e.kind = 'exit' AND e.verdict = 'ok'))) b WHERE b.zone_id IS NOT NULL
  GROUP BY 1, 2, 3, 4 ORDER BY 2, 4, 3
  ON CONFLICT (device_id, minute, zone_id) DO UPDATE
    SET entries = g.entries + EXCLUDED.entries, exits = g.exits + EXCLUDED.exits),
sales_ev AS (  -- a refund's lines are its sale's, found by id only for a refund (a join
               -- would let the planner read every sale stored to find a batch's few)
  SELECT b.event_id, b.festival_id, to_timestamp((b.hlc >> 16) / 900000 * 900) AS quarter, d.vendor_id,
         b.kind = 'sale' AS sale, CASE WHEN b.kind = 'sale' THEN 1 ELSE -1 END AS sign, b.amount AS total,
         CASE WHEN b.kind = 'sale' THEN b.payload -> 'items'
              ELSE (SELECT s.payload -> 'items' FROM device_event s
                    WHERE s.event_id = payload_uuid(b.payload ->> 'refund_of')
                      AND s.device_id = b.device_id AND s.kind = 'sale') END AS items
  FROM (SELECT * FROM device_event e WHERE e.status = 'applied' AND e.account_id IS NOT NULL AND e.verdict = 'approved' AND e.amount > 0) b JOIN device d ON d.id = b.device_id
  WHERE (b.kind = 'sale' OR b.kind = 'refund') AND d.vendor_id IS NOT NULL),
sales_items AS (
  SELECT ev.event_id, payload_uuid(i ->> 'product_id') AS product_id,
         (i ->> 'qty')::bigint AS qty, (i ->> 'price')::bigint AS price
  FROM sales_ev ev CROSS JOIN LATERAL jsonb_array_elements(
         CASE WHEN jsonb_typeof(ev.items) = 'array' THEN ev.items ELSE '[]'::jsonb END) i
  WHERE jsonb_typeof(i) = 'object' AND i ->> 'qty' ~ '^[0-9]{1,6}$'
    AND i ->> 'price' ~ '^[0-9]{1,10}$' AND payload_uuid(i ->> 'product_id') IS NOT NULL),
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
        sales = q.sales + EXCLUDED.sales, gross = q.gross + EXCLUDED.gross)
SELECT 1;
INSERT INTO sales_by_quarter AS q (festival_id, vendor_id, product_id, quarter, quantity,
                                   amount, sales, gross)
SELECT festival_id, vendor_id, NULL,
       to_timestamp(floor(extract(epoch FROM created_at) / 900) * 900),
       0, -sum(amount), count(*), -sum(amount)
FROM cashless_transaction WHERE type = 'PAYMENT' AND vendor_id IS NOT NULL GROUP BY 1, 2, 4
ON CONFLICT (vendor_id, quarter, product_id) DO UPDATE
  SET amount = q.amount + EXCLUDED.amount, sales = q.sales + EXCLUDED.sales,
      gross = q.gross + EXCLUDED.gross;
"""


def upgrade() -> None:
    """Apply this revision (forward only): the tables, filled from the stored facts."""
    op.execute(SCHEMA)
    op.execute(REBUILD)
