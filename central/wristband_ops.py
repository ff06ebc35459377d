"""What ops do with one wristband: show it with its ledger, block, unblock, top up, refund.

The ops API and the CLI both call these with the festival and the wristband's account
already found (`central.refs.wristband`). Each write is one transaction under the
festival's accounts lock (the ingest lock's half for money, so no bar's batch classifies
the account meanwhile): the change (`central.cashless`, `central.catalog`), then the
account's rules re-run (`central.settle`: a top-up may clear a debt hold, a block makes
later offline sales conflicts), everything published to the change feed and audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from central import cashless, catalog, feed, ops, readable, settle
from central.errors import Contradiction, NotFound
from central.ingest import festival_lock
from central.readable import AuditEntry, Local
from central.rows import fetch_all
from sync.vocab import TransactionType


class WristbandInfo(BaseModel):
    """A wristband's account as ops see it (its tag UID is stored only as a keyed hash)."""

    id: uuid.UUID
    tag_hash: str = Field(description="hex")
    balance: int = Field(description="cents; below zero after offline overdrafts")
    debt: int = Field(ge=0, description="cents")
    currency: str
    blocked: bool = Field(description="devices refuse it: block list, debt hold or a manual block")
    held: bool = Field(description="held by central while in debt, until a top-up clears it")
    listed: bool = Field(description="on the block list: ops blocked it")
    block_reason: str | None = Field(description="why it is on the block list")
    created_at: datetime


class WristbandDone(WristbandInfo):
    """A wristband after an ops write."""

    seq: int = Field(ge=0, description="feed head after the write: devices act once they have it")


class LedgerLine(BaseModel):
    """One ledger entry: central's own (opening, desk top-up or refund) or a device's fact."""

    id: int | None = Field(description="central's entries only")
    at: datetime = Field(description="when it happened, in the festival's time zone")
    type: TransactionType
    amount: int = Field(description="cents, signed: a sale is negative")
    balance_before: int
    balance_after: int
    event_id: uuid.UUID | None
    device_id: uuid.UUID | None
    device: str | None
    vendor_id: uuid.UUID | None
    vendor: str | None


class WristbandShow(BaseModel):
    """A wristband with its ledger in replay order, its conflicts and its audit trail."""

    account: WristbandInfo
    timezone: str = Field(description="the festival's, which every time here carries")
    ledger: list[LedgerLine]
    conflicts: list[ops.ConflictItem]
    audit: list[AuditEntry]


_ACCOUNT = """
SELECT a.id, encode(a.tag_hash, 'hex') AS tag_hash, a.balance, a.debt, a.blocked,
       h.account_id IS NOT NULL AS held, b.ref IS NOT NULL AS listed, b.reason AS block_reason,
       a.created_at
FROM cashless_account a LEFT JOIN account_hold h ON h.account_id = a.id
LEFT JOIN block_list b ON b.festival_id = a.festival_id AND b.kind = 'tag'
     AND b.ref = encode(a.tag_hash, 'hex')
WHERE a.id = %s AND a.festival_id = %s
"""


async def _info(conn: AsyncConnection[Any], where: Local, account_id: uuid.UUID) -> WristbandInfo:
    found = await fetch_all(conn, _ACCOUNT, (account_id, where.festival_id))
    if not found:
        raise NotFound(f"no wristband {account_id} in this festival")
    rec = found[0] | {"created_at": where.at(found[0]["created_at"])}
    return WristbandInfo(**rec, currency=where.currency)


async def show(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, account_id: uuid.UUID
) -> WristbandShow:
    """A wristband's account, every ledger entry with balance before/after, its conflicts.

    Entries come in replay order (HLC for device facts, central's clock for its own), the
    order that also gives each its balance before and after (see the `cashless_ledger` view).
    """
    where = await readable.local(conn, festival_id)
    info = await _info(conn, where, account_id)
    # Device facts in the one order of facts, `sync.hlc.fact_order` (ids as text in "C").
    ledger = await fetch_all(
        conn,
        "SELECT id, type, amount, balance_before, balance_after, event_id, device_id,"
        " vendor_id, created_at FROM cashless_ledger WHERE account_id = %s"
        ' ORDER BY ord_hlc, ord_device COLLATE "C", ord_seq',
        (account_id,),
    )
    entities = [("cashless_account", str(account_id)), ("tag", info.tag_hash)]
    conflicts, audit = await ops.history(conn, where, "account", account_id, entities)
    return WristbandShow(
        account=info,
        timezone=where.timezone,
        ledger=[
            LedgerLine(
                **{k: v for k, v in e.items() if k != "created_at"},
                at=where.at(e["created_at"]),
                device=where.name(e["device_id"]),
                vendor=where.name(e["vendor_id"]),
            )
            for e in ledger
        ],
        conflicts=conflicts,
        audit=audit,
    )


Change = Callable[[WristbandInfo], Awaitable[object]]


async def _write(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, account_id: uuid.UUID, change: Change
) -> WristbandDone:
    """Lock the festival's accounts and the account, make `change`, re-run its rules."""
    async with conn.transaction():
        await festival_lock(conn, festival_id, tickets=False)
        where = await readable.local(conn, festival_id)
        await conn.execute("SELECT 1 FROM cashless_account WHERE id = %s FOR UPDATE", (account_id,))
        await change(await _info(conn, where, account_id))
        await settle.classify_accounts(conn, festival_id, [account_id])
        info = await _info(conn, where, account_id)
        return WristbandDone(**info.model_dump(), seq=await feed.head(conn, festival_id))


async def block(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    account_id: uuid.UUID,
    *,
    reason: str,
    actor: str,
) -> WristbandDone:
    """Put a wristband's tag on the block list (lost, stolen): devices refuse it
    (``tag_blocked``), and a sale made offline after it is a conflict."""

    async def change(info: WristbandInfo) -> None:
        await catalog.block(
            conn, festival_id, kind="tag", ref=info.tag_hash, reason=reason, actor=actor
        )

    return await _write(conn, festival_id, account_id, change)


async def unblock(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, account_id: uuid.UUID, *, actor: str
) -> WristbandDone:
    """Take a wristband off the block list (and clear a block made by hand); a debt hold
    stays until a top-up clears the debt."""

    async def change(info: WristbandInfo) -> None:
        flagged = info.blocked and not info.held  # the account's own flag, beyond a debt hold
        if not info.listed and not flagged:
            if info.held:
                debt = readable.money(info.debt, info.currency)
                raise Contradiction(
                    f"wristband is held for a debt of {debt}: top it up", "held_for_debt"
                )
            raise Contradiction(f"wristband {account_id} is not blocked", "not_blocked")
        if info.listed:
            await catalog.unblock(conn, festival_id, kind="tag", ref=info.tag_hash, actor=actor)
        if flagged:
            await cashless.set_blocked(conn, account_id, False, actor=actor)

    return await _write(conn, festival_id, account_id, change)


Book = Callable[..., Awaitable[object]]  # `cashless.topup` or `cashless.refund`


async def _book(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    account_id: uuid.UUID,
    book: Book,
    amount: int,
    actor: str,
) -> WristbandDone:
    """A ledger entry made at the ops desk, under the locks, then the account's rules."""

    async def change(_: WristbandInfo) -> None:
        await book(conn, account_id, amount, actor=actor)

    return await _write(conn, festival_id, account_id, change)


async def topup(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    account_id: uuid.UUID,
    amount: int,
    *,
    actor: str,
) -> WristbandDone:
    """Credit a wristband at the ops desk (a TOPUP entry); a debt it clears lifts the hold."""
    return await _book(conn, festival_id, account_id, cashless.topup, amount, actor)


async def refund(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    account_id: uuid.UUID,
    amount: int,
    *,
    actor: str,
) -> WristbandDone:
    """Pay money back from a wristband at the ops desk (a REFUND entry); more than its
    balance is a Contradiction (``insufficient_balance``) and changes nothing."""
    return await _book(conn, festival_id, account_id, cashless.refund, amount, actor)
