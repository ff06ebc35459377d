"""Database records → the replicated projections devices receive (sync.catalog rows)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from central.errors import NotFound
from sync.catalog import (
    AccountRow,
    CategoryRow,
    FestivalRow,
    ProductRow,
    Row,
    SigningKeyRow,
    TicketRow,
    VendorRow,
    ZoneRow,
)
from sync.vocab import TicketStatus, TicketType

Record = dict[str, Any]


def unix(value: datetime | None) -> int | None:
    """A timestamptz as unix seconds, as devices see times."""
    return None if value is None else int(value.timestamp())


async def fetch_one(conn: AsyncConnection[Any], query: str, params: tuple[Any, ...]) -> Record:
    """Run a query that must return a row; NotFound when it returns none."""
    rec = await fetch_opt(conn, query, params)
    if rec is None:
        raise NotFound("no such row")
    return rec


async def fetch_opt(
    conn: AsyncConnection[Any], query: str, params: tuple[Any, ...]
) -> Record | None:
    """Run a query and return its first row as a dict, or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def fetch_all(
    conn: AsyncConnection[Any], query: str, params: tuple[Any, ...] | dict[str, Any]
) -> list[Record]:
    """Run a query and return its rows as dicts."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


def festival_row(r: Record) -> FestivalRow:
    """Project a festival record."""
    return FestivalRow(
        id=str(r["id"]),
        name=r["name"],
        starts_at=unix(r["starts_at"]),
        ends_at=unix(r["ends_at"]),
        currency=r["currency"],
        offline_allowance=r["offline_allowance"],
        hash_key=bytes(r["hash_key"]).hex(),
    )


def signing_key_row(r: Record) -> SigningKeyRow:
    """Project a signing key (public half only)."""
    return SigningKeyRow(
        key_id=r["key_id"],
        festival_id=str(r["festival_id"]),
        public_key=bytes(r["public_key"]).hex(),
        revoked=r["revoked"],
    )


def category_row(r: Record) -> CategoryRow:
    """Project a ticket category."""
    return CategoryRow(
        id=str(r["id"]),
        festival_id=str(r["festival_id"]),
        name=r["name"],
        type=TicketType(r["type"]),
        valid_from=unix(r["valid_from"]),
        valid_until=unix(r["valid_until"]),
    )


def ticket_row(r: Record) -> TicketRow:
    """Project a ticket (no holder, no plaintext code)."""
    # Devices see one keyed hash of the current code, opaque or signed: for a signed code it
    # is central's vouch, so a gate holding the ticket can skip the signature check.
    code_hash = r["code_hash"] if r["code_hash"] is not None else r.get("signed_hash")
    return TicketRow(
        id=str(r["id"]),
        festival_id=str(r["festival_id"]),
        category_id=str(r["category_id"]),
        status=TicketStatus(r["status"]),
        code_hash=None if code_hash is None else bytes(code_hash).hex(),
        code_version=r["code_version"],
        suspicious=r["suspicious"],
    )


def zone_row(r: Record) -> ZoneRow:
    """Project a zone; occupancy is floored at 0 for devices."""
    return ZoneRow(
        id=str(r["id"]),
        festival_id=str(r["festival_id"]),
        name=r["name"],
        capacity=r["capacity"],
        occupancy=max(0, r["occupancy"]),
        required_types=tuple(TicketType(t) for t in r["required_types"]),
        reentry=r["reentry"],
    )


def account_row(r: Record) -> AccountRow:
    """Project a cashless account."""
    return AccountRow(
        id=str(r["id"]),
        festival_id=str(r["festival_id"]),
        tag_hash=bytes(r["tag_hash"]).hex(),
        balance=r["balance"],
        blocked=r["blocked"],
    )


def vendor_row(r: Record) -> VendorRow:
    """Project a vendor."""
    return VendorRow(
        id=str(r["id"]), festival_id=str(r["festival_id"]), name=r["name"], is_open=r["is_open"]
    )


def product_row(r: Record) -> ProductRow:
    """Project a product."""
    return ProductRow(
        id=str(r["id"]), vendor_id=str(r["vendor_id"]), name=r["name"], price=r["price"]
    )


_LOADERS: dict[str, tuple[str, Any]] = {
    "festival": ("SELECT * FROM festival WHERE id = %s", festival_row),
    "category": ("SELECT * FROM ticket_category WHERE id = %s", category_row),
    "ticket": ("SELECT * FROM ticket WHERE id = %s", ticket_row),
    "zone": ("SELECT * FROM zone WHERE id = %s", zone_row),
    "account": ("SELECT * FROM cashless_account WHERE id = %s", account_row),
    "vendor": ("SELECT * FROM vendor WHERE id = %s", vendor_row),
    "product": ("SELECT * FROM product WHERE id = %s", product_row),
}


async def load_row(conn: AsyncConnection[Any], table: str, row_id: uuid.UUID) -> Row:
    """The current projection of one row by id (e.g. to republish it after a change)."""
    query, project = _LOADERS[table]
    try:
        rec = await fetch_one(conn, query, (row_id,))
    except NotFound:
        raise NotFound(f"no {table} {row_id}") from None
    row: Row = project(rec)
    return row
