"""Schema-driven fuzzing of the sync, enrol and ops API: central never answers 5xx (issue 14).

Schemathesis reads the app's OpenAPI schema and sends each operation cases made from it,
valid and invalid (its coverage phase: boundaries, missing and wrong-typed values, other
methods; then its fuzzing phase), in process over ASGI to the real app on a real database
of its own. A festival, a gate device with a sequence-gap conflict, an unused enrol code,
an ADMIN ops user and another user exist there; every case carries the token its operation
takes and that festival (its slug or its id), a push names that device, and half the cases'
other ids and names (a ticket's scanned or outside code, a tag UID, a device's, vendor's or
user's name, an enrol code's short id) name a real row, so cases get past authentication
and lookups into the handlers. A case fails on a 5xx, and on a response its
operation's schema does not describe (an error that is no ErrorBody, say).

Bounded for CI (well under a minute and a half on two cores): a fixed number of examples
per operation, no deadline (nothing here depends on timing), derandomized, so every run
sends the same cases. (Schemathesis' lazy-fixture loader does not run under pytest 9.2,
so the schema comes from the app at import, which needs no database, and each case is
sent to the app of its test's fixture.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import response_schema_conformance

from central import pg, users
from central.app import create_app
from central.auth import DevicePrincipal, OpsRole, authenticate
from central.enrol import create_enrol_code, enrol, issue_enrol_code
from central.ingest import ingest_batch
from central.sample import create_sample_festival
from config.central import CentralConfig
from sync.ids import uuid7_text
from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, Event
from sync.vocab import EventKind

EXAMPLES = 100  # per operation in the fuzzing phase (the coverage phase adds its own)


@dataclass(frozen=True)
class Seeded:
    """Credentials and real rows of the fuzzed app's database, by path parameter name."""

    device_token: str
    ops_token: str
    rows: dict[str, tuple[str, ...]]  # the real values a parameter may take


async def _seed(dsn: str) -> Seeded:
    pool = await pg.connect_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.connection() as conn:
            fest = await create_sample_festival(conn, wristbands=2)
            fid = fest.festival_id
            admin = await users.add_ops_user(
                conn, name="fuzz", role=OpsRole.ADMIN, actor="test", festival_id=fid
            )
            code = await create_enrol_code(
                conn, festival_id=fid, role="gate", zone_id=fest.zone_id, vendor_id=None,
                ttl_s=600,
            )  # fmt: skip
            gate = await enrol(conn, code=code, name="fuzzed gate")
            spare = await issue_enrol_code(
                conn, fid, role="topup", zone=None, vendor=None, ttl_s=600, actor="test"
            )
            await users.add_ops_user(
                conn, name="victim", role=OpsRole.STAFF, actor="test", festival_id=fid
            )
            device = await authenticate(conn, gate.token)
            assert isinstance(device, DevicePrincipal)
            gap = [_log(gate.device_id, seq) for seq in (1, 3)]
            await ingest_batch(conn, device, gap, received_ms=0)
            cur = await conn.execute("SELECT ref FROM conflict WHERE festival_id = %s", (fid,))
            (conflict,) = await cur.fetchall()
    finally:
        await pool.close()
    ticket = fest.tickets[0]
    rows: dict[str, tuple[object, ...]] = {
        "festival_id": (fid,), "device_id": (gate.device_id,), "conflict_id": (conflict[0],),
        # Paths that take names (issue 15): each name people use, and the id.
        "festival": (fest.slug, fid),
        "ticket": (ticket.code, ticket.ticket_id, fest.opaque_tickets[0].code),
        "tag": (fest.tag_uids[0], fest.account_ids[0]),
        "device": ("fuzzed gate", gate.device_id), "vendor": ("Main bar", fest.vendor_id),
        "key_id": (fest.key_id,), "code": (spare.id,), "user": ("victim",),
    }  # fmt: skip
    return Seeded(gate.token, admin.token, {k: tuple(str(v) for v in vs) for k, vs in rows.items()})


def _log(device_id: uuid.UUID, seq: int) -> Event:
    return Event(
        event_id=uuid7_text(), device_id=str(device_id), device_seq=seq, hlc=0, wall_ms=0,
        catalog_seq=0, kind=EventKind.LOG, verdict="info", payload={"message": "seed"},
    )  # fmt: skip


@pytest.fixture
def seeded(pg_dsn: str) -> Seeded:
    """What the test's database holds for the cases to reach."""
    return asyncio.run(_seed(pg_dsn))


@pytest.fixture
def app(pg_dsn: str, seeded: Seeded) -> Iterator[FastAPI]:
    """The app on the seeded database; schemathesis starts its lifespan on the first case."""
    # A long-poll of `changes` waits at most this long: cases ask for any wait.
    fuzzed = create_app(CentralConfig(dsn=SecretStr(pg_dsn), max_wait_s=0.01))
    try:
        yield fuzzed
    finally:
        asgi.shutdown_lifespans()  # closes its pool before the database is dropped


schema = schemathesis.openapi.from_dict(create_app(CentralConfig()).openapi())


def _aim(case: schemathesis.Case[Any], seeded: Seeded) -> None:
    """Point a case at the seeded rows, with the credentials its operation takes."""
    token = seeded.ops_token if case.path.startswith("/v1/ops/") else seeded.device_token
    case.headers.update(
        {PROTOCOL_HEADER: str(PROTOCOL_VERSION), "Authorization": f"Bearer {token}"}
    )
    params = dict(case.path_parameters or {})
    for name, value in params.items():
        text = str(value)
        # The festival always (else every case stops at 403); another row when the generated
        # text's length is even, so half the cases reach a real row and half an unreadable
        # or unknown name; which of its names (or its id) also follows that length.
        real = seeded.rows.get(name, ())
        if real and (name in ("festival_id", "festival") or len(text) % 2 == 0):
            params[name] = real[len(text) // 2 % len(real)]
    case.path_parameters = params
    body: Any = case.body
    if case.path == "/v1/sync/events" and isinstance(body, dict):
        events = body.get("events")  # any JSON value: the case may be a malformed body
        for event in events if isinstance(events, list) else ():  # each names this device
            if isinstance(event, dict) and "device_id" in event:
                event["device_id"] = seeded.rows["device_id"][0]


@schema.include(path_regex="^/v1/(ops|sync|devices)/").parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_case_gets_a_server_error(
    case: schemathesis.Case[Any], seeded: Seeded, app: FastAPI
) -> None:
    _aim(case, seeded)
    case.call_and_validate(app=app, checks=[not_a_server_error, response_schema_conformance])
