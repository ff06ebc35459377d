"""Cashless account writes: wristband accounts, ops top-ups, refunds and blocks.

The ledger (`cashless_transaction`) is the truth: every balance change is a ledger entry
with balance before and after, written under the account's row lock so the two agree.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import AsyncConnection

from central import catalog_write, rollups
from central.errors import CatalogError, Contradiction, NotFound
from central.readable import money
from central.rows import Record, account_row, fetch_one, fetch_opt
from sync import hashing
from sync.catalog import AccountRow
from sync.vocab import TransactionType


async def ledger_entry(
    conn: AsyncConnection[Any],
    account_id: uuid.UUID,
    amount: int,
    type: TransactionType,
    *,
    vendor_id: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
) -> Record:
    """Apply a signed amount to an account and append its ledger entry; returns the account.

    Runs in the caller's transaction; does not publish or audit (callers do).
    """
    rec = await fetch_opt(
        conn,
        "UPDATE cashless_account SET balance = balance + %s WHERE id = %s RETURNING *",
        (amount, account_id),
    )
    if rec is None:
        raise NotFound(f"no account {account_id}")
    cur = await conn.execute(
        "INSERT INTO cashless_transaction (festival_id, account_id, type, amount, "
        "balance_before, balance_after, vendor_id, event_id, device_id) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING created_at",
        (
            rec["festival_id"],
            account_id,
            type,
            amount,
            rec["balance"] - amount,
            rec["balance"],
            vendor_id,
            event_id,
            device_id,
        ),
    )
    if type == TransactionType.PAYMENT and vendor_id is not None:  # a sale at that vendor
        booked = await cur.fetchone()
        assert booked is not None
        params = {"fid": rec["festival_id"], "vendor": vendor_id, "at": booked[0], "amount": amount}
        await conn.execute(rollups.PAYMENT, params)
    return rec


async def create_account(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    *,
    tag_uid: str | bytes,
    actor: str,
    opening_balance: int = 0,
) -> AccountRow:
    """Register a wristband (by tag UID, stored only as a keyed hash) with an opening balance."""
    if opening_balance < 0:
        raise CatalogError("opening balance must not be negative")
    async with catalog_write.write(conn, actor=actor) as w:
        fest = await fetch_one(conn, "SELECT hash_key FROM festival WHERE id = %s", (festival_id,))
        tag_hash = hashing.tag_hash(bytes(fest["hash_key"]), tag_uid)
        rec = await w.insert(
            "INSERT INTO cashless_account (id, festival_id, tag_hash) VALUES (%s, %s, %s) "
            "RETURNING *",
            (uuid.uuid4(), festival_id, tag_hash),
            taken="this wristband already has an account",
        )
        if opening_balance:
            rec = await ledger_entry(conn, rec["id"], opening_balance, TransactionType.TOPUP)
        return await w.publish(
            festival_id, "account", account_row(rec), action="account.create",
            entity_type="cashless_account", entity_id=rec["id"],
        )  # fmt: skip


async def _ops_change(
    conn: AsyncConnection[Any],
    account_id: uuid.UUID,
    amount: int,
    type: TransactionType,
    actor: str,
) -> AccountRow:
    async with catalog_write.write(conn, actor=actor) as w:
        old = await w.locked(
            "SELECT a.*, f.currency FROM cashless_account a JOIN festival f"
            " ON f.id = a.festival_id WHERE a.id = %s FOR UPDATE OF a",
            (account_id,),
            missing=f"no account {account_id}",
        )
        if amount < 0 and old["balance"] + amount < 0:
            held, asked = money(old["balance"], old["currency"]), money(-amount, old["currency"])
            raise Contradiction(
                f"wristband {account_id} holds {held}, less than {asked}", "insufficient_balance"
            )
        rec = await ledger_entry(conn, account_id, amount, type)
        if amount > 0 and rec["debt"] > 0 and rec["balance"] >= 0:
            # An overdraft block lasts until the account is topped up out of debt.
            rec = await fetch_one(
                conn,
                "UPDATE cashless_account SET debt = 0, blocked = false WHERE id = %s RETURNING *",
                (account_id,),
            )
        return await w.publish(
            rec["festival_id"], "account", account_row(rec), action=f"account.{type.lower()}",
            entity_type="cashless_account", entity_id=account_id, old=account_row(old),
        )  # fmt: skip


async def topup(
    conn: AsyncConnection[Any], account_id: uuid.UUID, amount: int, *, actor: str
) -> AccountRow:
    """Credit an account at the ops desk (a TOPUP ledger entry); clears a paid-off debt."""
    if amount <= 0:
        raise CatalogError("a top-up must be positive")
    return await _ops_change(conn, account_id, amount, TransactionType.TOPUP, actor)


async def refund(
    conn: AsyncConnection[Any], account_id: uuid.UUID, amount: int, *, actor: str
) -> AccountRow:
    """Pay back part of a balance at the ops desk (a negative REFUND ledger entry)."""
    if amount <= 0:
        raise CatalogError("a refund must be positive")
    return await _ops_change(conn, account_id, -amount, TransactionType.REFUND, actor)


async def set_blocked(
    conn: AsyncConnection[Any], account_id: uuid.UUID, blocked: bool, *, actor: str
) -> AccountRow:
    """Block or unblock an account by hand (lost wristband, cleared dispute)."""
    async with catalog_write.write(conn, actor=actor) as w:
        old = await w.locked(
            "SELECT * FROM cashless_account WHERE id = %s FOR UPDATE", (account_id,),
            missing=f"no account {account_id}",
        )  # fmt: skip
        rec = await fetch_one(
            conn,
            "UPDATE cashless_account SET blocked = %s WHERE id = %s RETURNING *",
            (blocked, account_id),
        )
        return await w.publish(
            rec["festival_id"], "account", account_row(rec),
            action="account.block" if blocked else "account.unblock",
            entity_type="cashless_account", entity_id=account_id, old=account_row(old),
        )  # fmt: skip


async def balance_from_ledger(conn: AsyncConnection[Any], account_id: uuid.UUID) -> int:
    """The account's balance as the sum of its ledger (what `balance` must equal).

    The ledger is central's own entries plus every approved device sale, top-up and refund
    (the `cashless_entry` view over `device_event`): facts are stored once, then derived.
    """
    cur = await conn.execute(
        "SELECT coalesce(sum(amount), 0) FROM cashless_entry WHERE account_id = %s",
        (account_id,),
    )
    rec = await cur.fetchone()
    assert rec is not None
    return int(rec[0])
