"""Running a festival by name, through the API and the CLI alike: show and soft-delete it,
open and close its vendors, rotate and revoke its keys; each write in the change feed and
the audit log in one transaction, each refusal with its code and nothing stored."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from central.app import create_app
from central.cli import app as cli_app
from config.central import CentralConfig
from tests.central.ops_doors import ACTIONS, Door, feed_and_audit_together, refused
from tests.central.sync_helpers import Rig, expect_error


@pytest.fixture(params=["api", "cli"])
async def door(request: pytest.FixtureRequest, rig: Rig, pg_dsn: str) -> Door:
    """The API or the CLI, on the rig's database."""
    return await Door.open(request.param, rig, pg_dsn)


def test_every_action_is_an_operation_and_a_command() -> None:
    """The table the other tests go through names real operations and real commands."""
    spec = create_app(CentralConfig()).openapi()["paths"]
    templates = {
        (method.upper(), re.sub(r"\{[^}]+\}", "[^/]+", path))
        for path, ops in spec.items() for method in ops
    }  # fmt: skip
    names = {"vendor": "v", "key": 1, "name": "n", "role": "STAFF", "user": "u", "device": "d",
             "code": "c"}  # fmt: skip
    for action, (api, cli) in ACTIONS.items():
        wanted = {k: v for k, v in names.items() if k in api.__code__.co_varnames}
        method, path, _ = api("f", **wanted)
        assert any(m == method and re.fullmatch(t, path.split("?")[0]) for m, t in templates), (
            action
        )
        assert cli("f", **wanted)[: len(action.split())] == action.split()
        assert CliRunner().invoke(cli_app, [*action.split(), "--help"]).exit_code == 0, action


async def test_festival_list_and_show_by_slug(door: Door) -> None:
    fest = door.rig.fest
    listed = await door.ok("festival list", fest.slug)
    assert [(f["slug"], f["id"]) for f in listed] == [(fest.slug, str(fest.festival_id))]
    for ref in (fest.slug, fest.festival_id):
        shown = await door.ok("festival show", ref)
        assert (shown["slug"], shown["timezone"], shown["currency"]) == (
            fest.slug, "Europe/Paris", "EUR",
        )  # fmt: skip
        assert [(k["key_id"], k["signing"]) for k in shown["signing_keys"]] == [(1, True)]
        assert (shown["zones"], shown["vendors"], shown["devices"]) == (1, 1, 0)
    await refused(door, "not_found", "festival show", "no-such-fest")


async def test_delete_waits_for_devices_then_takes_them_and_its_codes(door: Door) -> None:
    rig = door.rig
    gate = await rig.enrol("gate", "north-1")
    await door.ok("enrol-code create", rig.fest.slug, role="gate", zone="Main gate")
    detail = await refused(door, "festival_has_devices", "festival delete", rig.fest.slug)
    assert "1 device not revoked" in detail
    gone = await door.ok("festival delete", rig.fest.slug, revoke_devices=True)
    assert (gone["slug"], gone["devices_revoked"], gone["enrol_codes_revoked"]) == (
        rig.fest.slug, 1, 1,
    )  # fmt: skip
    row = await feed_and_audit_together(rig, "festival.delete")
    assert row["id"] == str(rig.fest.festival_id)
    assert (
        await rig.scalar(
            "SELECT op FROM change_feed WHERE festival_id = %s ORDER BY seq DESC LIMIT 1",
            rig.fest.festival_id,
        )
        == "delete"
    )
    # Gone from every lookup, its rows kept; its device refused at its next request.
    await refused(door, "not_found", "festival show", rig.fest.slug)
    await refused(door, "not_found", "festival delete", rig.fest.slug)
    assert await rig.scalar("SELECT count(*) FROM festival") == 1
    expect_error(await rig.push(gate, [rig.entry(gate, rig.fest.tickets[0].ticket_id)]),
                 401, "token_revoked")  # fmt: skip


async def test_vendors_open_and_close_by_name_down_the_feed(door: Door) -> None:
    slug = door.rig.fest.slug
    (bar,) = await door.ok("vendor list", slug)
    assert (bar["name"], bar["is_open"], bar["products"], bar["devices"]) == (
        "Main bar",
        True,
        1,
        0,
    )
    closed = await door.ok("vendor close", slug, vendor="MAIN BAR")
    assert (closed["name"], closed["is_open"]) == ("Main bar", False)
    row = await feed_and_audit_together(door.rig, "vendor.close")
    assert (row["name"], row["is_open"]) == ("Main bar", False)
    await refused(door, "already_closed", "vendor close", slug, vendor="Main bar")
    await refused(door, "not_found", "vendor close", slug, vendor="Side bar")
    assert (await door.ok("vendor open", slug, vendor="main bar"))["is_open"] is True
    assert (await feed_and_audit_together(door.rig, "vendor.open"))["is_open"] is True
    await refused(door, "already_open", "vendor open", slug, vendor="Main bar")


async def test_vendor_names_shared_are_ambiguous(door: Door) -> None:
    rig = door.rig
    async with rig.pool.connection() as conn:
        await conn.execute("UPDATE vendor SET name = 'Bar' WHERE festival_id = %s",
                           (rig.fest.festival_id,))  # fmt: skip
        await conn.execute(
            "INSERT INTO vendor (id, festival_id, name) VALUES (gen_random_uuid(), %s, 'BAR')",
            (rig.fest.festival_id,),
        )
    # Names compare in any case: two vendors answer to "bar".
    detail = await refused(door, "ambiguous", "vendor close", rig.fest.slug, vendor="bar")
    assert "use the id" in detail


async def test_keys_rotate_and_revoke_the_signing_one_rotates_first(door: Door) -> None:
    slug = door.rig.fest.slug
    assert [(k["key_id"], k["signing"]) for k in await door.ok("key list", slug)] == [(1, True)]
    assert (await door.ok("key rotate", slug))["key_id"] == 2
    old = await door.ok("key revoke", slug, key=1)
    assert (old["revoked"]["key_id"], old["signing"]["key_id"], old["rotated"]) == (1, 2, False)
    row = await feed_and_audit_together(door.rig, "signing_key.revoke")
    assert (row["key_id"], row["revoked"]) == (1, True)
    await refused(door, "already_revoked", "key revoke", slug, key=1)
    await refused(door, "not_found", "key revoke", slug, key=7)
    signing = await door.ok("key revoke", slug, key=2)
    assert (signing["signing"]["key_id"], signing["rotated"]) == (3, True)
    states = [(k["key_id"], k["revoked"], k["signing"]) for k in await door.ok("key list", slug)]
    assert states == [(1, True, False), (2, True, False), (3, False, True)]


def test_openapi_declares_the_real_shapes() -> None:
    """Ids as uuids, roles and states as enums, bounds on numbers: what clients generate from."""
    spec = create_app(CentralConfig()).openapi()
    schemas = spec["components"]["schemas"]
    device = schemas["DeviceHealth"]["properties"]
    assert device["id"]["format"] == "uuid"
    assert schemas[device["role"]["$ref"].split("/")[-1]]["enum"] == ["gate", "bar", "topup"]
    user_role = schemas["UserView"]["properties"]["role"]["$ref"].split("/")[-1]
    assert set(schemas[user_role]["enum"]) == {
        "ADMIN", "ORGANIZER", "STAFF", "CASHIER", "SECURITY",
    }  # fmt: skip
    assert schemas["EnrolCodeRequest"]["properties"]["ttl_s"]["maximum"] == 7 * 24 * 3600
    revoke = spec["paths"]["/v1/ops/festivals/{festival}/keys/{key_id}/revoke"]["post"]
    (key_id,) = [p for p in revoke["parameters"] if p["name"] == "key_id"]
    assert (key_id["schema"]["type"], key_id["schema"]["minimum"]) == ("integer", 0)
    sales = spec["paths"]["/v1/ops/festivals/{festival}/sales"]["get"]["responses"]["200"]
    assert sales["content"]["application/json"]["schema"]["items"]["$ref"].endswith("/VendorSales")


def test_a_festival_in_an_unknown_time_zone_is_refused(pg_dsn: str) -> None:
    args = ["--dsn", pg_dsn, "festival", "create", "Mars", "--slug", "mars", "--json"]
    result = CliRunner().invoke(cli_app, [*args, "--timezone", "Mars/Olympus"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"] == "invalid_request" and "time zone" in result.stderr
    assert CliRunner().invoke(cli_app, [*args, "--timezone", "Asia/Kolkata"]).exit_code == 0
