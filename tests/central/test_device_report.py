"""Issue 17: what a device says it runs (software version, readers working) is kept for ops
when well formed; a bad value is ignored, nothing of it stored, and the request answered."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from sync.device_report import MAX_READERS, encode_readers, parse_readers
from sync.protocol import READERS_HEADER, SOFTWARE_HEADER
from tests.central.sync_helpers import Dev, Rig


async def _row(rig: Rig, dev: Dev) -> dict[str, Any]:
    resp = await rig.client.get(
        f"/v1/ops/festivals/{rig.fest.festival_id}/devices", headers=await rig.ops("STAFF")
    )
    assert resp.status_code == 200, resp.text
    rows: list[dict[str, Any]] = resp.json()
    (row,) = [d for d in rows if d["id"] == dev.device_id]
    return row


async def _poll(rig: Rig, dev: Dev, report: dict[str, str | bytes]) -> None:
    # As bytes: a hostile value may be one no str header can carry (obs-text).
    headers = [(k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in report.items()]
    headers += [(k.encode(), v.encode()) for k, v in dev.headers.items()]
    resp = await rig.client.get("/v1/sync/changes", params={"after": 0}, headers=headers)
    assert resp.status_code == 200, resp.text


async def test_a_report_is_kept_and_one_without_readers_keeps_theirs(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    row = await _row(rig, gate)
    assert (row["software_version"], row["readers"]) == (None, None)  # it said nothing yet
    await _poll(rig, gate, {SOFTWARE_HEADER: "1.4.0", READERS_HEADER: "camera=up,nfc=down"})
    row = await _row(rig, gate)
    assert (row["software_version"], row["readers"]) == ("1.4.0", {"camera": True, "nfc": False})
    # A device CLI run (no daemon, so no readers) after an update: its version, same readers.
    await _poll(rig, gate, {SOFTWARE_HEADER: "1.5.0.dev2+g1a2b3c"})
    row = await _row(rig, gate)
    assert row["software_version"] == "1.5.0.dev2+g1a2b3c"
    assert row["readers"] == {"camera": True, "nfc": False}
    # A daemon with no readers says so (an empty value).
    await _poll(rig, gate, {READERS_HEADER: ""})
    assert (await _row(rig, gate))["readers"] == {}


TOO_MANY = ",".join(f"r{i}=up" for i in range(MAX_READERS + 1))
HOSTILE: list[dict[str, str | bytes]] = [
    {SOFTWARE_HEADER: "9" * 65},  # too long
    {SOFTWARE_HEADER: "<script>alert(1)</script>"},
    {SOFTWARE_HEADER: "1.0 beta"},
    {SOFTWARE_HEADER: "1.0\x00"},
    {SOFTWARE_HEADER: b"1.0\xe9"},  # obs-text (latin-1 é)
    {READERS_HEADER: TOO_MANY},
    {READERS_HEADER: "cam=up," + "x" * 3000 + "=up"},  # too long
    {READERS_HEADER: "cam=broken"},
    {READERS_HEADER: "cam=up,cam=down"},
    {READERS_HEADER: "cam%00=up"},  # a NUL, percent-encoded
    {READERS_HEADER: "cam\x00=up"},
    {READERS_HEADER: "%ff%fe=up"},  # not UTF-8
    {READERS_HEADER: "%0a=up"},  # a control character
    {READERS_HEADER: "<b>cam</b>=up"},
    {READERS_HEADER: "=up"},
    {READERS_HEADER: "cam=up,"},
    {READERS_HEADER: "x" * 65 + "=up"},  # a name too long
]


@pytest.mark.parametrize("report", HOSTILE, ids=range(len(HOSTILE)))
async def test_a_bad_report_is_ignored_and_the_request_answered(
    rig: Rig, report: dict[str, str | bytes], caplog: pytest.LogCaptureFixture
) -> None:
    gate = await rig.enrol("gate")
    await _poll(rig, gate, {SOFTWARE_HEADER: "1.4.0", READERS_HEADER: "camera=up"})
    before = await _row(rig, gate)
    with caplog.at_level(logging.WARNING, logger="central.api.sync"):
        await _poll(rig, gate, report)
    after = await _row(rig, gate)
    assert (after["software_version"], after["readers"]) == ("1.4.0", {"camera": True})
    assert after["last_seen_at"] >= before["last_seen_at"]  # the poll itself was recorded
    (name,) = report
    assert any(f"ignored a bad {name} header" in r.getMessage() for r in caplog.records)


def test_readers_round_trip_and_stay_within_bounds() -> None:
    readers = {"front cam": True, "nfc/2": False, "caméra": True}
    assert parse_readers(encode_readers(readers)) == readers
    many = {f"r{i:02}": True for i in range(MAX_READERS + 4)}
    sent = parse_readers(encode_readers(many))
    assert sent == {f"r{i:02}": True for i in range(MAX_READERS)}  # the first by name
