"""A NUL character in ops or enrol input is a 422 from the request's own check (issue 14).

PostgreSQL text cannot hold a NUL, so every request string is `sync.protocol.PgText`;
the answer names the field, which is how these tests tell the precise check from the net
under it (a psycopg DataError also answers 422, tested last on a bare app).
"""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI
from psycopg import DataError

from central.api import errors
from central.enrol import create_enrol_code
from tests.central.sync_helpers import PROTO, Dev, Rig, expect_error


def _refused(resp: httpx.Response, field: str) -> None:
    """A 422 naming `field`: the model's NUL check, not the database's refusal."""
    expect_error(resp, 422, "invalid_request")
    assert field in resp.json()["detail"], resp.text


async def _gap_conflict(rig: Rig, dev: Dev) -> str:
    """Push seqs 1 and 3: a sequence gap; its conflict id."""
    await rig.push(dev, [rig.event(dev, "log", "info", seq=s) for s in (1, 3)])
    resp = await rig.client.get(
        f"/v1/ops/festivals/{rig.fest.festival_id}/conflicts", headers=await rig.ops("ADMIN")
    )
    (conflict,) = resp.json()
    return str(conflict["id"])


async def test_a_nul_in_a_conflict_filter_is_a_422(rig: Rig) -> None:
    url = f"/v1/ops/festivals/{rig.fest.festival_id}/conflicts?kind=%00"
    _refused(await rig.client.get(url, headers=await rig.ops("ADMIN")), "kind")


async def test_a_nul_in_a_block_reason_is_a_422_and_blocks_nothing(rig: Rig) -> None:
    t = rig.fest.tickets[0].ticket_id
    url = f"/v1/ops/festivals/{rig.fest.festival_id}/tickets/{t}/block"
    resp = await rig.client.post(url, json={"reason": "fraud\x00"}, headers=await rig.ops("ADMIN"))
    _refused(resp, "reason")
    assert await rig.scalar("SELECT count(*) FROM block_list") == 0


async def test_a_nul_in_a_resolve_note_is_a_422_and_resolves_nothing(rig: Rig) -> None:
    conflict = await _gap_conflict(rig, await rig.enrol("gate"))
    url = f"/v1/ops/festivals/{rig.fest.festival_id}/conflicts/{conflict}/resolve"
    ops = await rig.ops("ADMIN")
    _refused(await rig.client.post(url, json={"note": "ok\x00"}, headers=ops), "note")
    assert await rig.scalar("SELECT count(*) FROM conflict WHERE resolved_at IS NULL") == 1
    assert (await rig.client.post(url, json={"note": "ok"}, headers=ops)).status_code == 200


async def test_a_nul_in_an_enrol_name_is_a_422_and_leaves_the_code_unused(rig: Rig) -> None:
    async with rig.pool.connection() as conn:
        code = await create_enrol_code(
            conn, festival_id=rig.fest.festival_id, role="topup", zone_id=None,
            vendor_id=None, ttl_s=600,
        )  # fmt: skip
    bad = {"code": code, "name": "till\x00 1"}
    _refused(await rig.client.post("/v1/devices/enroll", json=bad, headers=PROTO), "name")
    assert await rig.scalar("SELECT count(*) FROM enrol_code WHERE used_at IS NOT NULL") == 0
    good = {"code": code, "name": "till 1"}
    resp = await rig.client.post("/v1/devices/enroll", json=good, headers=PROTO)
    assert resp.status_code == 200, resp.text


async def test_a_nul_in_a_path_id_is_a_422(rig: Rig) -> None:
    base = f"/v1/ops/festivals/{rig.fest.festival_id}"
    ops = await rig.ops("ADMIN")
    for path in ("tickets/%00", "accounts/%00/ledger", "devices/%00/log"):
        expect_error(await rig.client.get(f"{base}/{path}", headers=ops), 422, "invalid_request")
    resp = await rig.client.get("/v1/ops/festivals/%00/devices", headers=ops)
    expect_error(resp, 422, "invalid_request")


async def test_a_value_the_database_refuses_is_a_logged_422(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The net under the models' checks: a DataError from a request is its fault, not 500."""
    app = FastAPI()
    errors.install(app)

    @app.get("/refused")
    async def refused() -> None:
        raise DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")

    transport = httpx.ASGITransport(app=app)
    with caplog.at_level(logging.WARNING, logger=errors.__name__):
        async with httpx.AsyncClient(transport=transport, base_url="http://central") as client:
            resp = await client.get("/refused")
    expect_error(resp, 422, "invalid_request")
    assert "NUL" in caplog.text
