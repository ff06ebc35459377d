"""Ops act on one ticket through the API, naming it as they have it in hand (issue 15)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from central import tickets
from tests.central.ops_state import ops_call, ops_ok, stored, written_together
from tests.central.sync_helpers import Rig, expect_error


async def test_a_ticket_is_found_by_every_name_people_use(rig: Rig) -> None:
    fest = rig.fest
    async with rig.pool.connection() as conn:
        slashed = await tickets.issue_ticket(
            conn, fest.festival_id, category_id=fest.category_id, actor="t", holder_ref="web 42/A"
        )
        spaced = await tickets.issue_ticket(
            conn, fest.festival_id, category_id=fest.category_id, actor="t", holder_ref="web 43"
        )
    signed, outside = fest.tickets[0], fest.opaque_tickets[0]
    for ref, ticket in [
        (signed.code, signed), (str(signed.ticket_id), signed), (outside.code, outside),
        ("web 43", spaced),
    ]:  # fmt: skip
        found = await ops_ok(rig, "SECURITY", "GET", f"tickets/{quote(ref, safe='')}")
        assert found["ticket"]["id"] == str(ticket.ticket_id), ref
    # A reference a path cannot carry (a "/"), and the festival by id rather than slug.
    url = f"/v1/ops/festivals/{fest.festival_id}/tickets"
    resp = await rig.client.get(url, params={"find": "web 42/A"}, headers=await rig.ops("STAFF"))
    assert resp.json()["ticket"]["id"] == str(slashed.ticket_id)


async def test_a_ticket_shows_names_and_the_festivals_local_time(rig: Rig) -> None:
    gate = await rig.enrol("gate", name="north-1")
    t = rig.fest.tickets[0]
    scans = [rig.entry(gate, t.ticket_id, at_ms=100), rig.exit(gate, t.ticket_id, at_ms=200)]
    assert (await rig.push(gate, scans)).status_code == 200
    found = await ops_ok(rig, "SECURITY", "GET", f"tickets/{t.code}")
    ticket = found["ticket"]
    assert (ticket["category"], ticket["ticket_type"], ticket["status"]) == (
        "Weekend", "STANDARD", "SOLD",
    )  # fmt: skip
    assert (ticket["purchase_price"], ticket["currency"], ticket["code_kind"]) == (
        12000, "EUR", "signed",
    )  # fmt: skip
    assert found["timezone"] == "Europe/Paris"
    assert [(e["device"], e["zone"], e["kind"]) for e in found["events"]] == [
        ("north-1", "Main gate", "entry"), ("north-1", "Main gate", "exit"),
    ]  # fmt: skip
    assert [(m["action"], m["zone"], m["device"]) for m in found["access_log"]] == [
        ("ENTRY", "Main gate", "north-1"), ("EXIT", "Main gate", "north-1"),
    ]  # fmt: skip
    entered = datetime.fromisoformat(found["events"][0]["at"])
    assert round(entered.timestamp() * 1000) == rig.now_ms + 100  # when it happened ...
    assert entered.utcoffset() == entered.astimezone(ZoneInfo("Europe/Paris")).utcoffset()
    assert datetime.fromisoformat(ticket["used_at"]) == entered  # ... in the festival's zone
    assert [a["action"] for a in found["audit"]] == ["ticket.issue"]


async def test_cancel_by_code_writes_ticket_feed_and_audit_in_one_transaction(rig: Rig) -> None:
    t = rig.fest.tickets[0]
    done = await ops_ok(rig, "ORGANIZER", "POST", f"tickets/{t.code}/cancel")
    assert (done["id"], done["status"]) == (str(t.ticket_id), "CANCELLED")
    async with rig.pool.connection() as conn:
        assert await written_together(conn, "ticket", t.ticket_id, done["seq"]) == (
            "ticket.cancelled"
        )
        before = await stored(conn)
    again = await ops_call(rig, "ADMIN", "POST", f"tickets/{t.code}/cancel")
    expect_error(again, 409, "wrong_status")
    async with rig.pool.connection() as conn:
        assert await stored(conn) == before


async def test_a_ticket_block_shows_in_its_history(rig: Rig) -> None:
    """The block list entry is audited as the ticket, so the ticket's history shows it.
    Ids only: the same requests ran before issue 15, where the history lacked the block."""
    fid, t = rig.fest.festival_id, rig.fest.tickets[1].ticket_id
    base = f"/v1/ops/festivals/{fid}/tickets/{t}"
    ops = await rig.ops("SECURITY")
    resp = await rig.client.post(f"{base}/block", json={"reason": "stolen"}, headers=ops)
    assert resp.status_code == 200, resp.text
    history = (await rig.client.get(base, headers=ops)).json()
    assert [a["action"] for a in history["audit"]] == ["ticket.issue", "ticket.block"]
    assert history["audit"][-1]["new_value"]["reason"] == "stolen"


async def test_block_and_unblock_a_ticket_by_code(rig: Rig) -> None:
    t = rig.fest.tickets[0]
    blocked = await ops_ok(rig, "SECURITY", "POST", f"tickets/{t.code}/block", json={"reason": "x"})
    assert (blocked["blocked"], blocked["block_reason"]) == (True, "x")
    async with rig.pool.connection() as conn:
        assert await written_together(conn, "ticket", t.ticket_id, blocked["seq"]) == (
            "ticket.block"
        )
        before = await stored(conn)
    again = await ops_call(rig, "SECURITY", "POST", f"tickets/{t.code}/block", json={"reason": "y"})
    expect_error(again, 409, "already_blocked")
    async with rig.pool.connection() as conn:
        assert await stored(conn) == before  # the first reason stands
    unblocked = await ops_ok(rig, "SECURITY", "POST", f"tickets/{t.code}/unblock")
    assert unblocked["blocked"] is False and unblocked["seq"] == blocked["seq"] + 1
    async with rig.pool.connection() as conn:
        assert await written_together(conn, "ticket", t.ticket_id, unblocked["seq"]) == (
            "ticket.unblock"
        )
    expect_error(await ops_call(rig, "SECURITY", "POST", f"tickets/{t.code}/unblock"), 409,
                 "not_blocked")  # fmt: skip
    found = await ops_ok(rig, "SECURITY", "GET", f"tickets/{t.code}")
    assert [a["action"] for a in found["audit"]] == ["ticket.issue", "ticket.block",
                                                     "ticket.unblock"]  # fmt: skip


async def test_transfer_gives_a_new_code_once_and_the_old_still_names_the_ticket(
    rig: Rig,
) -> None:
    t = rig.fest.tickets[2]
    body = {"holder_ref": "crm:42"}
    done = await ops_ok(rig, "ORGANIZER", "POST", f"tickets/{t.code}/transfer", json=body)
    assert done["code"] != t.code and done["code_version"] == 1
    assert done["holder_ref"] == "crm:42"
    async with rig.pool.connection() as conn:
        assert await written_together(conn, "ticket", t.ticket_id, done["seq"]) == (
            "ticket.transfer"
        )
    # Ops may still type the old code to find the ticket; the answer never repeats a code.
    by_old = await ops_ok(rig, "SECURITY", "GET", f"tickets/{t.code}")
    assert by_old["ticket"]["code_version"] == 1 and "code" not in by_old["ticket"]
    by_new = await ops_ok(rig, "SECURITY", "GET", f"tickets/{done['code']}")
    assert by_new["ticket"]["id"] == str(t.ticket_id)


async def test_an_outside_ticket_transfers_to_a_strong_code_not_a_weak_one(rig: Rig) -> None:
    t = rig.fest.opaque_tickets[0]
    path = f"tickets/{t.code}/transfer"
    async with rig.pool.connection() as conn:
        before = await stored(conn)
    weak = await ops_call(rig, "ADMIN", "POST", path, json={"code": "123456"})
    expect_error(weak, 422, "invalid_request")
    assert "too weak" in weak.json()["detail"]
    async with rig.pool.connection() as conn:
        assert await stored(conn) == before
    strong = tickets.new_outside_code()
    done = await ops_ok(rig, "ADMIN", "POST", path, json={"code": strong})
    assert done["code"] == strong and done["code_kind"] == "outside"
    # The old outside code is gone: it no longer names any ticket.
    expect_error(await ops_call(rig, "ADMIN", "GET", f"tickets/{t.code}"), 404, "not_found")
    risky = {"code": "654321", "accept_weak_code": True}
    assert (await ops_ok(rig, "ADMIN", "POST", f"tickets/{strong}/transfer", json=risky))["code"]


async def test_refund_follows_the_lifecycle(rig: Rig) -> None:
    t = rig.fest.tickets[0]
    async with rig.pool.connection() as conn:
        before = await stored(conn)
    sold = await ops_call(rig, "ORGANIZER", "POST", f"tickets/{t.code}/refund")
    expect_error(sold, 409, "wrong_status")
    assert "only a cancelled ticket is refunded" in sold.json()["detail"]
    async with rig.pool.connection() as conn:
        assert await stored(conn) == before
    await ops_ok(rig, "ORGANIZER", "POST", f"tickets/{t.code}/cancel")
    done = await ops_ok(rig, "ORGANIZER", "POST", f"tickets/{t.code}/refund")
    assert done["status"] == "REFUNDED"
    async with rig.pool.connection() as conn:
        assert await written_together(conn, "ticket", t.ticket_id, done["seq"]) == (
            "ticket.refunded"
        )


async def test_bad_ticket_requests_get_a_code_and_store_nothing(rig: Rig) -> None:
    fest = rig.fest
    async with rig.pool.connection() as conn:
        for _ in range(2):
            await tickets.issue_ticket(
                conn, fest.festival_id, category_id=fest.category_id, actor="t",
                holder_ref="family 7",
            )  # fmt: skip
    cancelled, blocked, sold = (t.code for t in fest.tickets)
    await ops_ok(rig, "ADMIN", "POST", f"tickets/{cancelled}/cancel")
    await ops_ok(rig, "ADMIN", "POST", f"tickets/{blocked}/block")
    async with rig.pool.connection() as conn:
        before = await stored(conn)
    cases: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
        ("GET", "tickets/no-such-ticket", None, 404, "not_found"),
        ("GET", f"tickets/{quote('family 7')}", None, 422, "ambiguous"),
        ("GET", "tickets/" + "x" * 501, None, 422, "invalid_request"),
        ("POST", f"tickets/{cancelled}/transfer", {}, 409, "wrong_status"),
        ("POST", f"tickets/{cancelled}/cancel", None, 409, "wrong_status"),
        ("POST", f"tickets/{blocked}/block", {"reason": "again"}, 409, "already_blocked"),
        ("POST", f"tickets/{sold}/unblock", None, 409, "not_blocked"),
        ("POST", f"tickets/{sold}/transfer", {"code": "ABCDEFGHJKMNPQRSTVWXYZ2345"}, 422,
         "invalid_request"),  # a signed ticket gets a signed code
        ("POST", f"tickets/{sold}/transfer", {"holder": "x"}, 422, "invalid_request"),
        ("POST", f"tickets/{sold}/block", {"reason": "r" * 201}, 422, "invalid_request"),
    ]  # fmt: skip
    for method, path, body, status, code in cases:
        expect_error(await ops_call(rig, "ADMIN", method, path, json=body), status, code)
    nowhere = await rig.client.get(
        f"/v1/ops/festivals/nowhere/tickets/{sold}", headers=await rig.ops("ADMIN")
    )
    expect_error(nowhere, 404, "not_found")
    async with rig.pool.connection() as conn:
        assert await stored(conn) == before
    assert (await ops_ok(rig, "ADMIN", "GET", f"tickets/{sold}"))["ticket"]["status"] == "SOLD"
