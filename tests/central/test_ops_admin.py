"""Ops users by name through the API and the CLI alike (list, add with a token shown once,
revoke), and what an admin limited to one festival may see and do."""

from __future__ import annotations

import pytest

from tests.central.ops_doors import Door, refused, stored
from tests.central.sync_helpers import PROTO, Rig, expect_error


@pytest.fixture(params=["api", "cli"])
async def door(request: pytest.FixtureRequest, rig: Rig, pg_dsn: str) -> Door:
    """The API or the CLI, on the rig's database."""
    return await Door.open(request.param, rig, pg_dsn)


async def test_users_added_listed_and_revoked_by_name(door: Door) -> None:
    rig, slug = door.rig, door.rig.fest.slug
    ana = await door.ok("user add", slug, name="ana", role="SECURITY")
    assert (ana["name"], ana["role"], ana["festival"]) == ("ana", "SECURITY", slug)
    token = {**PROTO, "Authorization": f"Bearer {ana['token']}"}
    devices = f"/v1/ops/festivals/{slug}/devices"
    assert (await rig.client.get(devices, headers=token)).status_code == 200
    listed = await door.ok("user list", slug)
    assert [u["name"] for u in listed] == ["ana"] and "token" not in listed[0]
    await refused(door, "name_taken", "user add", slug, name="ANA", role="STAFF")
    await refused(door, "not_found", "user add", "no-such-fest", name="bo", role="STAFF")
    gone = await door.ok("user revoke", slug, user="Ana")
    assert gone["revoked_at"] and gone["id"] == ana["id"]
    assert await rig.scalar("SELECT action FROM audit_log ORDER BY id DESC LIMIT 1") == (
        "ops_user.revoke"
    )
    expect_error(await rig.client.get(devices, headers=token), 401, "token_revoked")
    await refused(door, "already_revoked", "user revoke", slug, user="ana")
    await refused(door, "not_found", "user revoke", slug, user="nobody")
    # A revoked user's name may be given again; the name then finds the live user.
    again = await door.ok("user add", slug, name="ana", role="CASHIER")
    assert (await door.ok("user revoke", slug, user="ana"))["id"] == again["id"]


async def test_an_admin_of_one_festival_manages_its_users_only(rig: Rig) -> None:
    ours = await rig.ops("ADMIN")
    theirs = await rig.festival_scoped_ops_headers("ADMIN")
    body = {"name": "cy", "role": "STAFF", "festival": rig.fest.slug}
    added = await rig.client.post("/v1/ops/users", json=body, headers=ours)
    assert added.status_code == 200, added.text
    before = await stored(rig)
    for forbidden in ({**body, "festival": None}, body):  # every festival; another festival
        expect_error(await rig.client.post("/v1/ops/users", json=forbidden | {"name": "dee"},
                                           headers=theirs), 403, "forbidden")  # fmt: skip
    # To an admin of another festival, this festival's users do not exist.
    expect_error(await rig.client.post("/v1/ops/users/cy/revoke", headers=theirs),
                 404, "not_found")  # fmt: skip
    listed = (await rig.client.get("/v1/ops/users", headers=theirs)).json()
    assert [u["name"] for u in listed] == ["elsewhere"]
    ours_listed = (await rig.client.get("/v1/ops/users", headers=ours)).json()
    assert "cy" in {u["name"] for u in ours_listed} and "elsewhere" not in str(ours_listed)
    # Nor the festival itself.
    expect_error(await rig.client.get(f"/v1/ops/festivals/{rig.fest.slug}", headers=theirs),
                 403, "forbidden")  # fmt: skip
    listed = (await rig.client.get("/v1/ops/festivals", headers=theirs)).json()
    assert rig.fest.slug not in {f["slug"] for f in listed} and len(listed) == 1
    assert await stored(rig) == before


async def test_only_admins_manage_users_and_delete_festivals(rig: Rig) -> None:
    before = await stored(rig)
    for role in ("ORGANIZER", "STAFF", "CASHIER", "SECURITY"):
        headers = await rig.ops(role)
        before = await stored(rig)
        for method, path, body in (
            ("GET", "/v1/ops/users", None),
            ("POST", "/v1/ops/users", {"name": "x", "role": "ADMIN"}),
            ("POST", "/v1/ops/users/admin-user/revoke", None),
            ("DELETE", f"/v1/ops/festivals/{rig.fest.slug}?revoke_devices=true", None),
        ):
            resp = await rig.client.request(method, path, json=body, headers=headers)
            expect_error(resp, 403, "forbidden")
        assert await stored(rig) == before
