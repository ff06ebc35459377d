"""Issue 15: the figures ops see of a device are true (pending events, log lines' text)."""

from __future__ import annotations

from typing import Any

from sync.logline import LEGACY_TEXT, TEXT
from sync.protocol import JOURNAL_SEQ_HEADER, PENDING_HEADER
from tests.central.sync_helpers import Dev, Rig


async def _pending(rig: Rig, dev: Dev) -> Any:
    resp = await rig.client.get(
        f"/v1/ops/festivals/{rig.fest.festival_id}/devices", headers=await rig.ops("STAFF")
    )
    assert resp.status_code == 200, resp.text
    (row,) = [d for d in resp.json() if d["id"] == dev.device_id]
    return row["pending_events"]


async def _push(rig: Rig, dev: Dev, events: list[dict[str, Any]], **figures: int) -> None:
    headers = dev.headers | {name: str(v) for name, v in _named(figures).items()}
    resp = await rig.client.post("/v1/sync/events", json={"events": events}, headers=headers)
    assert resp.status_code == 200, resp.text


async def _poll(rig: Rig, dev: Dev, **figures: int) -> None:
    headers = dev.headers | {name: str(v) for name, v in _named(figures).items()}
    resp = await rig.client.get("/v1/sync/changes", params={"after": 0}, headers=headers)
    assert resp.status_code == 200, resp.text


def _named(figures: dict[str, int]) -> dict[str, int]:
    names = {"pending": PENDING_HEADER, "journal_seq": JOURNAL_SEQ_HEADER}
    return {names[k]: v for k, v in figures.items()}


def _logs(rig: Rig, dev: Dev, n: int) -> list[dict[str, Any]]:
    return [rig.event(dev, "log", "info", {TEXT: f"line {i}"}) for i in range(n)]


async def test_a_push_leaves_what_an_older_device_still_holds(rig: Rig) -> None:
    # Festgate-Pending alone (a device from before Festgate-Journal-Seq): counted before the
    # push, over the events from the batch's first on, so the push's own events come off.
    gate = await rig.enrol("gate")
    lines = _logs(rig, gate, 7)
    await _push(rig, gate, lines[:3], pending=7)
    assert await _pending(rig, gate) == 4
    await _push(rig, gate, lines[3:], pending=4)
    assert await _pending(rig, gate) == 0


async def test_pending_follows_the_journal_seq_whatever_order_reports_arrive(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    assert await _pending(rig, gate) is None  # it has said nothing yet
    await _poll(rig, gate, journal_seq=5)  # offline for pushes, its long-poll gets through
    assert await _pending(rig, gate) == 5
    lines = _logs(rig, gate, 5)
    await _push(rig, gate, lines, journal_seq=5)
    assert await _pending(rig, gate) == 0
    await _poll(rig, gate, journal_seq=3)  # counted before that push, written after it
    assert await _pending(rig, gate) == 0
    await _poll(rig, gate)  # a poll that says nothing changes nothing
    assert await _pending(rig, gate) == 0
    await _poll(rig, gate, journal_seq=8)
    assert await _pending(rig, gate) == 3
    # A push without figures still moves the ack, and the pending events with it.
    await _push(rig, gate, _logs(rig, gate, 2))
    assert await _pending(rig, gate) == 1


async def test_log_lines_show_their_text_under_either_key(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    lines = [
        rig.event(gate, "log", "warning", {TEXT: "camera slow"}),
        rig.event(gate, "log", "info", {LEGACY_TEXT: "daemon started"}),  # an older device
        rig.event(gate, "log", "info", {"logger": "festgate"}),
    ]
    await _push(rig, gate, lines)
    resp = await rig.client.get(
        f"/v1/ops/festivals/{rig.fest.festival_id}/devices/{gate.device_id}/log",
        headers=await rig.ops("STAFF"),
    )
    assert resp.status_code == 200, resp.text
    assert [(x["level"], x["message"]) for x in resp.json()] == [
        ("warning", "camera slow"),
        ("info", "daemon started"),
        ("info", ""),
    ]
