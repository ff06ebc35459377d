"""Catalog writes: table + feed + audit in one transaction; tickets, keys, cashless."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from central import cashless, catalog, code_entropy, feed, festivals, keys, rows, tickets, users
from central.auth import OpsRole, token_hash
from central.errors import CatalogError, Contradiction, NotFound
from central.sample import SampleFestival
from sync import hashing, ticketcode
from sync.catalog import SigningKeyRow, TicketRow
from sync.vocab import TicketStatus, TicketType, TransactionType

Factory = Callable[..., Awaitable[SampleFestival]]


async def _count(conn: AsyncConnection[Any], query: str, *args: object) -> int:
    cur = await conn.execute(query, args)
    rec = await cur.fetchone()
    assert rec is not None
    return int(rec[0])


async def test_sample_festival_is_replicated_and_audited(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    async with pg_pool.connection() as conn:
        changes = await feed.read_after(conn, f.festival_id, 0, 1000)
        tables = [c.table for c in changes]
        assert [c.seq for c in changes] == list(range(1, len(changes) + 1))
        assert tables[:2] == ["festival", "signing_key"]
        assert tables.count("ticket") == 4
        assert tables.count("account") == 1
        assert await _count(
            conn, "SELECT count(*) FROM audit_log WHERE festival_id = %s", f.festival_id
        ) == len(changes)
        # Nothing personal or secret goes down the feed.
        for c in changes:
            assert "holder_ref" not in c.row
            assert "private_key" not in c.row


async def test_a_failing_write_leaves_neither_row_nor_feed_nor_audit(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    async with pg_pool.connection() as conn:
        head = await feed.head(conn, f.festival_id)
        audits = await _count(conn, "SELECT count(*) FROM audit_log")
        # The audit insert (the last step) fails on an over-long actor: all steps roll back.
        with pytest.raises(Exception, match="audit_log_actor_check"):
            await catalog.create_zone(conn, f.festival_id, name="Backstage", actor="x" * 300)
        await conn.rollback()
        assert await feed.head(conn, f.festival_id) == head
        assert await _count(conn, "SELECT count(*) FROM zone WHERE name = 'Backstage'") == 0
        assert await _count(conn, "SELECT count(*) FROM audit_log") == audits
        assert (
            await _count(conn, "SELECT count(*) FROM replica_row WHERE row->>'name' = 'Backstage'")
            == 0
        )
        zone = await catalog.create_zone(conn, f.festival_id, name="Backstage", actor="ops")
        assert zone.seq == head + 1


async def test_duplicate_names_and_slugs_are_conflicts(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    async with pg_pool.connection() as conn:
        with pytest.raises(Contradiction):
            await catalog.create_festival(conn, name="again", slug=f.slug, actor="ops")
        with pytest.raises(Contradiction):
            await catalog.create_zone(conn, f.festival_id, name="Main gate", actor="ops")
        assert (await catalog.get_festival(conn, f.slug))["id"] == f.festival_id
        assert (await catalog.get_festival(conn, str(f.festival_id)))["slug"] == f.slug
        await festivals.delete_festival(conn, f.festival_id, actor="ops")
        with pytest.raises(NotFound):
            await catalog.get_festival(conn, f.slug)
        changes = await feed.read_after(conn, f.festival_id, 0, 1000)
        assert (changes[-1].table, changes[-1].op) == ("festival", "delete")


async def test_signed_ticket_code_verifies_with_the_published_key(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    t = f.tickets[0]
    code = ticketcode.decode(t.code)
    assert code.verify(f.public_key)
    assert (code.ticket_id, code.festival_id, code.key_id) == (t.ticket_id, f.festival_id, f.key_id)
    assert code.ticket_type is TicketType.STANDARD
    assert code.code_version == 0
    async with pg_pool.connection() as conn:
        published = [
            c.row
            for c in await feed.read_after(conn, f.festival_id, 0, 1000)
            if c.table == "signing_key"
        ]
        assert SigningKeyRow.model_validate(published[0]).public_key == f.public_key.hex()
        # Central vouches for the code it issued: devices get its keyed hash, never the code.
        assert t.row.code_hash == hashing.code_hash(f.hash_key, t.code).hex()
        assert (
            await _count(
                conn, "SELECT count(*) FROM change_feed WHERE row::text LIKE %s", f"%{t.code}%"
            )
            == 0
        )


async def test_opaque_ticket_is_stored_as_keyed_hash_only(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    t = f.opaque_tickets[0]
    assert t.row.code_hash == hashing.code_hash(f.hash_key, t.code).hex()
    async with pg_pool.connection() as conn:
        assert (
            await _count(
                conn, "SELECT count(*) FROM change_feed WHERE row::text LIKE %s", f"%{t.code}%"
            )
            == 0
        )
        with pytest.raises(Contradiction):
            await tickets.add_opaque_ticket(
                conn, f.festival_id, category_id=f.category_id, code=t.code, actor="ops"
            )


async def test_key_rotation_keeps_old_codes_valid_until_revoked(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    async with pg_pool.connection() as conn:
        new = await keys.rotate_key(conn, f.festival_id, actor="ops")
        assert new.key_id == f.key_id + 1
        issued = await tickets.issue_ticket(
            conn, f.festival_id, category_id=f.category_id, actor="ops"
        )
        assert ticketcode.decode(issued.code).key_id == new.key_id
        valid = await keys.public_keys(conn, f.festival_id)
        assert set(valid) == {f.key_id, new.key_id}
        old_code = ticketcode.decode(f.tickets[0].code)
        assert old_code.verify(valid[old_code.key_id])
        revoked = await keys.revoke_key(conn, f.festival_id, f.key_id, actor="ops")
        assert revoked.revoked
        assert revoked.seq == await feed.head(conn, f.festival_id)
        assert set(await keys.public_keys(conn, f.festival_id)) == {new.key_id}
        # Revoking the key that signs makes a new one first: the festival can still sign.
        await keys.revoke_key(conn, f.festival_id, new.key_id, actor="ops")
        assert set(await keys.public_keys(conn, f.festival_id)) == {new.key_id + 1}
        issued = await tickets.issue_ticket(
            conn, f.festival_id, category_id=f.category_id, actor="ops"
        )
        assert ticketcode.decode(issued.code).key_id == new.key_id + 1
        head = await feed.head(conn, f.festival_id)
        with pytest.raises(Contradiction) as again:
            await keys.revoke_key(conn, f.festival_id, new.key_id, actor="ops")
        assert again.value.code == "already_revoked"
        with pytest.raises(NotFound):
            await keys.revoke_key(conn, f.festival_id, 99, actor="ops")
        assert await feed.head(conn, f.festival_id) == head


async def test_transfer_of_a_signed_ticket_bumps_its_code_version(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    t = f.tickets[0]
    async with pg_pool.connection() as conn:
        moved = await tickets.transfer_ticket(conn, t.ticket_id, holder_ref="crm:42", actor="ops")
        assert moved.row.code_version == 1
        assert moved.code != t.code
        assert ticketcode.decode(moved.code).code_version == 1
        # The replicated row now names version 1: a gate refuses the old QR (version 0).
        latest = TicketRow.model_validate(
            (await feed.read_after(conn, f.festival_id, moved.row.seq - 1, 1))[0].row
        )
        assert latest.code_version == 1
        # ... and central's vouch moves to the new code: the old code's hash no longer matches.
        assert latest.code_hash == hashing.code_hash(f.hash_key, moved.code).hex()
        assert latest.code_hash != hashing.code_hash(f.hash_key, t.code).hex()
        cur = await conn.execute(
            "SELECT old_value, new_value FROM audit_log WHERE action = 'ticket.transfer'"
        )
        old, new = (await cur.fetchall())[0]
        assert (old["holder_ref"], new["holder_ref"]) == (None, "crm:42")


async def test_transfer_of_an_opaque_ticket_replaces_its_hash(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    t = f.opaque_tickets[0]
    async with pg_pool.connection() as conn:
        with pytest.raises(CatalogError, match="too weak"):  # a guessable code is refused ...
            await tickets.transfer_ticket(conn, t.ticket_id, new_code="RESOLD-1", actor="ops")
        moved = await tickets.transfer_ticket(  # ... unless ops accept the risk
            conn, t.ticket_id, new_code="RESOLD-1", accept_weak_code=True, actor="ops"
        )
        assert moved.row.code_hash == hashing.code_hash(f.hash_key, "RESOLD-1").hex()
        old_hash = hashing.code_hash(f.hash_key, t.code)
        assert await _count(conn, "SELECT count(*) FROM ticket WHERE code_hash = %s", old_hash) == 0
        generated = await tickets.transfer_ticket(conn, t.ticket_id, actor="ops")
        assert generated.code
        assert generated.row.code_hash == hashing.code_hash(f.hash_key, generated.code).hex()


async def test_an_outside_code_keeps_its_estimated_bits_through_a_transfer(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()  # its outside code: EXT-<slug>-0
    t = f.opaque_tickets[0]

    async def bits() -> int:
        return await _count(conn, "SELECT code_bits FROM ticket WHERE id = %s", t.ticket_id)

    async with pg_pool.connection() as conn:
        assert await bits() == code_entropy.code_bits(t.code)
        await tickets.transfer_ticket(
            conn, t.ticket_id, new_code="123456", accept_weak_code=True, actor="ops"
        )
        assert await bits() == 19
        fresh = await tickets.transfer_ticket(conn, t.ticket_id, actor="ops")  # random 128 bits
        assert re.fullmatch(r"[A-Z2-7]{26}", fresh.code)
        assert await bits() == code_entropy.code_bits(fresh.code)


async def test_ticket_lifecycle_allows_only_seed_transitions(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    tid = f.tickets[0].ticket_id
    async with pg_pool.connection() as conn:
        with pytest.raises(Contradiction):
            await tickets.refund_ticket(conn, tid, actor="ops")  # SOLD → REFUNDED is not a move
        row = await tickets.cancel_ticket(conn, tid, actor="ops")
        assert row.status is TicketStatus.CANCELLED
        with pytest.raises(Contradiction):
            await tickets.transfer_ticket(conn, tid, actor="ops")
        assert (await tickets.refund_ticket(conn, tid, actor="ops")).status is TicketStatus.REFUNDED
        loaded = await rows.load_row(conn, "ticket", tid)
        assert isinstance(loaded, TicketRow)
        assert loaded.status is TicketStatus.REFUNDED
        with pytest.raises(NotFound):
            await tickets.cancel_ticket(conn, uuid.uuid4(), actor="ops")


async def test_block_and_unblock_go_down_the_feed(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    ref = str(f.tickets[1].ticket_id)
    async with pg_pool.connection() as conn:
        b = await catalog.block(
            conn, f.festival_id, kind="ticket", ref=ref, reason="stolen", actor="sec"
        )
        await catalog.unblock(conn, f.festival_id, kind="ticket", ref=ref, actor="sec")
        last = await feed.read_after(conn, f.festival_id, b.seq - 1, 10)
        assert [(c.table, c.op) for c in last] == [("block", "upsert"), ("block", "delete")]
        with pytest.raises(Contradiction, match="not blocked"):
            await catalog.unblock(conn, f.festival_id, kind="ticket", ref=ref, actor="sec")


async def test_ledger_is_the_balance_with_before_and_after(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival(opening_balance=1000)
    aid = f.account_ids[0]
    async with pg_pool.connection() as conn:
        assert (await cashless.topup(conn, aid, 500, actor="cash")).balance == 1500
        assert (await cashless.refund(conn, aid, 200, actor="cash")).balance == 1300
        with pytest.raises(Contradiction):
            await cashless.refund(conn, aid, 5000, actor="cash")
        with pytest.raises(CatalogError):
            await cashless.topup(conn, aid, 0, actor="cash")
        assert await cashless.balance_from_ledger(conn, aid) == 1300
        cur = await conn.execute(
            "SELECT type, amount, balance_before, balance_after FROM cashless_transaction "
            "WHERE account_id = %s ORDER BY id",
            (aid,),
        )
        assert await cur.fetchall() == [
            ("TOPUP", 1000, 0, 1000),
            ("TOPUP", 500, 1000, 1500),
            ("REFUND", -200, 1500, 1300),
        ]
        with pytest.raises(Contradiction):
            await cashless.create_account(conn, f.festival_id, tag_uid=f.tag_uids[0], actor="cash")


async def test_topup_out_of_debt_unblocks_the_account(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival(opening_balance=0)
    aid = f.account_ids[0]
    async with pg_pool.connection() as conn:
        # What overdraft handling leaves behind: a negative balance, debt and a block.
        await cashless.ledger_entry(conn, aid, -300, TransactionType.PAYMENT)
        await conn.execute(
            "UPDATE cashless_account SET debt = 300, blocked = true WHERE id = %s", (aid,)
        )
        await conn.commit()
        assert (await cashless.topup(conn, aid, 200, actor="cash")).blocked
        row = await cashless.topup(conn, aid, 200, actor="cash")
        assert (row.blocked, row.balance) == (False, 100)
        assert (await cashless.set_blocked(conn, aid, True, actor="sec")).blocked


async def test_ops_user_token_is_stored_only_as_sha256(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    async with pg_pool.connection() as conn:
        user = await users.add_ops_user(
            conn, name="ana", role=OpsRole.CASHIER, festival_id=f.festival_id, actor="admin"
        )
        assert user.token.startswith("fgo_")
        assert (
            await _count(
                conn,
                "SELECT count(*) FROM ops_user WHERE token_hash = %s",
                token_hash(user.token),
            )
            == 1
        )
        assert (
            await _count(
                conn,
                "SELECT count(*) FROM ops_user WHERE token_hash::text LIKE %s",
                f"%{user.token}%",
            )
            == 0
        )
        await users.revoke_user(conn, str(user.user_id), actor="admin")
        assert (
            await _count(
                conn,
                "SELECT count(*) FROM revoked_token WHERE token_hash = %s",
                token_hash(user.token),
            )
            == 1
        )
