"""Every ops action through both doors: the API (the real app over ASGI, an ADMIN of every
festival) and the CLI (``festgate-central --dsn … --json`` in process). A scenario runs
through each and must find the same outcome: one implementation behind both.

Actions are named as the CLI spells them ("device revoke"); each maps to its API request
and its command line, so this table is also the list of what ops can do.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from typer.testing import CliRunner

from central import users
from central.auth import OpsRole
from central.cli import app
from sync.protocol import ErrorBody
from tests.central.sync_helpers import PROTO, Rig

Request = tuple[str, str, dict[str, Any] | None]
OPS = "/v1/ops"


def _at(f: str, path: str = "") -> str:
    return f"{OPS}/festivals/{f}{path}"


def _opt(flag: str, value: object) -> list[str]:
    return (
        [] if value is None or value is False else [flag] if value is True else [flag, str(value)]
    )


# action: (API request, command line), both built from the festival and the action's names.
ACTIONS: dict[str, tuple[Callable[..., Request], Callable[..., list[str]]]] = {
    "festival list": (
        lambda f: ("GET", f"{OPS}/festivals", None),
        lambda f: ["festival", "list"],
    ),
    "festival show": (lambda f: ("GET", _at(f), None), lambda f: ["festival", "show", f]),
    "festival delete": (
        lambda f, revoke_devices=False: (
            "DELETE", _at(f, "?revoke_devices=true" if revoke_devices else ""), None),
        lambda f, revoke_devices=False: [
            "festival", "delete", f, "--yes", *_opt("--revoke-devices", revoke_devices)],
    ),
    "vendor list": (
        lambda f: ("GET", _at(f, "/vendors"), None), lambda f: ["vendor", "list", "-f", f]),
    "vendor open": (
        lambda f, vendor: ("POST", _at(f, f"/vendors/{vendor}/open"), None),
        lambda f, vendor: ["vendor", "open", vendor, "-f", f],
    ),
    "vendor close": (
        lambda f, vendor: ("POST", _at(f, f"/vendors/{vendor}/close"), None),
        lambda f, vendor: ["vendor", "close", vendor, "-f", f],
    ),
    "key list": (lambda f: ("GET", _at(f, "/keys"), None), lambda f: ["key", "list", "-f", f]),
    "key rotate": (
        lambda f: ("POST", _at(f, "/keys/rotate"), None), lambda f: ["key", "rotate", "-f", f]),
    "key revoke": (
        lambda f, key: ("POST", _at(f, f"/keys/{key}/revoke"), None),
        lambda f, key: ["key", "revoke", str(key), "-f", f],
    ),
    "user list": (
        lambda f: ("GET", f"{OPS}/users?festival={f}", None),
        lambda f: ["user", "list", "-f", f]),
    "user add": (
        lambda f, name, role: ("POST", f"{OPS}/users", {"name": name, "role": role, "festival": f}),
        lambda f, name, role: ["user", "add", name, "--role", role, "-f", f],
    ),
    "user revoke": (
        lambda f, user: ("POST", f"{OPS}/users/{user}/revoke", None),
        lambda f, user: ["user", "revoke", user],
    ),
    "device list": (
        lambda f: ("GET", _at(f, "/devices"), None), lambda f: ["device", "list", "-f", f]),
    "device show": (
        lambda f, device: ("GET", _at(f, f"/devices/{device}"), None),
        lambda f, device: ["device", "show", device, "-f", f],
    ),
    "device log": (
        lambda f, device: ("GET", _at(f, f"/devices/{device}/log"), None),
        lambda f, device: ["device", "log", device, "-f", f],
    ),
    "device revoke": (
        lambda f, device: ("POST", _at(f, f"/devices/{device}/revoke"), None),
        lambda f, device: ["device", "revoke", device, "-f", f],
    ),
    "enrol-code create": (
        lambda f, role, zone=None, vendor=None: (
            "POST", _at(f, "/enrol-codes"),
            {"role": role, "zone": zone, "vendor": vendor, "ttl_s": 900}),
        lambda f, role, zone=None, vendor=None: [
            "enrol-code", "create", "-f", f, "--role", role, *_opt("--zone", zone),
            *_opt("--vendor", vendor)],
    ),
    "enrol-code list": (
        lambda f: ("GET", _at(f, "/enrol-codes"), None),
        lambda f: ["enrol-code", "list", "-f", f],
    ),
    "enrol-code revoke": (
        lambda f, code: ("POST", _at(f, f"/enrol-codes/{code}/revoke"), None),
        lambda f, code: ["enrol-code", "revoke", code, "-f", f],
    ),
    "report entries": (
        lambda f, minutes=5: ("GET", _at(f, f"/entries?bucket_s={minutes * 60}"), None),
        lambda f, minutes=5: ["report", "entries", "-f", f, "--bucket", str(minutes)],
    ),
    "report sales": (
        lambda f: ("GET", _at(f, "/sales"), None), lambda f: ["report", "sales", "-f", f]),
    "report occupancy": (
        lambda f: ("GET", _at(f, "/zones/occupancy"), None),
        lambda f: ["report", "occupancy", "-f", f],
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """What an action answered: ``ok`` and its JSON, or the error code and its detail."""

    code: str
    data: Any


@dataclass
class Door:
    """One way in: ``api`` (as an ADMIN of every festival) or ``cli`` (on the database)."""

    kind: str
    rig: Rig
    dsn: str
    headers: dict[str, str]

    @classmethod
    async def open(cls, kind: str, rig: Rig, dsn: str) -> Door:
        """A door whose ops user exists already (adding it is no part of what a test counts)."""
        async with rig.pool.connection() as conn:
            admin = await users.add_ops_user(conn, name="root", role=OpsRole.ADMIN, actor="test")
        return cls(kind, rig, dsn, {**PROTO, "Authorization": f"Bearer {admin.token}"})

    async def __call__(self, action: str, festival: str | uuid.UUID, **names: Any) -> Outcome:
        """Do `action` on `festival` (slug or id) with its names; the answer as an Outcome."""
        api, cli = ACTIONS[action]
        if self.kind == "api":
            method, path, body = api(str(festival), **names)
            resp = await self.rig.client.request(method, path, json=body, headers=self.headers)
            if resp.is_success:
                return Outcome("ok", resp.json())
            error = ErrorBody.model_validate(resp.json())
            return Outcome(error.error, error.detail)
        args = ["--dsn", self.dsn, *cli(str(festival), **names), "--json"]
        # CliRunner runs the command's own event loop: in a thread, away from this one.
        result = await asyncio.to_thread(CliRunner().invoke, app, args)
        out = json.loads(result.stdout.strip().splitlines()[-1])
        if result.exit_code != 0:
            return Outcome(out["error"], out["detail"])
        if len(out) == 1 and isinstance(next(iter(out.values())), list):
            (out,) = out.values()  # a list command's {"devices": [...]}: the API's list
        return Outcome("ok", out)

    async def ok(self, action: str, festival: str | uuid.UUID, **names: Any) -> Any:
        """Do `action`, which must succeed; its JSON."""
        got = await self(action, festival, **names)
        assert got.code == "ok", (self.kind, action, got)
        return got.data


async def stored(rig: Rig) -> tuple[Any, ...]:
    """What an ops write changes: a refused one must leave all of it as it was."""
    return tuple(
        [
            await rig.scalar(q)
            for q in (
                "SELECT count(*) FROM audit_log",
                "SELECT coalesce(sum(head), 0) FROM feed_head",
                "SELECT count(*) FROM revoked_token",
                "SELECT count(*) FROM device WHERE revoked_at IS NOT NULL",
                "SELECT count(*) FROM enrol_code WHERE revoked_at IS NULL AND used_at IS NULL",
                "SELECT count(*) FROM ops_user WHERE revoked_at IS NULL",
                "SELECT count(*) FROM signing_key WHERE NOT revoked",
                "SELECT count(*) FROM festival WHERE deleted_at IS NULL",
                "SELECT count(*) FROM vendor WHERE is_open",
            )
        ]
    )


async def refused(door: Door, error: str, action: str, festival: str, **names: Any) -> str:
    """Do `action`, which must be refused with the code `error` and store nothing; the
    error's detail."""
    before = await stored(door.rig)
    got = await door(action, festival, **names)
    assert got.code == error, (door.kind, action, got)
    assert await stored(door.rig) == before, (door.kind, action)
    return str(got.data)


async def feed_and_audit_together(rig: Rig, audit_action: str) -> dict[str, Any]:
    """The festival's last feed change and the last `audit_action` entry were written by one
    transaction (the same xmin); the change's row."""
    fid = rig.fest.festival_id
    async with rig.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT xmin::text, row FROM change_feed WHERE festival_id = %s"
            " ORDER BY seq DESC LIMIT 1",
            (fid,),
        )
        feed_x, row = await cur.fetchone() or (None, None)
        cur = await conn.execute(
            "SELECT xmin::text FROM audit_log WHERE action = %s ORDER BY id DESC LIMIT 1",
            (audit_action,),
        )
        (audit_x,) = await cur.fetchone() or (None,)
    assert feed_x is not None and feed_x == audit_x, (audit_action, feed_x, audit_x)
    assert isinstance(row, dict)
    return row
