"""Reports name zones, gates and vendors, and tell time by the festival's own clock; through
the API and the CLI alike, and as tables people read."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from central.cli import app
from tests.central.ops_doors import Door
from tests.central.sync_helpers import Dev, Rig

ZONE = "Pacific/Auckland"  # 12 or 13 hours from UTC: a UTC day is no local day there


@pytest.fixture(params=["api", "cli"])
async def door(request: pytest.FixtureRequest, rig: Rig, pg_dsn: str) -> Door:
    """The API or the CLI, on the rig's database."""
    return await Door.open(request.param, rig, pg_dsn)


async def _crowd(rig: Rig) -> tuple[Dev, Dev]:
    """Two entries and an exit at gate north-1, a 4.50 sale at bar-1, in Auckland."""
    async with rig.pool.connection() as conn:
        await conn.execute("UPDATE festival SET timezone = %s", (ZONE,))
    gate, bar = await rig.enrol("gate", "north-1"), await rig.enrol("bar", "bar-1")
    t0, t1 = rig.fest.tickets[0].ticket_id, rig.fest.tickets[1].ticket_id
    scans = [rig.entry(gate, t0, at_ms=100), rig.exit(gate, t0, at_ms=200), rig.entry(gate, t1)]
    assert (await rig.push(gate, scans)).status_code == 200
    assert (await rig.push(bar, [rig.sale(bar, rig.fest.account_ids[0], 450)])).status_code == 200
    return gate, bar


async def test_reports_name_zones_gates_and_vendors(rig: Rig) -> None:
    """The reports an ops console reads say which zone, which gate, which vendor (by the
    festival's id in the path, as before issue 15)."""
    await _crowd(rig)
    headers = await rig.ops("ADMIN")
    base = f"/v1/ops/festivals/{rig.fest.festival_id}"

    async def get(path: str) -> Any:
        resp = await rig.client.get(base + path, headers=headers)
        assert resp.status_code == 200, resp.text
        return resp.json()

    (entries,) = await get("/entries")
    assert (entries["zone"], entries["gate"], entries["entries"], entries["exits"]) == (
        "Main gate", "north-1", 2, 1,
    )  # fmt: skip
    (sales,) = await get("/sales")
    assert (sales["vendor"], sales["sales"], sales["amount"], sales["currency"]) == (
        "Main bar", 1, 450, "EUR",
    )  # fmt: skip
    (zone,) = await get("/zones/occupancy")
    assert (zone["zone"], zone["occupancy"], zone["capacity"]) == ("Main gate", 1, 1000)


async def test_entries_are_bucketed_by_the_festivals_clock(door: Door) -> None:
    rig = door.rig
    await _crowd(rig)
    scanned = datetime.fromtimestamp(rig.now_ms / 1000, ZoneInfo(ZONE))
    (day,) = await door.ok("report entries", rig.fest.slug, minutes=24 * 60)
    start = datetime.fromisoformat(day["bucket"])
    assert (start.hour, start.minute) == (0, 0)  # local midnight, not UTC's
    assert start.utcoffset() == ZoneInfo(ZONE).utcoffset(scanned)
    assert start <= scanned < start + timedelta(days=1)
    assert (day["zone"], day["gate"], day["entries"], day["exits"]) == (
        "Main gate",
        "north-1",
        2,
        1,
    )
    five = await door.ok("report entries", rig.fest.slug)
    assert sum(b["entries"] for b in five) == 2 and all(
        datetime.fromisoformat(b["bucket"]).minute % 5 == 0 for b in five
    )
    assert await door.ok("report sales", rig.fest.slug) == [
        {"vendor_id": str(rig.fest.vendor_id), "vendor": "Main bar", "sales": 1, "amount": 450,
         "currency": "EUR"}
    ]  # fmt: skip
    (zone,) = await door.ok("report occupancy", rig.fest.slug)
    assert (zone["zone"], zone["occupancy"]) == ("Main gate", 1)


async def test_tables_for_people_show_names_local_times_and_money(rig: Rig, pg_dsn: str) -> None:
    await _crowd(rig)
    slug = rig.fest.slug

    async def shown(*args: str) -> str:
        # The command runs its own event loop: in a thread, away from this one.
        argv = ["--dsn", pg_dsn, *args, "-f", slug]
        # A wide terminal, as in an ops room: at 80 columns the device list wraps its cells.
        result = await asyncio.to_thread(CliRunner().invoke, app, argv, env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.stdout

    sales = await shown("report", "sales")
    assert "Main bar" in sales and "4.50 EUR" in sales
    entries = await shown("report", "entries", "--bucket", "60")
    hour = datetime.fromtimestamp(rig.now_ms / 1000, ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:00")
    assert "north-1" in entries and "Main gate" in entries and hour in entries  # Auckland's
    devices = await shown("device", "list")
    assert "north-1" in devices and "Main gate" in devices and "online, seen" in devices
