"""Rows are found by the names people use, within one festival, or a clear refusal."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from central import refs, tickets, users
from central.auth import OpsRole
from central.errors import Ambiguous, NotFound
from central.sample import SampleFestival
from tests.conftest import FestivalFactory


async def test_festival_by_slug_or_id(
    pg_pool: AsyncConnectionPool, festival: FestivalFactory
) -> None:
    fest = await festival(slug="summer")
    async with pg_pool.connection() as conn:
        assert await refs.festival(conn, "summer") == fest.festival_id
        assert await refs.festival(conn, str(fest.festival_id)) == fest.festival_id
        with pytest.raises(NotFound):
            await refs.festival(conn, "winter")


async def test_zones_and_vendors_by_name_in_any_case_and_only_their_festivals(
    pg_pool: AsyncConnectionPool, festival: FestivalFactory
) -> None:
    fest, other = await festival(), await festival()
    async with pg_pool.connection() as conn:
        assert await refs.zone(conn, fest.festival_id, "MAIN GATE") == fest.zone_id
        assert await refs.vendor(conn, fest.festival_id, " main bar ") == fest.vendor_id
        assert await refs.zone(conn, fest.festival_id, str(fest.zone_id)) == fest.zone_id
        with pytest.raises(NotFound, match="no zone 'Backstage'"):
            await refs.zone(conn, fest.festival_id, "Backstage")
        with pytest.raises(NotFound):  # the other festival's zone, by its id
            await refs.zone(conn, fest.festival_id, str(other.zone_id))


async def test_a_name_two_rows_share_is_ambiguous_and_lists_their_ids(
    pg_pool: AsyncConnectionPool, festival: FestivalFactory
) -> None:
    fest = await festival()
    async with pg_pool.connection() as conn:
        ids = [await _device(conn, fest, "north") for _ in range(2)]
        with pytest.raises(Ambiguous) as err:
            await refs.device(conn, fest.festival_id, "North")
        assert all(str(i) in str(err.value) for i in ids)
        assert await refs.device(conn, fest.festival_id, str(ids[1])) == ids[1]


async def _device(conn: AsyncConnection[Any], fest: SampleFestival, name: str) -> uuid.UUID:
    did = uuid.uuid4()
    await conn.execute(
        "INSERT INTO device (id, festival_id, name, role, zone_id, token_hash)"
        " VALUES (%s, %s, %s, 'gate', %s, %s)",
        (did, fest.festival_id, name, fest.zone_id, uuid.uuid4().bytes * 2),
    )
    return did


async def test_a_ticket_by_id_signed_code_old_code_outside_code_or_holder(
    pg_pool: AsyncConnectionPool, festival: FestivalFactory
) -> None:
    fest = await festival(signed_tickets=2, opaque_tickets=1)
    signed, opaque = fest.tickets[0], fest.opaque_tickets[0]
    async with pg_pool.connection() as conn:

        async def find(ref: str) -> uuid.UUID:
            return await refs.ticket(conn, fest.festival_id, ref)

        assert await find(str(signed.ticket_id)) == signed.ticket_id
        assert await find(signed.code) == signed.ticket_id
        assert await find(opaque.code) == opaque.ticket_id
        moved = await tickets.transfer_ticket(
            conn, signed.ticket_id, actor="ops", holder_ref="ORDER-77"
        )
        assert await find(signed.code) == signed.ticket_id  # the old code still names it
        assert await find(moved.code) == signed.ticket_id
        assert await find("ORDER-77") == signed.ticket_id
        with pytest.raises(NotFound):
            await find("ORDER-78")
        with pytest.raises(NotFound, match="not a readable signed code"):
            await find("FG1.NOTACODE")


async def test_a_wristband_by_tag_uid_or_id(
    pg_pool: AsyncConnectionPool, festival: FestivalFactory
) -> None:
    fest, other = await festival(wristbands=1), await festival(wristbands=1)
    async with pg_pool.connection() as conn:
        uid = fest.tag_uids[0]
        assert await refs.wristband(conn, fest.festival_id, uid.upper()) == fest.account_ids[0]
        assert (
            await refs.wristband(conn, fest.festival_id, str(fest.account_ids[0]))
            == (fest.account_ids[0])
        )
        with pytest.raises(NotFound):
            await refs.wristband(conn, fest.festival_id, other.tag_uids[0])
        with pytest.raises(NotFound, match="tag UID"):
            await refs.wristband(conn, fest.festival_id, "not-hex")


async def test_users_by_name_within_their_festival(
    pg_pool: AsyncConnectionPool, festival: FestivalFactory
) -> None:
    fest, other = await festival(), await festival()
    async with pg_pool.connection() as conn:
        alice = await users.add_ops_user(
            conn, name="alice", role=OpsRole.SECURITY, festival_id=fest.festival_id, actor="t"
        )
        assert await refs.user(conn, "Alice") == alice.user_id
        assert await refs.user(conn, "alice", fest.festival_id) == alice.user_id
        with pytest.raises(NotFound):
            await refs.user(conn, "alice", other.festival_id)
