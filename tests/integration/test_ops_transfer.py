"""A ticket transferred through the ops API: a real gate that synced refuses its old code."""

from __future__ import annotations

from pathlib import Path

import httpx
from psycopg import AsyncConnection

from central import users
from central.auth import OpsRole
from central.sample import SampleFestival
from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from tests.integration.conftest import CentralServer, Node, enrolled_dir, open_node


async def test_the_old_code_of_a_transferred_ticket_is_revoked_at_the_gate(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    gate = await open_node(await enrolled_dir(central, pg_dsn, fest, "gate", tmp_path))
    nodes.append(gate)
    async with await AsyncConnection.connect(pg_dsn) as conn:
        box_office = await users.add_ops_user(
            conn,
            name="box office",
            role=OpsRole.ORGANIZER,
            actor="test",
            festival_id=fest.festival_id,
        )
        await conn.commit()
    old = fest.tickets[3].code
    headers = {
        PROTOCOL_HEADER: str(PROTOCOL_VERSION),
        "Authorization": f"Bearer {box_office.token}",
    }
    async with httpx.AsyncClient(base_url=central.url, headers=headers) as ops:
        resp = await ops.post(
            f"/v1/ops/festivals/{fest.slug}/tickets/{old}/transfer", json={"holder_ref": "resale 9"}
        )
    assert resp.status_code == 200, resp.text
    new = resp.json()["code"]
    await gate.engine.sync_round()  # the gate learns the ticket's new code version
    assert (await gate.device.scan(old)).verdict.code == "revoked"
    assert (await gate.device.scan(new)).verdict.code == "ok"
