"""A small but complete festival built through the catalog writes (central's tests, benches)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from central import cashless, catalog, keys, tickets
from central.rows import fetch_one
from central.tickets import IssuedTicket
from sync.vocab import TicketType


@dataclass(frozen=True, slots=True)
class SampleFestival:
    """Ids and secrets of a sample festival (codes and tag UIDs a test can scan)."""

    festival_id: uuid.UUID
    slug: str
    hash_key: bytes
    key_id: int
    public_key: bytes
    category_id: uuid.UUID
    zone_id: uuid.UUID
    tickets: tuple[IssuedTicket, ...]  # signed codes
    opaque_tickets: tuple[IssuedTicket, ...]  # outside-system codes
    vendor_id: uuid.UUID
    product_id: uuid.UUID
    product_price: int
    account_ids: tuple[uuid.UUID, ...]
    tag_uids: tuple[str, ...]
    opening_balance: int


async def create_sample_festival(
    conn: AsyncConnection[Any],
    *,
    slug: str | None = None,
    name: str = "Sample Festival",
    signed_tickets: int = 3,
    opaque_tickets: int = 1,
    wristbands: int = 1,
    opening_balance: int = 5000,
    actor: str = "sample",
) -> SampleFestival:
    """Create a festival with a key, a category, a zone, tickets, a bar with a product and
    wristband accounts, each through the catalog write functions."""
    slug = slug or f"sample-{uuid.uuid4().hex[:8]}"
    fest = await catalog.create_festival(conn, name=name, slug=slug, actor=actor)
    fid = uuid.UUID(fest.id)
    key = await keys.current_key(conn, fid)
    pub = await keys.public_keys(conn, fid)
    category = await catalog.create_category(
        conn, fid, name="Weekend", type=TicketType.STANDARD, price=12000, actor=actor
    )
    cid = uuid.UUID(category.id)
    zone = await catalog.create_zone(conn, fid, name="Main gate", capacity=1000, actor=actor)
    signed = [
        await tickets.issue_ticket(conn, fid, category_id=cid, actor=actor)
        for _ in range(signed_tickets)
    ]
    opaque = [
        await tickets.add_opaque_ticket(
            conn, fid, category_id=cid, code=f"EXT-{slug}-{i}", actor=actor
        )
        for i in range(opaque_tickets)
    ]
    vendor = await catalog.create_vendor(conn, fid, name="Main bar", actor=actor)
    product = await catalog.create_product(
        conn, uuid.UUID(vendor.id), name="Beer", price=450, actor=actor
    )
    uids = tuple(f"04{fid.bytes[:3].hex()}{i:06x}" for i in range(wristbands))
    accounts = [
        await cashless.create_account(
            conn, fid, tag_uid=uid, opening_balance=opening_balance, actor=actor
        )
        for uid in uids
    ]
    rec = await fetch_one(conn, "SELECT hash_key FROM festival WHERE id = %s", (fid,))
    return SampleFestival(
        festival_id=fid,
        slug=slug,
        hash_key=bytes(rec["hash_key"]),
        key_id=key.key_id,
        public_key=pub[key.key_id],
        category_id=cid,
        zone_id=uuid.UUID(zone.id),
        tickets=tuple(signed),
        opaque_tickets=tuple(opaque),
        vendor_id=uuid.UUID(vendor.id),
        product_id=uuid.UUID(product.id),
        product_price=product.price,
        account_ids=tuple(uuid.UUID(a.id) for a in accounts),
        tag_uids=uids,
        opening_balance=opening_balance,
    )
