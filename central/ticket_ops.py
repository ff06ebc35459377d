"""What ops do with one ticket: show it with its history, cancel, block, unblock, transfer
or resell, refund.

The ops API and the CLI both call these with the festival and the ticket already found
(`central.refs.ticket`); they differ only in who may ask and how they print. Each write is
one transaction that changes the ticket (or the block list), publishes it to the change
feed and appends to the audit log (`central.tickets`, `central.catalog`); the answer is the
ticket as it stands after, with the feed seq a device must reach to know of the write.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from central import catalog, ops, readable, tickets
from central.errors import NotFound
from central.readable import AuditEntry, Local
from central.rows import fetch_all
from sync.vocab import TicketStatus, TicketType


class TicketInfo(BaseModel):
    """A ticket as ops see it (its code is never stored in the clear, only its kind)."""

    id: uuid.UUID
    status: TicketStatus
    category_id: uuid.UUID
    category: str
    ticket_type: TicketType
    code_kind: Literal["signed", "outside"]
    code_version: int = Field(ge=0, le=0xFFFF, description="a transfer bumps it: old codes revoked")
    holder_ref: str | None
    purchase_price: int = Field(ge=0, description="cents")
    currency: str
    suspicious: bool = Field(description="it has an open duplicate entry")
    blocked: bool
    block_reason: str | None
    used_at: datetime | None = Field(description="its first admission, or when ops marked it used")
    created_at: datetime
    updated_at: datetime


class TicketDone(TicketInfo):
    """A ticket after an ops write."""

    seq: int = Field(ge=0, description="the write's feed seq: devices act on it once they have it")
    code: str | None = Field(None, description="a transfer's new code, shown this once")


class Scan(BaseModel):
    """A device's fact about the ticket, whatever its verdict."""

    event_id: uuid.UUID
    at: datetime = Field(description="when it happened (its HLC), in the festival's time zone")
    device_id: uuid.UUID
    device: str
    device_seq: int
    kind: str
    verdict: str
    zone_id: uuid.UUID | None
    zone: str | None
    catalog_seq: int = Field(description="the change-feed seq the device had seen")
    received_at: datetime


class Movement(BaseModel):
    """An admitted entry or exit of the zone access log."""

    at: datetime
    action: Literal["ENTRY", "EXIT"]
    zone_id: uuid.UUID
    zone: str | None
    device_id: uuid.UUID
    device: str | None
    event_id: uuid.UUID


class TicketShow(BaseModel):
    """A ticket with its history: scans, access log, conflicts and audit trail."""

    ticket: TicketInfo
    timezone: str = Field(description="the festival's, which every time here carries")
    events: list[Scan]
    access_log: list[Movement]
    conflicts: list[ops.ConflictItem]
    audit: list[AuditEntry]


_INFO = """
SELECT t.id, t.status, t.category_id, c.name AS category, c.type AS ticket_type,
       CASE WHEN t.code_hash IS NULL THEN 'signed' ELSE 'outside' END AS code_kind,
       t.code_version, t.holder_ref, t.purchase_price, t.suspicious,
       b.ref IS NOT NULL AS blocked, b.reason AS block_reason,
       least(t.used_at, (SELECT min(a.at) FROM zone_access_log a
                         WHERE a.ticket_id = t.id AND a.action = 'ENTRY')) AS used_at,
       t.created_at, t.updated_at
FROM ticket t JOIN ticket_category c ON c.id = t.category_id
LEFT JOIN block_list b ON b.festival_id = t.festival_id AND b.kind = 'ticket'
     AND b.ref = t.id::text
WHERE t.id = %s AND t.festival_id = %s
"""


async def _info(conn: AsyncConnection[Any], where: Local, ticket_id: uuid.UUID) -> TicketInfo:
    found = await fetch_all(conn, _INFO, (ticket_id, where.festival_id))
    if not found:
        raise NotFound(f"no ticket {ticket_id} in this festival")
    rec = found[0]
    for key in ("used_at", "created_at", "updated_at"):
        rec[key] = where.at(rec[key])
    return TicketInfo(**rec, currency=where.currency)


async def show(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, ticket_id: uuid.UUID
) -> TicketShow:
    """A ticket's state, its scans (all verdicts), access log, conflicts and audit trail."""
    where = await readable.local(conn, festival_id)
    info = await _info(conn, where, ticket_id)
    # Both in the one order of facts, `sync.hlc.fact_order`: (hlc, device_id, device_seq).
    scans = await fetch_all(
        conn,
        "SELECT event_id, hlc, device_id, device_seq, kind, verdict, zone_id, catalog_seq,"
        " received_at FROM device_event WHERE festival_id = %s AND ticket_id = %s"
        " AND status = 'applied' ORDER BY hlc, device_id, device_seq",
        (festival_id, ticket_id),
    )
    moves = await fetch_all(
        conn,
        "SELECT at, action, zone_id, device_id, event_id FROM zone_access_log"
        " WHERE ticket_id = %s ORDER BY hlc, device_id, device_seq",
        (ticket_id,),
    )
    conflicts, audit = await ops.history(
        conn, where, "ticket", ticket_id, [("ticket", str(ticket_id))]
    )
    return TicketShow(
        ticket=info,
        timezone=where.timezone,
        events=[
            Scan(
                **{k: v for k, v in s.items() if k != "hlc"},
                at=where.at_hlc(s["hlc"]),
                device=where.name(s["device_id"]),
                zone=where.name(s["zone_id"]),
            )
            for s in scans
        ],
        access_log=[
            Movement(
                **{k: v for k, v in m.items() if k != "at"},
                at=where.at(m["at"]),
                zone=where.name(m["zone_id"]),
                device=where.name(m["device_id"]),
            )
            for m in moves
        ],
        conflicts=conflicts,
        audit=audit,
    )


async def _done(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    ticket_id: uuid.UUID,
    seq: int,
    code: str | None = None,
) -> TicketDone:
    info = await _info(conn, await readable.local(conn, festival_id), ticket_id)
    return TicketDone(**info.model_dump(), seq=seq, code=code)


async def cancel(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, ticket_id: uuid.UUID, *, actor: str
) -> TicketDone:
    """Cancel a ticket; gates refuse it (``cancelled``) once they have the change."""
    row = await tickets.cancel_ticket(conn, ticket_id, actor=actor)
    return await _done(conn, festival_id, ticket_id, row.seq)


async def refund(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, ticket_id: uuid.UUID, *, actor: str
) -> TicketDone:
    """Mark a cancelled ticket refunded (the lifecycle refunds only cancelled tickets)."""
    row = await tickets.refund_ticket(conn, ticket_id, actor=actor)
    return await _done(conn, festival_id, ticket_id, row.seq)


async def block(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    ticket_id: uuid.UUID,
    *,
    reason: str,
    actor: str,
) -> TicketDone:
    """Put a ticket on the block list; gates refuse it (``blocked``) once they have it."""
    row = await catalog.block(
        conn, festival_id, kind="ticket", ref=str(ticket_id), reason=reason, actor=actor
    )
    return await _done(conn, festival_id, ticket_id, row.seq)


async def unblock(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, ticket_id: uuid.UUID, *, actor: str
) -> TicketDone:
    """Take a ticket off the block list."""
    row = await catalog.unblock(conn, festival_id, kind="ticket", ref=str(ticket_id), actor=actor)
    return await _done(conn, festival_id, ticket_id, row.seq)


async def transfer(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    ticket_id: uuid.UUID,
    *,
    actor: str,
    holder_ref: str | None = None,
    new_code: str | None = None,
    accept_weak_code: bool = False,
) -> TicketDone:
    """Transfer or resell a sold ticket: a new code (returned this once), the old one
    revoked (see `central.tickets.transfer_ticket`)."""
    moved = await tickets.transfer_ticket(
        conn, ticket_id, actor=actor, holder_ref=holder_ref, new_code=new_code,
        accept_weak_code=accept_weak_code,
    )  # fmt: skip
    return await _done(conn, festival_id, ticket_id, moved.row.seq, moved.code)
