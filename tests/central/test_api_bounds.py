"""What a device may send is bounded where it is declared: 4xx past the bound, never 500,
and the bound is in the OpenAPI document."""

from __future__ import annotations

from sync.protocol import MAX_BIGINT, ErrorBody
from tests.central.sync_helpers import Rig

TOO_BIG = str(MAX_BIGINT + 1)  # 2**63: past every bigint column


def _error(status: int, body: bytes) -> str:
    assert 400 <= status < 500, body
    return ErrorBody.model_validate_json(body).error


async def test_a_push_that_is_not_json_is_415(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    body = {"events": [rig.entry(gate, rig.fest.tickets[0].ticket_id)]}
    url = "/v1/sync/events"
    for media in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx"):
        resp = await rig.client.post(url, json=body, headers=gate.headers | {"Content-Type": media})
        assert resp.status_code == 415, resp.text
        assert _error(resp.status_code, resp.content) == "unsupported_media_type"
    assert await rig.scalar("SELECT count(*) FROM device_event") == 0
    for media in ("application/json", "Application/JSON; charset=utf-8"):
        resp = await rig.client.post(url, json=body, headers=gate.headers | {"Content-Type": media})
        assert resp.status_code == 200, resp.text


async def test_counts_and_cursors_past_bigint_are_4xx(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    body = {"events": [rig.entry(gate, rig.fest.tickets[0].ticket_id)]}
    pending = gate.headers | {"Festgate-Pending": TOO_BIG}
    resp = await rig.client.post("/v1/sync/events", json=body, headers=pending)
    assert _error(resp.status_code, resp.content) == "invalid_request"
    resp = await rig.client.get(f"/v1/sync/changes?after={TOO_BIG}", headers=gate.headers)
    assert _error(resp.status_code, resp.content) == "invalid_request"
    assert await rig.scalar("SELECT count(*) FROM device_event") == 0
    at_bound = gate.headers | {"Festgate-Pending": str(MAX_BIGINT)}
    assert (
        await rig.client.post("/v1/sync/events", json=body, headers=at_bound)
    ).status_code == 200
    resp = await rig.client.get(f"/v1/sync/changes?after={MAX_BIGINT}", headers=gate.headers)
    assert resp.status_code == 200, resp.text


async def test_the_bounds_are_in_openapi(rig: Rig) -> None:
    paths = (await rig.client.get("/v1/openapi.json")).json()["paths"]
    params = {
        p["name"]: p["schema"]
        for op in (paths["/v1/sync/events"]["post"], paths["/v1/sync/changes"]["get"])
        for p in op["parameters"]
    }
    pending = next(s for s in params["Festgate-Pending"]["anyOf"] if s.get("type") == "integer")
    assert (pending["minimum"], pending["maximum"]) == (0, MAX_BIGINT)
    assert (params["after"]["minimum"], params["after"]["maximum"]) == (0, MAX_BIGINT)
    assert {"408", "413", "415"} <= set(paths["/v1/sync/events"]["post"]["responses"])
    assert "429" in paths["/v1/sync/snapshot"]["get"]["responses"]
