"""A conflict's id in the API is its random ref: it says nothing of other festivals (issue 14)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from central.enrol import create_enrol_code
from central.sample import SampleFestival
from tests.central.sync_helpers import PROTO, Dev, Rig, expect_error


async def _enrol_elsewhere(rig: Rig, fest: SampleFestival) -> Dev:
    """A gate of another festival, enrolled through the same API."""
    async with rig.pool.connection() as conn:
        code = await create_enrol_code(
            conn, festival_id=fest.festival_id, role="gate", zone_id=fest.zone_id,
            vendor_id=None, ttl_s=600,
        )  # fmt: skip
    resp = await rig.client.post("/v1/devices/enroll", json={"code": code}, headers=PROTO)
    assert resp.status_code == 200, resp.text
    return Dev(resp.json()["device_id"], resp.json()["token"], "gate")


async def _gap(rig: Rig, dev: Dev) -> None:
    """Seqs 1 and 3 from `dev`: a sequence-gap conflict in its festival."""
    resp = await rig.push(dev, [rig.event(dev, "log", "info", seq=s) for s in (1, 3)])
    assert resp.status_code == 200, resp.text


async def test_conflict_ids_are_refs_scoped_to_their_festival(
    rig: Rig, festival: Callable[..., Awaitable[SampleFestival]]
) -> None:
    other = await festival()
    for _ in range(3):  # other festivals' conflicts, made first
        await _gap(rig, await _enrol_elsewhere(rig, other))
    await _gap(rig, await rig.enrol("gate"))
    ops = await rig.ops("ADMIN")
    base = f"/v1/ops/festivals/{rig.fest.festival_id}"
    (mine,) = (await rig.client.get(f"{base}/conflicts", headers=ops)).json()
    key, ref = await _keys(rig, rig.fest.festival_id)
    assert key == 4  # the internal key counts every festival's conflicts ...
    assert mine["id"] == str(ref)  # ... the id shown is the random ref
    assert uuid.UUID(mine["id"]).version == 4
    assert key not in mine.values()
    # Another festival's conflict does not exist here; an integer is no conflict id.
    _, theirs = await _keys(rig, other.festival_id)

    async def resolve(conflict_id: object) -> httpx.Response:
        url = f"{base}/conflicts/{conflict_id}/resolve"
        return await rig.client.post(url, json={"note": "checked"}, headers=ops)

    expect_error(await resolve(theirs), 404, "not_found")
    expect_error(await resolve(key), 422, "invalid_request")
    assert await rig.scalar("SELECT count(*) FROM conflict WHERE resolved_at IS NULL") == 4
    resp = await resolve(mine["id"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == mine["id"]
    assert resp.json()["resolved_by"] is not None


async def _keys(rig: Rig, festival_id: uuid.UUID) -> tuple[Any, ...]:
    """The internal key and the ref of a festival's newest conflict."""
    async with rig.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, ref FROM conflict WHERE festival_id = %s ORDER BY id DESC LIMIT 1",
            (festival_id,),
        )
        rec = await cur.fetchone()
    assert rec is not None
    return tuple(rec)
