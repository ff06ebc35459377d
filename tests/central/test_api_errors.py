"""Every bad request gets a 4xx ErrorBody and stores nothing; the role matrix holds."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from central import enrol, users
from central.app import create_app
from central.auth import ROLE_ACTIONS, Action, OpsRole
from central.pg import connect_pool
from config.central import CentralConfig
from sync.protocol import MAX_BATCH, ErrorBody
from tests.central.sync_helpers import PROTO, Rig


async def _stored(rig: Rig) -> tuple[Any, ...]:
    return (
        await rig.scalar("SELECT count(*) FROM device_event"),
        await rig.scalar("SELECT count(*) FROM conflict"),
        await rig.scalar("SELECT coalesce(max(head), 0) FROM feed_head"),
    )


def _error(resp: Any, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    body = ErrorBody.model_validate(resp.json())
    assert body.error == code


async def test_bad_pushes_are_refused_and_store_nothing(rig: Rig) -> None:
    gate, other = await rig.enrol("gate"), await rig.enrol("gate")
    t = rig.fest.tickets[0].ticket_id
    before = await _stored(rig)
    good = rig.entry(gate, t)
    url = "/v1/sync/events"
    post = rig.client.post
    _error(await post(url, content=b'{"events": [', headers=gate.headers), 422, "invalid_request")
    _error(await post(url, content=b"[]", headers=gate.headers), 422, "invalid_request")
    wrong = good | {"hlc": "soon"}
    resp = await post(url, json={"events": [wrong]}, headers=gate.headers)
    _error(resp, 422, "invalid_request")
    assert "events.0.hlc" in resp.json()["detail"]
    _error(await post(url, json={"events": [good | {"extra": 1}]}, headers=gate.headers),
           422, "invalid_request")  # fmt: skip
    _error(await post(url, json={"events": [good | {"kind": "dance"}]}, headers=gate.headers),
           422, "invalid_request")  # fmt: skip
    many = [rig.entry(gate, t, seq=i + 1) for i in range(MAX_BATCH + 1)]
    _error(await post(url, json={"events": many}, headers=gate.headers), 413, "batch_too_large")
    huge = {"events": [good], "pad": "x" * 20_000_000}
    _error(await post(url, content=json.dumps(huge).encode(), headers=gate.headers),
           413, "payload_too_large")  # fmt: skip
    # Credentials.
    _error(await post(url, json={"events": [good]}, headers=PROTO), 401, "unauthorized")
    bogus = {**PROTO, "Authorization": "Bearer fgd_not-a-token"}
    _error(await post(url, json={"events": [good]}, headers=bogus), 401, "unauthorized")
    _error(await post(url, json={"events": [good]}, headers=other.headers), 403, "device_mismatch")
    elsewhere = rig.entry(gate, t) | {"payload": {"ticket_id": str(t), "festival_id": str(t)}}
    _error(await post(url, json={"events": [elsewhere]}, headers=gate.headers),
           403, "device_mismatch")  # fmt: skip
    ops = await rig.ops("ADMIN")
    _error(await post(url, json={"events": [good]}, headers=ops), 403, "forbidden")
    # Protocol version.
    no_proto = {"Authorization": gate.headers["Authorization"]}
    _error(await post(url, json={"events": [good]}, headers=no_proto), 400, "protocol_version")
    v2 = {**gate.headers, "Festgate-Protocol": "2"}
    _error(await post(url, json={"events": [good]}, headers=v2), 400, "protocol_version")
    _error(await rig.client.get("/v1/nowhere", headers=PROTO), 404, "not_found")
    assert await _stored(rig) == before


async def test_a_revoked_device_is_refused_at_once(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    t = rig.fest.tickets[0].ticket_id
    assert (await rig.push(gate, [rig.entry(gate, t)])).status_code == 200
    fid = rig.fest.festival_id
    resp = await rig.client.post(
        f"/v1/ops/festivals/{fid}/devices/{gate.device_id}/revoke",
        headers=await rig.ops("SECURITY"),
    )
    assert resp.status_code == 200
    before = await _stored(rig)
    _error(await rig.push(gate, [rig.entry(gate, t)]), 401, "token_revoked")
    _error(await rig.client.get("/v1/sync/changes", headers=gate.headers), 401, "token_revoked")
    assert await _stored(rig) == before


async def test_enrol_codes_are_one_time(rig: Rig) -> None:
    fid = rig.fest.festival_id
    resp = await rig.client.post(
        f"/v1/ops/festivals/{fid}/enrol-codes",
        json={"role": "gate", "zone": "main GATE"},  # by name, in any case
        headers=await rig.ops("STAFF"),
    )
    assert resp.status_code == 200, resp.text
    code = resp.json()["code"]
    first = await rig.client.post("/v1/devices/enroll", json={"code": code.lower()}, headers=PROTO)
    assert first.status_code == 200
    assert first.json()["zone_id"] == str(rig.fest.zone_id)
    assert first.json()["token"].startswith("fgd_")
    again = await rig.client.post("/v1/devices/enroll", json={"code": code}, headers=PROTO)
    _error(again, 403, "enrol_code_invalid")
    # A gate without a zone makes no sense.
    bad = await rig.client.post(
        f"/v1/ops/festivals/{fid}/enrol-codes", json={"role": "gate"},
        headers=await rig.ops("STAFF"),
    )  # fmt: skip
    _error(bad, 422, "invalid_request")


def _endpoints(
    rig: Rig, gate_id: str, code_id: str
) -> dict[Action, tuple[str, str, dict[str, Any] | None]]:
    """One ops endpoint per action (method, path, json body)."""
    base = f"/v1/ops/festivals/{rig.fest.festival_id}"
    named = f"/v1/ops/festivals/{rig.fest.slug}"  # tickets, wristbands, conflicts: by name
    t = rig.fest.tickets[2].code  # as scanned
    a = rig.fest.tag_uids[0]
    c = uuid.uuid4()  # no such conflict: the role check answers first
    new_user = {"name": "newbie", "role": "STAFF", "festival": rig.fest.slug}
    return {
        Action.VIEW_CONFLICTS: ("GET", f"{named}/conflicts", None),
        Action.RESOLVE_CONFLICT: ("POST", f"{named}/conflicts/{c}/resolve", {"note": "n"}),
        Action.VIEW_DEVICES: ("GET", f"{base}/devices", None),
        Action.REVOKE_DEVICE: ("POST", f"{base}/devices/{gate_id}/revoke", None),
        Action.CREATE_ENROL_CODE: ("POST", f"{base}/enrol-codes", {"role": "topup"}),
        Action.VIEW_OCCUPANCY: ("GET", f"{base}/zones/occupancy", None),
        Action.VIEW_ENTRIES: ("GET", f"{base}/entries", None),
        Action.VIEW_SALES: ("GET", f"{base}/sales", None),
        Action.VIEW_TICKET: ("GET", f"{named}/tickets/{t}", None),
        Action.VIEW_LEDGER: ("GET", f"{named}/wristbands/{a}", None),
        Action.VIEW_DEVICE_LOG: ("GET", f"{base}/devices/{gate_id}/log", None),
        Action.CANCEL_TICKET: ("POST", f"{named}/tickets/{t}/cancel", None),
        Action.BLOCK_TICKET: ("POST", f"{named}/tickets/{t}/block", {"reason": "r"}),
        Action.TRANSFER_TICKET: ("POST", f"{named}/tickets/{t}/transfer", {}),
        Action.REFUND_TICKET: ("POST", f"{named}/tickets/{t}/refund", None),
        Action.BLOCK_TAG: ("POST", f"{named}/wristbands/{a}/block", None),
        Action.TOPUP: ("POST", f"{named}/wristbands/{a}/topup", {"amount": 100}),
        Action.REFUND: ("POST", f"{named}/wristbands/{a}/refund", {"amount": 1}),
        Action.VIEW_FESTIVAL: ("GET", named, None),
        # Refused (409) while the gate is live: the festival stays for the other checks.
        Action.DELETE_FESTIVAL: ("DELETE", named, None),
        Action.VIEW_VENDORS: ("GET", f"{named}/vendors", None),
        Action.OPEN_VENDOR: ("POST", f"{named}/vendors/Main bar/close", None),
        Action.VIEW_KEYS: ("GET", f"{named}/keys", None),
        Action.ROTATE_KEY: ("POST", f"{named}/keys/rotate", None),
        Action.REVOKE_KEY: ("POST", f"{named}/keys/1/revoke", None),
        Action.VIEW_ENROL_CODES: ("GET", f"{named}/enrol-codes", None),
        Action.REVOKE_ENROL_CODE: ("POST", f"{named}/enrol-codes/{code_id}/revoke", None),
        Action.VIEW_USERS: ("GET", "/v1/ops/users", None),
        Action.ADD_USER: ("POST", "/v1/ops/users", new_user),
        Action.REVOKE_USER: ("POST", "/v1/ops/users/victim/revoke", None),
    }


async def test_role_matrix(rig: Rig) -> None:
    """Each role gets exactly its table's actions; devices and other festivals get none."""
    gate = await rig.enrol("gate")
    async with rig.pool.connection() as conn:
        code = await enrol.issue_enrol_code(
            conn, rig.fest.festival_id, role="topup", zone=None, vendor=None, ttl_s=600,
            actor="test",
        )  # fmt: skip
        await users.add_ops_user(
            conn, name="victim", role=OpsRole.STAFF, actor="test", festival_id=rig.fest.festival_id
        )
    endpoints = _endpoints(rig, gate.device_id, code.id)
    assert set(endpoints) == set(Action) - {Action.SYNC}
    assert Action.TOPUP not in ROLE_ACTIONS[OpsRole.SECURITY]
    assert Action.CANCEL_TICKET not in ROLE_ACTIONS[OpsRole.CASHIER]
    assert {r for r, acts in ROLE_ACTIONS.items() if Action.ADD_USER in acts} == {"ADMIN"}
    assert {r for r, acts in ROLE_ACTIONS.items() if Action.DELETE_FESTIVAL in acts} == {"ADMIN"}
    for role, actions in ROLE_ACTIONS.items():
        headers = await rig.ops(role)
        for action, (method, path, body) in endpoints.items():
            if action is Action.REVOKE_DEVICE:
                continue  # checked last: it would lock the gate out of the other checks
            resp = await rig.client.request(method, path, json=body, headers=headers)
            if action in actions:
                assert resp.status_code != 403, (role, action, resp.text)
                assert resp.status_code < 500, (role, action, resp.text)
            else:
                _error(resp, 403, "forbidden")
    for method, path, body in endpoints.values():
        resp = await rig.client.request(method, path, json=body, headers=gate.headers)
        _error(resp, 403, "forbidden")
    # An admin of another festival: nothing of this one (its users' own list aside, which
    # tests/central/test_ops_admin.py checks).
    other = await rig.festival_scoped_ops_headers("ADMIN")
    for action, (method, path, body) in endpoints.items():
        if action in (Action.VIEW_USERS, Action.REVOKE_USER):
            continue
        _error(await rig.client.request(method, path, json=body, headers=other), 403, "forbidden")
    method, path, body = endpoints[Action.REVOKE_DEVICE]
    _error(
        await rig.client.request(method, path, headers=await rig.ops("CASHIER")), 403, "forbidden"
    )
    resp = await rig.client.request(method, path, headers=await rig.ops("SECURITY"))
    assert resp.status_code == 200


async def test_openapi_is_published_under_v1(rig: Rig) -> None:
    resp = await rig.client.get("/v1/openapi.json")
    assert resp.status_code == 200
    spec = resp.json()
    assert "/v1/sync/events" in spec["paths"]
    assert "/v1/sync/changes" in spec["paths"]
    assert "PushRequest" in spec["components"]["schemas"]
    assert all(p.startswith("/v1/") for p in spec["paths"])


async def test_a_busy_pool_is_503_with_retry_after(pg_dsn: str, rig: Rig) -> None:
    """Every connection busy for the pool's whole wait: central is overloaded, say so (not
    500), and when to retry; the request that waited stores nothing."""
    pool = await connect_pool(pg_dsn, min_size=1, max_size=1, checkout_timeout_s=0.2)
    app = create_app(CentralConfig(), pool=pool)
    ops = await rig.ops("ADMIN")
    try:
        async with app.router.lifespan_context(app), pool.connection():  # the only one, held
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://central") as c:
                url = f"/v1/ops/festivals/{rig.fest.festival_id}/devices"
                resp = await c.get(url, headers=ops)
        _error(resp, 503, "busy")
        assert resp.headers["Retry-After"] == "1"
    finally:
        await pool.close()
