"""Ops list conflicts by what they are about, read both facts side by side, resolve them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.central.ops_state import stored, written_together
from tests.central.sync_helpers import Rig, expect_error


@pytest.fixture
def rig_festival() -> dict[str, Any]:
    return {"signed_tickets": 3, "wristbands": 1, "opening_balance": 1000}


async def _get(rig: Rig, path: str, **params: Any) -> httpx.Response:
    url = f"/v1/ops/festivals/{rig.fest.slug}/{path}"
    return await rig.client.get(url, params=params, headers=await rig.ops("SECURITY"))


async def _list(rig: Rig, **params: Any) -> list[dict[str, Any]]:
    resp = await _get(rig, "conflicts", **params)
    assert resp.status_code == 200, resp.text
    found: list[dict[str, Any]] = resp.json()
    return found


async def _duplicate(rig: Rig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two gates admit the first ticket with no exit between: its early and late entry."""
    north, south = await rig.enrol("gate", name="north-1"), await rig.enrol("gate", name="south-2")
    t = rig.fest.tickets[0].ticket_id
    early, late = rig.entry(north, t, at_ms=1000), rig.entry(south, t, at_ms=2000)
    assert (await rig.push(north, [early])).status_code == 200
    assert (await rig.push(south, [late])).status_code == 200
    return early, late


async def test_a_duplicate_entry_reads_side_by_side_with_names(rig: Rig) -> None:
    early, late = await _duplicate(rig)
    code = rig.fest.tickets[0].code
    (listed,) = await _list(rig, ticket=code)
    assert listed["subject"] == f"ticket {str(rig.fest.tickets[0].ticket_id)[:8]} (Weekend)"
    assert "north-1" in listed["summary"] and "south-2" in listed["summary"]
    resp = await _get(rig, f"conflicts/{listed['id']}")
    assert resp.status_code == 200, resp.text
    shown = resp.json()
    assert shown["timezone"] == "Europe/Paris"
    assert [(s["label"], s["device"], s["zone"], s["verdict"]) for s in shown["sides"]] == [
        ("stands", "north-1", "Main gate", "ok"), ("flagged", "south-2", "Main gate", "ok"),
    ]  # fmt: skip
    assert [s["event_id"] for s in shown["sides"]] == [early["event_id"], late["event_id"]]
    at = datetime.fromisoformat(shown["sides"][1]["at"])
    assert round(at.timestamp() * 1000) == rig.now_ms + 2000 and at.utcoffset() is not None


async def test_what_central_knew_is_the_other_side_of_a_stale_admission(rig: Rig) -> None:
    gate = await rig.enrol("gate", name="east")
    t = rig.fest.tickets[1]
    headers = await rig.ops("ORGANIZER")
    cancel = await rig.client.post(
        f"/v1/ops/festivals/{rig.fest.slug}/tickets/{t.code}/cancel", headers=headers
    )
    seq = cancel.json()["seq"]
    late = rig.entry(gate, t.ticket_id, at_ms=60_000, catalog_seq=seq - 1)
    assert (await rig.push(gate, [late])).status_code == 200
    (c,) = await _list(rig, kind="stale_catalog")
    shown = (await _get(rig, f"conflicts/{c['id']}")).json()
    device, central = shown["sides"]
    assert (device["label"], device["device"], device["catalog_seq"]) == ("device", "east", seq - 1)
    assert (central["label"], central["state"], central["catalog_seq"]) == (
        "central", "cancelled", seq,
    )  # fmt: skip
    assert "had not seen it" in shown["summary"]


async def test_an_overdraft_shows_the_sales_that_spent_too_much(rig: Rig) -> None:
    b1, b2 = await rig.enrol("bar", name="bar-1"), await rig.enrol("bar", name="bar-2")
    a = rig.fest.account_ids[0]
    await rig.push(b1, [rig.sale(b1, a, 700, at_ms=1000)])
    await rig.push(b2, [rig.sale(b2, a, 600, at_ms=2000)])
    (c,) = await _list(rig, wristband=rig.fest.tag_uids[0])
    assert c["kind"] == "overdraft" and c["subject"] == f"wristband {str(a)[:8]}"
    shown = (await _get(rig, f"conflicts/{c['id']}")).json()
    assert [(s["label"], s["device"], s["amount"]) for s in shown["sides"]] == [
        ("prior", "bar-1", 700), ("crossing", "bar-2", 600),
    ]  # fmt: skip
    assert shown["sides"][1]["note"] == "balance 3.00 EUR -> -3.00 EUR"


async def test_filters_by_device_name_kind_subject_and_state(rig: Rig) -> None:
    await _duplicate(rig)
    gappy = await rig.enrol("gate", name="west")
    await rig.push(gappy, [rig.event(gappy, "log", "info", seq=s) for s in (1, 3)])
    kinds = [c["kind"] for c in await _list(rig)]
    assert sorted(kinds) == ["duplicate_entry", "sequence_gap"]
    (gap,) = await _list(rig, device="WEST")
    shown = (await _get(rig, f"conflicts/{gap['id']}")).json()
    assert [(s["label"], s["device_seq"]) for s in shown["sides"]] == [
        ("missing", None), ("next held", 3),
    ]  # fmt: skip
    assert [c["kind"] for c in await _list(rig, device="north-1")] == ["duplicate_entry"]
    assert [c["kind"] for c in await _list(rig, subject="device")] == ["sequence_gap"]
    assert await _list(rig, kind="overdraft") == []
    resp = await rig.client.post(
        f"/v1/ops/festivals/{rig.fest.festival_id}/conflicts/{gap['id']}/resolve",
        json={"note": "replaced the SD card"},
        headers=await rig.ops("SECURITY"),
    )
    assert resp.status_code == 200, resp.text
    assert [c["kind"] for c in await _list(rig)] == ["duplicate_entry"]
    (resolved,) = await _list(rig, state="resolved")
    assert (resolved["id"], resolved["resolution_note"]) == (gap["id"], "replaced the SD card")
    assert len(await _list(rig, state="all")) == len(await _list(rig, open_only="false")) == 2


async def test_resolve_with_a_note_once(rig: Rig) -> None:
    await _duplicate(rig)
    (c,) = await _list(rig)
    url = f"/v1/ops/festivals/{rig.fest.slug}/conflicts/{c['id']}/resolve"
    ops = await rig.ops("SECURITY")
    done = await rig.client.post(url, json={"note": "same person, CCTV"}, headers=ops)
    assert done.status_code == 200, done.text
    assert (done.json()["resolution_note"], done.json()["resolved_by"].startswith("ops:")) == (
        "same person, CCTV", True,
    )  # fmt: skip
    async with rig.pool.connection() as conn:
        before = await stored(conn)
        cur = await conn.execute("SELECT count(*) FROM audit_log WHERE action = 'conflict.resolve'")
        assert await cur.fetchone() == (1,)
    again = await rig.client.post(url, json={"note": "again"}, headers=ops)
    expect_error(again, 409, "already_resolved")
    assert "same person, CCTV" in again.json()["detail"]
    async with rig.pool.connection() as conn:
        assert await stored(conn) == before


async def test_bad_conflict_requests_get_a_code_and_store_nothing(rig: Rig) -> None:
    await _duplicate(rig)
    await rig.enrol("gate", name="twin")
    await rig.enrol("gate", name="Twin")
    (c,) = await _list(rig)
    async with rig.pool.connection() as conn:
        before = await stored(conn)
    for path, params, status, code in [
        (f"conflicts/{uuid.uuid4()}", {}, 404, "not_found"),
        ("conflicts/42", {}, 422, "invalid_request"),
        ("conflicts", {"device": "nowhere"}, 404, "not_found"),
        ("conflicts", {"device": "twin"}, 422, "ambiguous"),
        ("conflicts", {"ticket": "no-such-ticket"}, 404, "not_found"),
        ("conflicts", {"kind": "mystery"}, 422, "invalid_request"),
        ("conflicts", {"state": "closed"}, 422, "invalid_request"),
    ]:
        expect_error(await _get(rig, path, **params), status, code)
    url = f"/v1/ops/festivals/{rig.fest.slug}/conflicts/{c['id']}/resolve"
    ops = await rig.ops("SECURITY")
    expect_error(await rig.client.post(url, json={"note": ""}, headers=ops), 422, "invalid_request")
    expect_error(await rig.client.post(url, json={}, headers=ops), 422, "invalid_request")
    cashier = await rig.ops("CASHIER")
    expect_error(await rig.client.post(url, json={"note": "n"}, headers=cashier), 403, "forbidden")
    async with rig.pool.connection() as conn:
        assert await stored(conn) == before
    assert len(await _list(rig)) == 1


async def test_a_resolve_is_audited_in_its_transaction(rig: Rig) -> None:
    """The conflict resolution writes no feed change unless a ticket's suspicion lifts; here
    it does, so both land with the audit entry."""
    await _duplicate(rig)
    (c,) = await _list(rig)
    url = f"/v1/ops/festivals/{rig.fest.slug}/conflicts/{c['id']}/resolve"
    resp = await rig.client.post(url, json={"note": "ok"}, headers=await rig.ops("ADMIN"))
    assert resp.status_code == 200
    head = await rig.scalar(
        "SELECT head FROM feed_head WHERE festival_id = %s", rig.fest.festival_id
    )
    async with rig.pool.connection() as conn:
        assert await written_together(conn, "conflict", c["id"], head) == "conflict.resolve"
