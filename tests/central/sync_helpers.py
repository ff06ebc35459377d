"""A test rig for the sync side: the real app over ASGI, enrolled devices, event builders."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool

from central import catalog, users
from central.app import create_app
from central.enrol import create_enrol_code
from central.sample import SampleFestival
from config.central import CentralConfig
from sync import hlc
from sync.ids import uuid7
from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, ErrorBody

PROTO = {PROTOCOL_HEADER: str(PROTOCOL_VERSION)}


@dataclass
class Dev:
    """An enrolled device as a test drives it: its token and next device_seq."""

    device_id: str
    token: str
    role: str
    next_seq: int = 1

    @property
    def headers(self) -> dict[str, str]:
        """Protocol and bearer headers for this device."""
        return {**PROTO, "Authorization": f"Bearer {self.token}"}


@dataclass
class Rig:
    """The app, an HTTP client on it, the pool and a sample festival."""

    client: httpx.AsyncClient
    pool: AsyncConnectionPool
    fest: SampleFestival
    now_ms: int
    ops_tokens: dict[str, str] = field(default_factory=dict)

    async def enrol(self, role: str, name: str = "") -> Dev:
        """Enrol a device through the API with a fresh code."""
        async with self.pool.connection() as conn:
            code = await create_enrol_code(
                conn,
                festival_id=self.fest.festival_id,
                role=role,
                zone_id=self.fest.zone_id if role == "gate" else None,
                vendor_id=self.fest.vendor_id if role == "bar" else None,
                ttl_s=600,
            )
        resp = await self.client.post(
            "/v1/devices/enroll", json={"code": code, "name": name or role}, headers=PROTO
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        return Dev(body["device_id"], body["token"], role)

    async def ops(self, role: str) -> dict[str, str]:
        """Headers of an ops user with `role` (created once per rig)."""
        if role not in self.ops_tokens:
            async with self.pool.connection() as conn:
                user = await users.add_ops_user(
                    conn, name=f"{role.lower()}-user", role=role, actor="test",  # type: ignore[arg-type]
                    festival_id=self.fest.festival_id,
                )  # fmt: skip
            self.ops_tokens[role] = user.token
        return {**PROTO, "Authorization": f"Bearer {self.ops_tokens[role]}"}

    async def festival_scoped_ops_headers(self, role: str) -> dict[str, str]:
        """Headers of an ops user with `role` limited to another festival."""
        async with self.pool.connection() as conn:
            other = await catalog.create_festival(
                conn, name="Elsewhere", slug=f"elsewhere-{uuid.uuid4().hex[:8]}", actor="test"
            )
            user = await users.add_ops_user(
                conn, name="elsewhere", role=role, actor="test",  # type: ignore[arg-type]
                festival_id=uuid.UUID(other.id),
            )  # fmt: skip
        return {**PROTO, "Authorization": f"Bearer {user.token}"}

    def event(
        self,
        dev: Dev,
        kind: str,
        verdict: str,
        payload: dict[str, Any] | None = None,
        *,
        at_ms: int = 0,
        logical: int = 0,
        catalog_seq: int = 0,
        seq: int | None = None,
        wall_ms: int | None = None,
    ) -> dict[str, Any]:
        """An event dict at `at_ms` after the rig's start (HLC = that time)."""
        if seq is None:
            seq = dev.next_seq
            dev.next_seq += 1
        t = self.now_ms + at_ms
        return {
            "event_id": str(uuid7(t)),
            "device_id": dev.device_id,
            "device_seq": seq,
            "hlc": hlc.pack(t, logical),
            "wall_ms": t if wall_ms is None else wall_ms,
            "catalog_seq": catalog_seq,
            "kind": kind,
            "verdict": verdict,
            "payload": payload or {},
        }

    def entry(self, dev: Dev, ticket: uuid.UUID, verdict: str = "ok", **kw: Any) -> dict[str, Any]:
        """A gate entry of `ticket` into the festival's zone."""
        return self.event(dev, "entry", verdict, {"ticket_id": str(ticket)}, **kw)

    def exit(self, dev: Dev, ticket: uuid.UUID, **kw: Any) -> dict[str, Any]:
        """A gate exit of `ticket`."""
        return self.event(dev, "exit", "ok", {"ticket_id": str(ticket)}, **kw)

    def sale(self, dev: Dev, account: uuid.UUID, amount: int, **kw: Any) -> dict[str, Any]:
        """An approved bar sale of `amount` cents on `account`."""
        payload = {"account_id": str(account), "amount": amount}
        return self.event(dev, "sale", "approved", payload, **kw)

    async def push(self, dev: Dev, events: list[dict[str, Any]]) -> httpx.Response:
        """POST a batch for `dev`."""
        return await self.client.post(
            "/v1/sync/events", json={"events": events}, headers=dev.headers
        )

    async def scalar(self, query: str, *args: object) -> Any:
        """One value from the database."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, args)
            rec = await cur.fetchone()
            return None if rec is None else rec[0]


@asynccontextmanager
async def open_rig(
    pool: AsyncConnectionPool,
    festival: Callable[..., Awaitable[SampleFestival]],
    *,
    settings: CentralConfig | None = None,
    **festival_kw: Any,
) -> AsyncIterator[Rig]:
    """Start the real app on `pool` (lifespan included) with a fresh sample festival."""
    fest = await festival(**festival_kw)
    app = create_app(settings or CentralConfig(), pool=pool)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://central") as client:
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT (extract(epoch FROM now()) * 1000)::bigint")
                rec = await cur.fetchone()
            assert rec is not None
            yield Rig(client, pool, fest, int(rec[0]) + 1000)


def expect_error(resp: httpx.Response, status: int, code: str) -> None:
    """Assert that `resp` is an ErrorBody answer with `status` and error `code`."""
    assert resp.status_code == status, resp.text
    assert ErrorBody.model_validate(resp.json()).error == code
