"""Catalog writes for festivals, categories, zones, vendors, products and the block list.

Every write is one transaction that changes the table, publishes the replicated row to
the change feed and appends to the audit log (`central.catalog_write`); a failure in any
step leaves none of them.
Tickets are in `central.tickets`, wristband accounts in `central.cashless`; a festival's
soft delete, which settles its devices too, in `central.festivals`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection

from central import catalog_write, keys, views
from central.errors import Contradiction, NotFound
from central.rows import (
    Record,
    category_row,
    festival_row,
    fetch_one,
    fetch_opt,
    product_row,
    vendor_row,
    zone_row,
)
from sync.catalog import BlockRow, CategoryRow, FestivalRow, ProductRow, VendorRow, ZoneRow
from sync.vocab import TicketType

VendorType = Literal["FOOD", "DRINK", "BAR", "MERCHANDISE"]
FestivalStatus = Literal["DRAFT", "PUBLISHED", "ONGOING", "COMPLETED", "CANCELLED"]


async def get_festival(conn: AsyncConnection[Any], ref: str | uuid.UUID) -> Record:
    """A live (not deleted) festival by id or slug; NotFound otherwise."""
    try:
        fid: uuid.UUID | None = ref if isinstance(ref, uuid.UUID) else uuid.UUID(ref)
    except ValueError:
        fid = None
    rec = await fetch_opt(
        conn,
        "SELECT * FROM festival WHERE (id = %s OR slug = %s) AND deleted_at IS NULL",
        (fid, str(ref)),
    )
    if rec is None:
        raise NotFound(f"no festival {ref}")
    return rec


async def create_festival(
    conn: AsyncConnection[Any],
    *,
    name: str,
    slug: str,
    actor: str,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    timezone: str = "Europe/Paris",
    currency: str = "EUR",
    offline_allowance: int = 2000,
    max_capacity: int | None = None,
    status: FestivalStatus = "DRAFT",
) -> FestivalRow:
    """Create a festival with a fresh hash key and its first signing key."""
    fid = uuid.uuid4()
    async with catalog_write.write(conn, actor=actor) as w:
        await views.check_time_zone(conn, timezone)
        rec = await w.insert(
            "INSERT INTO festival (id, name, slug, starts_at, ends_at, timezone, currency, "
            "offline_allowance, max_capacity, status, hash_key) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
            (fid, name, slug, starts_at, ends_at, timezone, currency, offline_allowance,
             max_capacity, status, os.urandom(32)),
            taken=f"a festival with slug {slug!r} exists",
        )  # fmt: skip
        row = await w.publish(
            fid, "festival", festival_row(rec), action="festival.create",
            entity_type="festival", entity_id=fid,
        )  # fmt: skip
        await keys.create_key(conn, fid, actor=actor)
    return row


async def create_category(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    *,
    name: str,
    type: TicketType,
    actor: str,
    price: int = 0,
    quota: int | None = None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
) -> CategoryRow:
    """Add a ticket category (its type decides zones; its window bounds its codes)."""
    async with catalog_write.write(conn, actor=actor) as w:
        rec = await w.insert(
            "INSERT INTO ticket_category (id, festival_id, name, type, price, quota, "
            "valid_from, valid_until) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
            (uuid.uuid4(), festival_id, name, type, price, quota, valid_from, valid_until),
            taken=f"category {name!r} exists",
        )
        return await w.publish(
            festival_id, "category", category_row(rec), action="category.create",
            entity_type="ticket_category", entity_id=rec["id"],
        )  # fmt: skip


async def create_zone(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    *,
    name: str,
    actor: str,
    capacity: int | None = None,
    required_types: Iterable[TicketType] = (),
    reentry: bool = True,
) -> ZoneRow:
    """Add an access zone (no required types: any ticket may enter)."""
    async with catalog_write.write(conn, actor=actor) as w:
        rec = await w.insert(
            "INSERT INTO zone (id, festival_id, name, capacity, required_types, reentry) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
            (uuid.uuid4(), festival_id, name, capacity, [str(t) for t in required_types],
             reentry),
            taken=f"zone {name!r} exists",
        )  # fmt: skip
        return await w.publish(
            festival_id, "zone", zone_row(rec), action="zone.create", entity_type="zone",
            entity_id=rec["id"],
        )  # fmt: skip


async def create_vendor(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    *,
    name: str,
    actor: str,
    type: VendorType = "BAR",
    commission_rate_bp: int = 0,
    is_open: bool = True,
) -> VendorRow:
    """Add a vendor (bar, food stand, merchandise)."""
    async with catalog_write.write(conn, actor=actor) as w:
        rec = await w.insert(
            "INSERT INTO vendor (id, festival_id, name, type, commission_rate_bp, is_open) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
            (uuid.uuid4(), festival_id, name, type, commission_rate_bp, is_open),
            taken=f"vendor {name!r} exists",
        )
        return await w.publish(
            festival_id, "vendor", vendor_row(rec), action="vendor.create",
            entity_type="vendor", entity_id=rec["id"],
        )  # fmt: skip


async def set_vendor_open(
    conn: AsyncConnection[Any], vendor_id: uuid.UUID, is_open: bool, *, actor: str
) -> VendorRow:
    """Open or close a vendor; a closed vendor's bars refuse sales (`vendor_closed`) from
    their next sync. Already so: Contradiction ``already_open``/``already_closed``, nothing
    stored."""
    async with catalog_write.write(conn, actor=actor) as w:
        old = await w.locked(
            "SELECT * FROM vendor WHERE id = %s FOR UPDATE", (vendor_id,),
            missing=f"no vendor {vendor_id}",
        )  # fmt: skip
        if old["is_open"] == is_open:
            state = "open" if is_open else "closed"
            raise Contradiction(f"vendor {old['name']!r} is already {state}", f"already_{state}")
        rec = await fetch_one(
            conn, "UPDATE vendor SET is_open = %s WHERE id = %s RETURNING *", (is_open, vendor_id)
        )
        return await w.publish(
            rec["festival_id"], "vendor", vendor_row(rec),
            action="vendor.open" if is_open else "vendor.close", entity_type="vendor",
            entity_id=vendor_id, old=vendor_row(old),
        )  # fmt: skip


async def create_product(
    conn: AsyncConnection[Any], vendor_id: uuid.UUID, *, name: str, price: int, actor: str
) -> ProductRow:
    """Add a product to a vendor's menu, priced in cents."""
    async with catalog_write.write(conn, actor=actor) as w:
        vendor = await fetch_opt(conn, "SELECT festival_id FROM vendor WHERE id = %s", (vendor_id,))
        if vendor is None:
            raise NotFound(f"no vendor {vendor_id}")
        rec = await w.insert(
            "INSERT INTO product (id, vendor_id, name, price) VALUES (%s, %s, %s, %s) RETURNING *",
            (uuid.uuid4(), vendor_id, name, price),
            taken=f"product {name!r} exists",
        )
        return await w.publish(
            vendor["festival_id"], "product", product_row(rec), action="product.create",
            entity_type="product", entity_id=rec["id"],
        )  # fmt: skip


async def block(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    *,
    kind: Literal["ticket", "tag"],
    ref: str,
    reason: str,
    actor: str,
) -> BlockRow:
    """Put a ticket id or a tag hash (hex) on the block list every device refuses; one
    already there is a Contradiction (``already_blocked``) and keeps its reason."""
    async with catalog_write.write(conn, actor=actor) as w:
        rec = await fetch_opt(
            conn,
            "INSERT INTO block_list (festival_id, kind, ref, reason) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (festival_id, kind, ref) DO NOTHING RETURNING *",
            (festival_id, kind, ref, reason),
        )
        if rec is None:
            raise Contradiction(f"{kind} {ref} is already blocked", "already_blocked")
        row = BlockRow(kind=rec["kind"], ref=rec["ref"], reason=rec["reason"])
        # Audited as the ticket (or tag hash) it is about, so the ticket's history shows who
        # blocked it; a tag hash may have no account yet.
        return await w.publish(
            festival_id, "block", row, action=f"{kind}.block", entity_type=kind, entity_id=ref
        )


async def unblock(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    *,
    kind: Literal["ticket", "tag"],
    ref: str,
    actor: str,
) -> BlockRow:
    """Take an entry off the block list (a delete goes down the feed); one not there is a
    Contradiction (``not_blocked``)."""
    async with catalog_write.write(conn, actor=actor) as w:
        rec = await fetch_opt(
            conn,
            "DELETE FROM block_list WHERE festival_id = %s AND kind = %s AND ref = %s RETURNING *",
            (festival_id, kind, ref),
        )
        if rec is None:
            raise Contradiction(f"{kind} {ref} is not blocked", "not_blocked")
        row = BlockRow(kind=rec["kind"], ref=rec["ref"], reason=rec["reason"])
        return await w.publish(
            festival_id, "block", row, action=f"{kind}.unblock", entity_type=kind,
            entity_id=ref, old=row, op="delete",
        )  # fmt: skip
