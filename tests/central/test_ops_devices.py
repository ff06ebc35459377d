"""A festival's devices and enrol codes by name, through the API and the CLI alike: health,
log, revoke; codes made, listed by a short id and revoked; refusals with their code."""

from __future__ import annotations

import pytest

from tests.central.ops_doors import Door, refused
from tests.central.sync_helpers import PROTO, Rig, expect_error


@pytest.fixture(params=["api", "cli"])
async def door(request: pytest.FixtureRequest, rig: Rig, pg_dsn: str) -> Door:
    """The API or the CLI, on the rig's database."""
    return await Door.open(request.param, rig, pg_dsn)


async def test_devices_by_name_with_health_and_log(door: Door) -> None:
    rig = door.rig
    gate, _ = await rig.enrol("gate", "north-1"), await rig.enrol("bar", "bar-1")
    lines = [rig.event(gate, "log", "warning", {"message": "camera slow"}) for _ in range(2)]
    pushed = await rig.client.post(
        "/v1/sync/events", json={"events": lines}, headers={**gate.headers, "Festgate-Pending": "3"}
    )
    assert pushed.status_code == 200, pushed.text
    listed = {d["name"]: d for d in await door.ok("device list", rig.fest.slug)}
    north, bar = listed["north-1"], listed["bar-1"]
    assert (north["role"], north["zone"], north["vendor"]) == ("gate", "Main gate", None)
    assert (bar["role"], bar["zone"], bar["vendor"]) == ("bar", None, "Main bar")
    assert north["online"] is True and 0 <= north["last_seen_s"] < 60
    # It held 3 when it pushed 2 of them (central.ingest.pushed_journal_seq): 1 is pending.
    assert (north["pending_events"], north["acked_through"], north["revoked_at"]) == (1, 2, None)
    assert bar["pending_events"] is None  # it never pushed
    shown = await door.ok("device show", rig.fest.slug, device="NORTH-1")
    assert (shown["id"], shown["events"], shown["rejected_events"]) == (gate.device_id, 2, 0)
    assert [x["message"] for x in shown["recent_log"]] == ["camera slow"] * 2
    log = await door.ok("device log", rig.fest.slug, device="north-1")
    assert [(x["device_seq"], x["level"]) for x in log] == [(1, "warning"), (2, "warning")]
    assert log[0]["at"].endswith(("+01:00", "+02:00"))  # Europe/Paris, the festival's zone
    await refused(door, "not_found", "device show", rig.fest.slug, device="south-9")
    await refused(door, "not_found", "device log", "no-such-fest", device="north-1")


async def test_a_device_revoked_by_name_is_refused_at_its_next_request(door: Door) -> None:
    rig = door.rig
    gate = await rig.enrol("gate", "north-1")
    assert (await rig.push(gate, [rig.entry(gate, rig.fest.tickets[0].ticket_id)])).is_success
    gone = await door.ok("device revoke", rig.fest.slug, device="North-1")
    assert (gone["name"], gone["online"]) == ("north-1", False) and gone["revoked_at"]
    assert await rig.scalar("SELECT action FROM audit_log ORDER BY id DESC LIMIT 1") == (
        "device.revoke"
    )
    expect_error(await rig.push(gate, [rig.entry(gate, rig.fest.tickets[1].ticket_id)]),
                 401, "token_revoked")  # fmt: skip
    expect_error(await rig.client.get("/v1/sync/changes", headers=gate.headers),
                 401, "token_revoked")  # fmt: skip
    await refused(door, "already_revoked", "device revoke", rig.fest.slug, device="north-1")
    await refused(door, "already_revoked", "device revoke", rig.fest.slug, device=gate.device_id)
    # Its name given again to a new device: the name finds the live one.
    again = await rig.enrol("gate", "north-1")
    await refused(door, "ambiguous", "device show", rig.fest.slug, device="north-1")
    assert (await door.ok("device revoke", rig.fest.slug, device="north-1"))["id"] == (
        again.device_id
    )


async def test_two_live_devices_of_one_name_are_ambiguous(door: Door) -> None:
    rig = door.rig
    twins = [await rig.enrol("gate", "twin") for _ in range(2)]
    detail = await refused(door, "ambiguous", "device revoke", door.rig.fest.slug, device="twin")
    assert all(t.device_id in detail for t in twins)
    await refused(door, "ambiguous", "device log", door.rig.fest.slug, device="Twin")


async def test_enrol_codes_by_short_id(door: Door) -> None:
    rig, slug = door.rig, door.rig.fest.slug
    new = await door.ok("enrol-code create", slug, role="gate", zone="main GATE")
    code, short = new["code"], new["id"]
    assert (new["zone"], new["zone_id"], new["role"]) == (
        "Main gate",
        str(rig.fest.zone_id),
        "gate",
    )
    bar = await door.ok("enrol-code create", slug, role="bar", vendor="Main bar")
    listed = await door.ok("enrol-code list", slug)
    assert sorted(c["id"] for c in listed) == sorted([short, bar["id"]])
    assert all("code" not in c for c in listed)  # shown once, at creation; only its hash kept
    assert await rig.scalar("SELECT count(*) FROM enrol_code WHERE ref = %s", code) == 0
    revoked = await door.ok("enrol-code revoke", slug, code=short.lower())
    assert revoked["id"] == short and revoked["revoked_at"]
    enrolled = await rig.client.post("/v1/devices/enroll", json={"code": code}, headers=PROTO)
    expect_error(enrolled, 403, "enrol_code_invalid")
    assert [c["id"] for c in await door.ok("enrol-code list", slug)] == [bar["id"]]
    await refused(door, "already_revoked", "enrol-code revoke", slug, code=short)
    used = await rig.client.post("/v1/devices/enroll", json={"code": bar["code"]}, headers=PROTO)
    assert used.status_code == 200, used.text
    await refused(door, "already_used", "enrol-code revoke", slug, code=bar["code"])
    await refused(door, "not_found", "enrol-code revoke", slug, code="ZZZZZZZZ")
    await refused(door, "not_found", "enrol-code create", slug, role="gate", zone="Moon")
    # A bar without a vendor: refused (the API and the CLI name such refusals differently).
    bad = "invalid_request"  # the same code through both doors
    assert "needs a vendor" in await refused(door, bad, "enrol-code create", slug, role="bar")
