"""**Now**: what a festival's ops room watches all weekend, live.

People inside per zone against capacity, entries and exits per minute per gate over the
last hours, sales per bar, devices online and offline, open conflicts: each section only for
a role that may see it (the role matrix's view actions), read through central's report,
device and conflict views. The page updates itself over server-sent events
(`central.console.live`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from psycopg import AsyncConnection

from central import devices, ops, reports
from central.auth import Action
from central.console import live
from central.console.web import (
    PREFIX,
    Festival,
    Viewer,
    ViewerDep,
    central_state,
    festival_page,
    render,
    render_text,
)

router = APIRouter()
WINDOW = timedelta(hours=3)  # the chart's span
MINUTE_S = 60
LATEST_CONFLICTS = 5
# Which section each action shows (a role without it gets neither the section nor its query).
SECTIONS: dict[str, Action] = {
    "zones": Action.VIEW_OCCUPANCY,
    "gates": Action.VIEW_ENTRIES,
    "sales": Action.VIEW_SALES,
    "devices": Action.VIEW_DEVICES,
    "conflicts": Action.VIEW_CONFLICTS,
}
_OPEN_BY_KIND = """
SELECT kind, count(*) FROM conflict WHERE festival_id = %s AND resolved_at IS NULL
GROUP BY kind ORDER BY kind
"""
# Each gate's entries and exits per minute over the chart's span, from the running totals
# (`central.rollups`): a row per gate and zone with its minutes (offsets from the start) and
# counts as arrays. At 100 gates a 3-hour chart is 18,000 minutes, and reading each as a
# row cost more than the page. A minute starts at the same instant in every time zone.
_CHART = f"""
SELECT g.device_id, {devices.LABEL_SQL} AS gate, z.name AS zone,
       array_agg((extract(epoch FROM g.minute)::bigint - %(start)s) / 60) AS minutes,
       array_agg(g.entries) AS entries, array_agg(g.exits) AS exits
FROM gate_by_minute g JOIN zone z ON z.id = g.zone_id JOIN device d ON d.id = g.device_id
WHERE g.festival_id = %(fid)s
  AND g.minute BETWEEN to_timestamp(%(start)s) AND to_timestamp(%(end)s)
GROUP BY g.device_id, d.id, z.id
"""
shared = live.SharedRenders()


@dataclass
class GateTotals:
    """One gate's entries and exits over the chart's span."""

    gate: str
    zone: str
    entries: int = 0
    exits: int = 0


@dataclass
class NowView:
    """Everything the page shows, for the sections the viewer's role sees."""

    sections: frozenset[str]
    as_of: datetime
    zones: list[reports.ZoneOccupancy] = field(default_factory=list)
    gates: list[GateTotals] = field(default_factory=list)
    chart: dict[str, Any] = field(default_factory=dict)
    sales: list[reports.VendorSales] = field(default_factory=list)
    online: list[devices.DeviceHealth] = field(default_factory=list)
    offline: list[devices.DeviceHealth] = field(default_factory=list)
    open_by_kind: list[tuple[str, int]] = field(default_factory=list)
    latest_conflicts: list[ops.ConflictItem] = field(default_factory=list)


def sections_for(who: Viewer) -> frozenset[str]:
    """The sections of the page `who`'s role may see."""
    return frozenset(name for name, action in SECTIONS.items() if who.may(action))


async def gate_chart(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, now: datetime, timezone: str
) -> tuple[dict[str, Any], list[GateTotals]]:
    """Entries and exits per minute per gate over WINDOW up to `now`, minute by minute
    (zero-filled), as the page's script draws them (unix seconds on x, one series per gate),
    and each gate's totals over it, by gate name."""
    end = int(now.timestamp()) // MINUTE_S * MINUTE_S
    start = end - int(WINDOW.total_seconds())
    n = (end - start) // MINUTE_S + 1
    cur = await conn.execute(_CHART, {"fid": festival_id, "start": start, "end": end})
    series: dict[uuid.UUID, dict[str, Any]] = {}
    totals: dict[uuid.UUID, GateTotals] = {}
    for device_id, gate, zone, minutes, entries, exits in await cur.fetchall():
        g = series.setdefault(device_id, {"label": gate, "entries": [0] * n, "exits": [0] * n})
        t = totals.setdefault(device_id, GateTotals(gate, zone))
        for i, came, went in zip(minutes, entries, exits, strict=True):
            g["entries"][i] += came
            g["exits"][i] += went
        t.entries, t.exits = t.entries + sum(entries), t.exits + sum(exits)
    order = sorted(series, key=lambda d: (series[d]["label"], str(d)))
    xs = list(range(start, end + MINUTE_S, MINUTE_S))
    chart = {"tz": timezone, "x": xs, "gates": [series[d] for d in order]}
    return chart, [totals[d] for d in order]


async def now_view(
    conn: AsyncConnection[Any], festival: Festival, sections: frozenset[str]
) -> NowView:
    """Read what the page shows, section by section."""
    now = datetime.now(UTC)
    view = NowView(sections, now.astimezone(festival.formats.zone))
    fid = festival.id
    if "zones" in sections:
        view.zones = await reports.zone_occupancy(conn, fid)
    if "gates" in sections:
        view.chart, view.gates = await gate_chart(conn, fid, now, festival.timezone)
    if "sales" in sections:
        view.sales = await reports.sales_per_vendor(conn, fid)
    if "devices" in sections:
        for d in await devices.list_devices(conn, fid):
            if d.revoked_at is None:
                (view.online if d.online else view.offline).append(d)
    if "conflicts" in sections:
        cur = await conn.execute(_OPEN_BY_KIND, (fid,))
        view.open_by_kind = [(str(k), int(n)) for k, n in await cur.fetchall()]
        latest = ops.ConflictFilter(limit=LATEST_CONFLICTS)
        view.latest_conflicts = await ops.list_conflicts(conn, fid, latest)
    return view


def _panel(festival: Festival, view: NowView) -> str:
    return render_text(
        festival.formats.lang, "pages/now_panel.html", view=view, festival=festival,
        fmt=festival.formats, chart_json=json.dumps(view.chart, separators=(",", ":")),
    )  # fmt: skip


async def _read(request: Request, who: Viewer, festival: str) -> tuple[Festival, NowView]:
    async with central_state(request).pool.connection() as conn:
        fest = await festival_page(conn, who, festival, "now")
        return fest, await now_view(conn, fest, sections_for(who))


@router.get("/f/{festival}/now")
async def now_page(request: Request, festival: str, who: ViewerDep) -> Response:
    """The page, with its panel as of now and the stream that keeps it so."""
    fest, view = await _read(request, who, festival)
    return render(
        request, who, "pages/now.html", festival=fest, current="now",
        panel=_panel(fest, view), events=f"{PREFIX}/f/{fest.slug}/now/events",
    )  # fmt: skip


@router.get("/f/{festival}/now/panel")
async def now_panel(request: Request, festival: str, who: ViewerDep) -> Response:
    """The panel alone (what the stream sends), for a script or a reload."""
    fest, view = await _read(request, who, festival)
    return Response(_panel(fest, view), media_type="text/html; charset=utf-8")


@router.get("/f/{festival}/now/events")
async def now_events(request: Request, festival: str, who: ViewerDep) -> Response:
    """Server-sent events: ``now`` with the panel's HTML whenever it changes."""
    st = central_state(request)
    sections = sections_for(who)
    async with st.pool.connection() as conn:
        fest = await festival_page(conn, who, festival, "now")

    async def render_panel(conn: AsyncConnection[Any]) -> str:
        return _panel(fest, await now_view(conn, fest, sections))

    events = live.stream(
        st, shared, festival_id=fest.id, key=(fest.id, who.lang, sections),
        event="now", token=who.token, render=render_panel,
    )  # fmt: skip
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
    )
