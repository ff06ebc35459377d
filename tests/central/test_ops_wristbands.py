"""Ops act on one wristband through the API, naming it by its tag UID (issue 15)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.central.ops_state import ops_call, ops_ok, stored, written_together
from tests.central.sync_helpers import Rig, expect_error


@pytest.fixture
def rig_festival() -> dict[str, Any]:
    return {"wristbands": 2, "opening_balance": 5000}


def _colons(uid: str) -> str:
    """A tag UID as a phone app shows it: 04:46:50:..."""
    return ":".join(uid[i : i + 2] for i in range(0, len(uid), 2))


async def test_a_wristband_shows_its_ledger_with_names_by_tag_uid(rig: Rig) -> None:
    bar = await rig.enrol("bar", name="bar-1")
    a, uid = rig.fest.account_ids[0], rig.fest.tag_uids[0]
    assert (await rig.push(bar, [rig.sale(bar, a, 450, at_ms=100)])).status_code == 200
    found = await ops_ok(rig, "CASHIER", "GET", f"wristbands/{_colons(uid).upper()}")
    account = found["account"]
    assert (account["id"], account["balance"], account["currency"]) == (str(a), 4550, "EUR")
    assert (account["blocked"], account["held"], account["listed"]) == (False, False, False)
    assert [
        (e["type"], e["amount"], e["balance_before"], e["balance_after"], e["device"], e["vendor"])
        for e in found["ledger"]
    ] == [("TOPUP", 5000, 0, 5000, None, None), ("PAYMENT", -450, 5000, 4550, "bar-1", "Main bar")]
    sold = datetime.fromisoformat(found["ledger"][1]["at"])
    assert round(sold.timestamp() * 1000) == rig.now_ms + 100
    assert found["timezone"] == "Europe/Paris" and sold.utcoffset() is not None
    assert await ops_ok(rig, "CASHIER", "GET", f"wristbands/{a}") == found  # by account id
    # The path of before issue 15 still answers, with the same shape.
    assert await ops_ok(rig, "CASHIER", "GET", f"accounts/{uid}/ledger") == found


async def test_topup_and_refund_write_ledger_feed_and_audit_together(rig: Rig) -> None:
    a, uid = rig.fest.account_ids[0], rig.fest.tag_uids[0]
    topped = await ops_ok(rig, "CASHIER", "POST", f"wristbands/{uid}/topup", json={"amount": 1000})
    assert topped["balance"] == 6000
    async with rig.pool.connection() as conn:
        assert await written_together(conn, "cashless_account", a, topped["seq"]) == (
            "account.topup"
        )
        before = await stored(conn)
    too_much = {"amount": 6001}
    beyond = await ops_call(rig, "CASHIER", "POST", f"wristbands/{uid}/refund", json=too_much)
    expect_error(beyond, 409, "insufficient_balance")
    assert "holds 60.00 EUR, less than 60.01 EUR" in beyond.json()["detail"]
    async with rig.pool.connection() as conn:
        assert await stored(conn) == before
    paid = await ops_ok(rig, "CASHIER", "POST", f"wristbands/{uid}/refund", json={"amount": 6000})
    assert paid["balance"] == 0
    async with rig.pool.connection() as conn:
        assert await written_together(conn, "cashless_account", a, paid["seq"]) == (
            "account.refund"
        )
    ledger = (await ops_ok(rig, "CASHIER", "GET", f"wristbands/{uid}"))["ledger"]
    assert [(e["type"], e["balance_after"]) for e in ledger] == [
        ("TOPUP", 5000), ("TOPUP", 6000), ("REFUND", 0),
    ]  # fmt: skip


async def test_block_puts_the_tag_on_the_block_list_and_unblock_takes_it_off(rig: Rig) -> None:
    a, uid = rig.fest.account_ids[0], rig.fest.tag_uids[0]
    done = await ops_ok(rig, "SECURITY", "POST", f"wristbands/{uid}/block", json={"reason": "lost"})
    assert (done["blocked"], done["listed"], done["block_reason"]) == (True, True, "lost")
    tag = done["tag_hash"]
    assert await rig.scalar("SELECT reason FROM block_list WHERE ref = %s", tag) == "lost"
    async with rig.pool.connection() as conn:
        # The block list entry, the account's blocked row and the audit: one transaction.
        assert await written_together(conn, "tag", tag, done["seq"]) == "tag.block"
        before = await stored(conn)
    again = await ops_call(rig, "SECURITY", "POST", f"wristbands/{uid}/block")
    expect_error(again, 409, "already_blocked")
    async with rig.pool.connection() as conn:
        assert await stored(conn) == before
    freed = await ops_ok(rig, "SECURITY", "POST", f"wristbands/{uid}/unblock")
    assert (freed["blocked"], freed["listed"]) == (False, False)
    async with rig.pool.connection() as conn:  # the entry's delete and the account: one go
        assert await written_together(conn, "tag", tag, freed["seq"]) == "tag.unblock"
    expect_error(await ops_call(rig, "SECURITY", "POST", f"wristbands/{uid}/unblock"), 409,
                 "not_blocked")  # fmt: skip
    audit = (await ops_ok(rig, "ADMIN", "GET", f"wristbands/{a}"))["audit"]
    assert [e["action"] for e in audit] == [
        "account.create", "tag.block", "tag.unblock", "account.unblock",
    ]  # fmt: skip


async def test_a_debt_hold_outlasts_an_unblock_until_a_topup(rig: Rig) -> None:
    b1, b2 = await rig.enrol("bar"), await rig.enrol("bar")
    a, uid = rig.fest.account_ids[1], rig.fest.tag_uids[1]
    await rig.push(b1, [rig.sale(b1, a, 3000, at_ms=100)])
    await rig.push(b2, [rig.sale(b2, a, 2500, at_ms=200)])  # both offline: 500 short
    held = await ops_ok(rig, "CASHIER", "GET", f"wristbands/{uid}")
    assert (held["account"]["blocked"], held["account"]["held"]) == (True, True)
    refused = await ops_call(rig, "CASHIER", "POST", f"wristbands/{uid}/unblock")
    expect_error(refused, 409, "held_for_debt")
    assert "5.00 EUR" in refused.json()["detail"]
    await ops_ok(rig, "SECURITY", "POST", f"wristbands/{uid}/block")
    still = await ops_ok(rig, "SECURITY", "POST", f"wristbands/{uid}/unblock")
    assert (still["blocked"], still["held"], still["listed"]) == (True, True, False)
    cleared = await ops_ok(rig, "CASHIER", "POST", f"wristbands/{uid}/topup", json={"amount": 500})
    assert (cleared["blocked"], cleared["held"], cleared["debt"]) == (False, False, 0)


async def test_a_sale_made_offline_after_a_block_is_a_conflict(rig: Rig) -> None:
    bar = await rig.enrol("bar")
    a, uid = rig.fest.account_ids[0], rig.fest.tag_uids[0]
    seq = (await ops_ok(rig, "SECURITY", "POST", f"wristbands/{uid}/block"))["seq"]
    # A minute after the rig started: after the block, whatever this test's pace.
    late = rig.sale(bar, a, 100, at_ms=60_000, catalog_seq=seq - 2)
    assert (await rig.push(bar, [late])).status_code == 200
    listed = await ops_call(rig, "SECURITY", "GET", "conflicts", params={"wristband": uid})
    (found,) = listed.json()
    assert (found["kind"], found["subject_id"]) == ("stale_catalog", str(a))


async def test_bad_wristband_requests_get_a_code_and_store_nothing(rig: Rig) -> None:
    uid = rig.fest.tag_uids[0]
    async with rig.pool.connection() as conn:
        before = await stored(conn)
    cases: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
        ("GET", "wristbands/04ffffffffffff", None, 404, "not_found"),
        ("GET", "wristbands/not-a-uid", None, 404, "not_found"),
        ("POST", f"wristbands/{uid}/topup", {"amount": 0}, 422, "invalid_request"),
        ("POST", f"wristbands/{uid}/topup", {"amount": 10**9 + 1}, 422, "invalid_request"),
        ("POST", f"wristbands/{uid}/topup", None, 422, "invalid_request"),
        ("POST", f"wristbands/{uid}/refund", {"amount": 5001}, 409, "insufficient_balance"),
        ("POST", f"wristbands/{uid}/unblock", None, 409, "not_blocked"),
        ("POST", f"wristbands/{uid}/block", {"reason": "x", "why": 1}, 422, "invalid_request"),
    ]
    for method, path, body, status, code in cases:
        expect_error(await ops_call(rig, "ADMIN", method, path, json=body), status, code)
    async with rig.pool.connection() as conn:
        assert await stored(conn) == before
    assert (await ops_ok(rig, "ADMIN", "GET", f"wristbands/{uid}"))["account"]["balance"] == 5000
