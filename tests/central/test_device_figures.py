"""Issue 15: the figures ops see of a device are true (pending events, log lines' text)."""

from __future__ import annotations

from sync.logline import LEGACY_TEXT, TEXT
from tests.central.sync_helpers import Rig


async def test_log_lines_show_their_text_under_either_key(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    lines = [
        rig.event(gate, "log", "warning", {TEXT: "camera slow"}),
        rig.event(gate, "log", "info", {LEGACY_TEXT: "daemon started"}),  # an older device
        rig.event(gate, "log", "info", {"logger": "festgate"}),
    ]
    assert (await rig.push(gate, lines)).status_code == 200
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
