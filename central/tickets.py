"""Ticket writes: issue signed codes, add opaque codes, status changes, transfer/resale.

Signed tickets carry no code hash: the gate verifies the signature and compares the code's
``code_version`` with the replicated row. Opaque tickets (from an outside ticketing system)
are found by keyed hash. Transfer revokes the old code: a signed ticket gets
``code_version + 1`` (the old QR now carries a stale version), an opaque one a new hash.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, errors

from central import catalog_write, code_entropy, keys
from central.errors import CatalogError, Contradiction, NotFound
from central.rows import Record, fetch_one, fetch_opt, ticket_row, unix
from sync import hashing
from sync.catalog import TicketRow
from sync.vocab import TicketStatus, TicketType

S = TicketStatus
# Lifecycle from the seed model; USED → CANCELLED lets ops void a ticket after entry.
TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    S.AVAILABLE: frozenset({S.RESERVED, S.SOLD, S.CANCELLED}),
    S.RESERVED: frozenset({S.AVAILABLE, S.SOLD, S.CANCELLED}),
    S.SOLD: frozenset({S.USED, S.CANCELLED}),
    S.USED: frozenset({S.CANCELLED}),
    S.CANCELLED: frozenset({S.REFUNDED}),
    S.REFUNDED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class IssuedTicket:
    """A ticket just issued or re-issued, with the code to hand to its holder (shown once)."""

    ticket_id: uuid.UUID
    code: str
    row: TicketRow
    holder_ref: str | None = None  # the order it was sold under (central only, never replicated)


def new_outside_code() -> str:
    """A fresh outside code: 128 random bits as 26 base32 characters (A-Z, 2-7), which read
    aloud and type without ambiguity and survive offline guessing (`central.code_entropy`)."""
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")


async def _category(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, category_id: uuid.UUID
) -> Record:
    rec = await fetch_opt(
        conn,
        "SELECT * FROM ticket_category WHERE id = %s AND festival_id = %s",
        (category_id, festival_id),
    )
    if rec is None:
        raise NotFound(f"no category {category_id} in festival {festival_id}")
    return rec


async def _hash_key(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> bytes:
    rec = await fetch_one(conn, "SELECT hash_key FROM festival WHERE id = %s", (festival_id,))
    return bytes(rec["hash_key"])


def signed_code(key: keys.SigningKey, ticket: Record, category: Record) -> str:
    """The QR text for a signed ticket at its current code_version."""
    return keys.sign(
        key,
        festival_id=ticket["festival_id"],
        ticket_id=ticket["id"],
        ticket_type=TicketType(category["type"]),
        code_version=ticket["code_version"],
        valid_from=unix(category["valid_from"]),
        valid_until=unix(category["valid_until"]),
    )


async def _insert(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    category: Record,
    *,
    code_hash: bytes | None,
    status: TicketStatus,
    holder_ref: str | None,
    purchase_price: int | None,
    code_bits: int | None = None,
) -> Record:
    try:
        return await fetch_one(
            conn,
            "INSERT INTO ticket (id, festival_id, category_id, status, code_hash, code_bits, "
            "purchase_price, holder_ref) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
            (
                uuid.uuid4(),
                festival_id,
                category["id"],
                status,
                code_hash,
                code_bits,
                category["price"] if purchase_price is None else purchase_price,
                holder_ref,
            ),
        )
    except errors.UniqueViolation:
        raise Contradiction("a ticket with this code exists", "code_taken") from None


async def issue_ticket(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    *,
    category_id: uuid.UUID,
    actor: str,
    holder_ref: str | None = None,
    purchase_price: int | None = None,
    status: TicketStatus = S.SOLD,
) -> IssuedTicket:
    """Issue a ticket with a signed code from the festival's current key."""
    async with catalog_write.write(conn, actor=actor) as w:
        category = await _category(conn, festival_id, category_id)
        key = await keys.current_key(conn, festival_id)
        rec = await _insert(
            conn,
            festival_id,
            category,
            code_hash=None,
            status=status,
            holder_ref=holder_ref,
            purchase_price=purchase_price,
        )
        code = signed_code(key, rec, category)
        rec = await _vouch(conn, rec, code)
        return await _published(w, rec, code, "ticket.issue")


async def add_opaque_ticket(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    *,
    category_id: uuid.UUID,
    code: str,
    actor: str,
    holder_ref: str | None = None,
    purchase_price: int | None = None,
    status: TicketStatus = S.SOLD,
) -> IssuedTicket:
    """Add a ticket whose code comes from an outside system (stored only as a keyed hash, with
    its estimated entropy; one code alone is not refused: `central.imports` is ops' way in)."""
    async with catalog_write.write(conn, actor=actor) as w:
        category = await _category(conn, festival_id, category_id)
        code_hash = hashing.code_hash(await _hash_key(conn, festival_id), code)
        rec = await _insert(
            conn,
            festival_id,
            category,
            code_hash=code_hash,
            code_bits=code_entropy.code_bits(code),
            status=status,
            holder_ref=holder_ref,
            purchase_price=purchase_price,
        )
        return await _published(w, rec, code, "ticket.import")


async def _vouch(conn: AsyncConnection[Any], rec: Record, code: str) -> Record:
    """Record the keyed hash of a ticket's current signed code (the old code's hash goes)."""
    signed_hash = hashing.code_hash(await _hash_key(conn, rec["festival_id"]), code)
    return await fetch_one(
        conn,
        "UPDATE ticket SET signed_hash = %s WHERE id = %s RETURNING *",
        (signed_hash, rec["id"]),
    )


async def _published(w: catalog_write.Write, rec: Record, code: str, action: str) -> IssuedTicket:
    row = ticket_row(rec)
    # The audit keeps the holder; the feed never carries it (nothing personal goes down).
    new = row.model_dump(mode="json") | {"holder_ref": rec["holder_ref"]}
    row = await w.publish(
        rec["festival_id"], "ticket", row, action=action, entity_type="ticket",
        entity_id=rec["id"], new=new,
    )  # fmt: skip
    return IssuedTicket(ticket_id=rec["id"], code=code, row=row)


async def _locked(w: catalog_write.Write, ticket_id: uuid.UUID) -> Record:
    return await w.locked(
        "SELECT * FROM ticket WHERE id = %s FOR UPDATE", (ticket_id,),
        missing=f"no ticket {ticket_id}",
    )  # fmt: skip


async def set_status(
    conn: AsyncConnection[Any], ticket_id: uuid.UUID, status: TicketStatus, *, actor: str
) -> TicketRow:
    """Move a ticket along its lifecycle (Contradiction for a move the lifecycle forbids)."""
    async with catalog_write.write(conn, actor=actor) as w:
        old = await _locked(w, ticket_id)
        current = TicketStatus(old["status"])
        if status not in TRANSITIONS[current]:
            hint = " (only a cancelled ticket is refunded)" if status is S.REFUNDED else ""
            raise Contradiction(
                f"ticket {ticket_id} is {current}; it cannot become {status}{hint}", "wrong_status"
            )
        rec = await fetch_one(
            conn,
            "UPDATE ticket SET status = %s, updated_at = now(), "
            "used_at = CASE WHEN %s = 'USED' THEN coalesce(used_at, now()) ELSE used_at END "
            "WHERE id = %s RETURNING *",
            (status, status, ticket_id),
        )
        return await w.publish(
            rec["festival_id"], "ticket", ticket_row(rec), action=f"ticket.{status.lower()}",
            entity_type="ticket", entity_id=ticket_id, old=ticket_row(old),
        )  # fmt: skip


async def cancel_ticket(
    conn: AsyncConnection[Any], ticket_id: uuid.UUID, *, actor: str
) -> TicketRow:
    """Cancel a ticket; gates refuse it from their next sync (or at once, online)."""
    return await set_status(conn, ticket_id, S.CANCELLED, actor=actor)


async def refund_ticket(
    conn: AsyncConnection[Any], ticket_id: uuid.UUID, *, actor: str
) -> TicketRow:
    """Mark a cancelled ticket refunded."""
    return await set_status(conn, ticket_id, S.REFUNDED, actor=actor)


async def _outside_code(
    conn: AsyncConnection[Any], old: Record, new_code: str | None, accept_weak_code: bool
) -> str:
    """The code an outside ticket moves to: `new_code`, unless it is too weak to survive
    offline guessing among the festival's outside codes, or a random one."""
    if new_code is None:
        return new_outside_code()
    cur = await conn.execute(
        "SELECT count(*) FROM ticket WHERE festival_id = %s AND code_hash IS NOT NULL",
        (old["festival_id"],),
    )
    rec = await cur.fetchone()
    strength = code_entropy.assess([new_code], int(rec[0]) if rec else 1)
    if strength.weak and not accept_weak_code:
        raise CatalogError(
            f"the new outside code is too weak to survive offline guessing: about "
            f"{strength.weakest.bits:.1f} bits where codes need "
            f"{code_entropy.needed_bits(strength.codes)} here; leave it out for a random one, "
            f"or accept a weak code explicitly"
        )
    return new_code


async def transfer_ticket(
    conn: AsyncConnection[Any],
    ticket_id: uuid.UUID,
    *,
    actor: str,
    holder_ref: str | None = None,
    new_code: str | None = None,
    accept_weak_code: bool = False,
) -> IssuedTicket:
    """Transfer or resell a sold ticket: a new code for the new holder, the old one revoked.

    Signed tickets get code_version + 1 and a freshly signed code (a `new_code` for one is
    refused); outside tickets get `new_code` (refused when too weak, unless
    `accept_weak_code`) or a random one in place of the old hash.
    """
    async with catalog_write.write(conn, actor=actor) as w:
        old = await _locked(w, ticket_id)
        if old["status"] != S.SOLD:
            raise Contradiction(
                f"ticket {ticket_id} is {old['status']}; only SOLD tickets transfer",
                "wrong_status",
            )
        fid = old["festival_id"]
        if old["code_hash"] is None:
            if new_code is not None:
                raise CatalogError(
                    "a signed ticket gets a newly signed code; a new code is for outside tickets"
                )
            if old["code_version"] >= 0xFFFF:
                raise Contradiction(
                    f"ticket {ticket_id} has been transferred too often", "too_many_transfers"
                )
            rec = await fetch_one(
                conn,
                "UPDATE ticket SET code_version = code_version + 1, holder_ref = %s, "
                "updated_at = now() WHERE id = %s RETURNING *",
                (holder_ref, ticket_id),
            )
            category = await _category(conn, fid, rec["category_id"])
            code = signed_code(await keys.current_key(conn, fid), rec, category)
            rec = await _vouch(conn, rec, code)
        else:
            code = await _outside_code(conn, old, new_code, accept_weak_code)
            code_hash = hashing.code_hash(await _hash_key(conn, fid), code)
            if code_hash == old["code_hash"]:
                raise Contradiction("the new code is the ticket's current code", "same_code")
            try:
                rec = await fetch_one(
                    conn,
                    "UPDATE ticket SET code_hash = %s, code_bits = %s, holder_ref = %s, "
                    "updated_at = now() WHERE id = %s RETURNING *",
                    (code_hash, code_entropy.code_bits(code), holder_ref, ticket_id),
                )
            except errors.UniqueViolation:
                raise Contradiction("a ticket with this code exists", "code_taken") from None
        row = ticket_row(rec)
        row = await w.publish(
            fid, "ticket", row, action="ticket.transfer", entity_type="ticket",
            entity_id=ticket_id,
            old=ticket_row(old).model_dump(mode="json") | {"holder_ref": old["holder_ref"]},
            new=row.model_dump(mode="json") | {"holder_ref": holder_ref},
        )  # fmt: skip
    return IssuedTicket(ticket_id=ticket_id, code=code, row=row)
