"""**Sales**: what each vendor sold, product by product, over time (buckets of the
festival's clock), net of refunds, with the same figures as a CSV download.

Read through `central.reports.product_sales_over_time`; amounts in the festival's currency.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from babel.numbers import get_currency_precision
from fastapi import APIRouter, Request
from fastapi.responses import Response

from central import reports
from central.console.web import (
    Festival,
    Viewer,
    ViewerDep,
    central_state,
    festival_page,
    render,
)

router = APIRouter()
PAGE = "sales"
BUCKETS = {"15min": 900, "hour": 3600, "day": 86400}
DEFAULT_BUCKET = "hour"
CSV_FIELDS = ("bucket_start", "vendor", "product", "quantity", "net_amount", "currency")


@dataclass
class VendorTotal:
    """One vendor's net figures over the whole festival."""

    vendor: str
    quantity: int = 0
    amount: int = 0


def totals(rows: list[reports.ProductSales]) -> list[VendorTotal]:
    """Each vendor's net quantity and amount, by vendor name."""
    by: dict[object, VendorTotal] = defaultdict(lambda: VendorTotal(""))
    for r in rows:
        t = by[r.vendor_id]
        t.vendor, t.quantity, t.amount = r.vendor, t.quantity + r.quantity, t.amount + r.amount
    return sorted(by.values(), key=lambda t: t.vendor)


def _bucket(request: Request) -> str:
    chosen = request.query_params.get("bucket", DEFAULT_BUCKET)
    return chosen if chosen in BUCKETS else DEFAULT_BUCKET


def _cell(text: str) -> str:
    """A name as a CSV cell a spreadsheet shows as text (never runs it as a formula)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def as_csv(rows: list[reports.ProductSales]) -> str:
    """The figures as CSV: ISO times with the festival's offset, amounts in major units."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for r in rows:
        net = Decimal(r.amount).scaleb(-get_currency_precision(r.currency))
        writer.writerow(
            (r.bucket.isoformat(), _cell(r.vendor), _cell(r.product or ""), r.quantity,
             f"{net:f}", r.currency)
        )  # fmt: skip
    return out.getvalue()


async def _figures(
    request: Request, festival: str, who: Viewer
) -> tuple[Festival, str, list[reports.ProductSales]]:
    """The festival, the bucket asked for, and the figures in it."""
    bucket = _bucket(request)
    async with central_state(request).pool.connection() as conn:
        fest = await festival_page(conn, who, festival, PAGE)
        rows = await reports.product_sales_over_time(conn, fest.id, bucket_s=BUCKETS[bucket])
    return fest, bucket, rows


@router.get("/f/{festival}/sales")
async def sales_page(request: Request, festival: str, who: ViewerDep) -> Response:
    """Net sales per vendor and product per bucket, with each vendor's totals."""
    fest, bucket, rows = await _figures(request, festival, who)
    return render(
        request, who, "pages/sales.html", festival=fest, current=PAGE, fmt=fest.formats,
        rows=rows, totals=totals(rows), bucket=bucket, buckets=list(BUCKETS),
    )  # fmt: skip


@router.get("/f/{festival}/sales.csv")
async def sales_csv(request: Request, festival: str, who: ViewerDep) -> Response:
    """The same figures as a CSV file."""
    fest, bucket, rows = await _figures(request, festival, who)
    name = f"sales-{fest.slug}-{bucket}.csv"
    return Response(
        as_csv(rows), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )  # fmt: skip
