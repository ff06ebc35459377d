"""Every ticket, wristband and conflict route: its role check, and its shapes in OpenAPI."""

from __future__ import annotations

import uuid
from typing import Any

from central.auth import ROLE_ACTIONS, Action, OpsRole
from tests.central.sync_helpers import Rig, expect_error

A = Action


def _routes(rig: Rig) -> list[tuple[Action, str, str, dict[str, Any] | None]]:
    """(action, method, path, body) of every route under tickets, wristbands and conflicts."""
    base = f"/v1/ops/festivals/{rig.fest.slug}"
    t, a, c = rig.fest.tickets[0].code, rig.fest.tag_uids[0], uuid.uuid4()
    return [
        (A.VIEW_TICKET, "GET", f"{base}/tickets?find={t}", None),
        (A.VIEW_TICKET, "GET", f"{base}/tickets/{t}", None),
        (A.CANCEL_TICKET, "POST", f"{base}/tickets/{t}/cancel", None),
        (A.BLOCK_TICKET, "POST", f"{base}/tickets/{t}/block", None),
        (A.BLOCK_TICKET, "POST", f"{base}/tickets/{t}/unblock", None),
        (A.TRANSFER_TICKET, "POST", f"{base}/tickets/{t}/transfer", None),
        (A.REFUND_TICKET, "POST", f"{base}/tickets/{t}/refund", None),
        (A.VIEW_LEDGER, "GET", f"{base}/wristbands/{a}", None),
        (A.BLOCK_TAG, "POST", f"{base}/wristbands/{a}/block", None),
        (A.BLOCK_TAG, "POST", f"{base}/wristbands/{a}/unblock", None),
        (A.TOPUP, "POST", f"{base}/wristbands/{a}/topup", {"amount": 100}),
        (A.REFUND, "POST", f"{base}/wristbands/{a}/refund", {"amount": 1}),
        (A.VIEW_LEDGER, "GET", f"{base}/accounts/{a}/ledger", None),
        (A.BLOCK_TAG, "POST", f"{base}/accounts/{a}/block", None),
        (A.TOPUP, "POST", f"{base}/accounts/{a}/topup", {"amount": 100}),
        (A.VIEW_CONFLICTS, "GET", f"{base}/conflicts", None),
        (A.VIEW_CONFLICTS, "GET", f"{base}/conflicts/{c}", None),
        (A.RESOLVE_CONFLICT, "POST", f"{base}/conflicts/{c}/resolve", {"note": "n"}),
    ]


async def test_every_route_checks_its_action_for_every_role(rig: Rig) -> None:
    """Security may block tickets but not top up; cashiers handle wristband money, never
    tickets; transfers and ticket refunds are for admins and organizers."""
    assert (
        A.BLOCK_TICKET in ROLE_ACTIONS[OpsRole.SECURITY]
        and A.TOPUP not in ROLE_ACTIONS[OpsRole.SECURITY]
    )
    assert (
        A.TOPUP in ROLE_ACTIONS[OpsRole.CASHIER]
        and A.CANCEL_TICKET not in ROLE_ACTIONS[OpsRole.CASHIER]
    )
    assert {r for r, acts in ROLE_ACTIONS.items() if A.TRANSFER_TICKET in acts} == {
        "ADMIN", "ORGANIZER",
    }  # fmt: skip
    for role, allowed in ROLE_ACTIONS.items():
        headers = await rig.ops(role)
        for action, method, path, body in _routes(rig):
            resp = await rig.client.request(method, path, json=body, headers=headers)
            if action in allowed:
                assert resp.status_code != 403, (role, path, resp.text)
            else:
                expect_error(resp, 403, "forbidden")
    # A festival-scoped user elsewhere, and a device, get nothing here.
    other = await rig.festival_scoped_ops_headers("ADMIN")
    gate = await rig.enrol("gate")
    for _, method, path, body in _routes(rig):
        expect_error(await rig.client.request(method, path, json=body, headers=other), 403,
                     "forbidden")  # fmt: skip
        expect_error(await rig.client.request(method, path, json=body, headers=gate.headers),
                     403, "forbidden")  # fmt: skip


async def test_a_refused_role_learns_nothing_of_which_festivals_exist(rig: Rig) -> None:
    cashier = await rig.ops("CASHIER")
    for festival in (rig.fest.slug, "no-such-festival"):
        url = f"/v1/ops/festivals/{festival}/tickets/x/cancel"
        expect_error(await rig.client.post(url, headers=cashier), 403, "forbidden")


async def test_openapi_declares_the_real_shapes(rig: Rig) -> None:
    spec = (await rig.client.get("/v1/openapi.json")).json()
    paths, schemas = spec["paths"], spec["components"]["schemas"]
    ours = {p: ops for p, ops in paths.items() if p.startswith("/v1/ops/festivals/{festival}")}
    subjects = ("/tickets", "/wristbands", "/conflicts")
    assert len([p for p in ours if any(s in p for s in subjects)]) == 15
    assert not any("/accounts/" in p for p in ours)  # aliases stay out
    for path, operations in ours.items():
        for method, op in operations.items():
            answer = op["responses"]["200"]["content"]["application/json"]["schema"]
            assert answer.get("$ref") or answer.get("items", {}).get("$ref"), (method, path)
            assert {"403", "404", "409", "422"} <= set(op["responses"]), (method, path)
    assert schemas["TicketInfo"]["properties"]["id"]["format"] == "uuid"
    assert schemas["TicketInfo"]["properties"]["status"] == {
        "$ref": "#/components/schemas/TicketStatus"
    }
    assert set(schemas["ConflictKind"]["enum"]) >= {"duplicate_entry", "overdraft"}
    assert schemas["AmountRequest"]["properties"]["amount"]["exclusiveMinimum"] == 0
    params = {
        p["name"]: p for p in paths["/v1/ops/festivals/{festival}/conflicts"]["get"]["parameters"]
    }
    assert params["state"]["schema"]["enum"] == ["open", "resolved", "all"]
    assert params["open_only"]["deprecated"] is True
    conflict = paths["/v1/ops/festivals/{festival}/conflicts/{conflict_id}"]["get"]
    by_name = {p["name"]: p for p in conflict["parameters"]}
    assert by_name["conflict_id"]["schema"]["format"] == "uuid"
