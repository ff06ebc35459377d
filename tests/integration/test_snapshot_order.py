"""Central streams each table of a snapshot in byte order of its key, the device's fast order."""

from __future__ import annotations

from psycopg import AsyncConnection

from central.sample import create_sample_festival
from sync.catalog import key_fields
from sync.client import CentralClient
from tests.integration.conftest import CentralServer, enrol_code


async def test_each_table_streams_in_byte_order_of_its_id(
    central: CentralServer, pg_dsn: str
) -> None:
    async with await AsyncConnection.connect(pg_dsn) as conn:
        fest = await create_sample_festival(
            conn, signed_tickets=30, opaque_tickets=30, wristbands=40
        )
    code = await enrol_code(pg_dsn, fest, "gate")
    async with CentralClient(central.url) as anonymous:
        token = (await anonymous.enrol(code, "order")).token
    keys: dict[str, list[bytes]] = {}
    async with CentralClient(central.url, token=token) as client:
        async for part in client.snapshot():
            if part.kind == "rows" and key_fields(part.table) == ("id",):
                keys.setdefault(part.table, []).extend(r["id"].encode() for r in part.rows)
    assert len(keys["ticket"]) >= 60 and len(keys["account"]) >= 40
    for table, got in keys.items():
        assert got == sorted(got), f"{table} rows are not in byte order of id"
