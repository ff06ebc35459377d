"""Catalog rows as central replicates them down: one model per replicated table.

Every row carries the change-feed ``seq`` that last touched it (a snapshot's presence and
account rows carry the snapshot's seq, at or after that). Times are unix seconds (int);
money is integer cents; hashes and keys are lowercase hex.
Nothing here is personal data.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from sync.vocab import TicketStatus, TicketType

Hex = Annotated[str, Field(pattern=r"^[0-9a-f]*$", max_length=128)]
Id = Annotated[str, Field(min_length=1, max_length=64)]
Cents = Annotated[int, Field(ge=-(10**12), le=10**12)]


class Row(BaseModel):
    """Base of every replicated row."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seq: int = Field(
        0,
        ge=0,
        description="change-feed seq that last touched this row, or a later one it is as of",
    )


class FestivalRow(Row):
    """The festival a device serves, with the settings devices need."""

    id: Id
    name: str = Field(max_length=200)
    starts_at: int | None = None
    ends_at: int | None = None
    currency: str = "EUR"
    offline_allowance: Cents = Field(2000, ge=0, description="offline spend per wristband, cents")
    hash_key: Hex = Field(description="salt for keyed hashes of opaque codes and tag UIDs")


class SigningKeyRow(Row):
    """An Ed25519 public key that signs this festival's ticket codes."""

    key_id: int = Field(ge=0, lt=2**32)
    festival_id: Id
    public_key: Hex = Field(min_length=64, max_length=64)
    revoked: bool = False


class CategoryRow(Row):
    """A ticket category: its type and the window in which its tickets are valid."""

    id: Id
    festival_id: Id
    name: str = Field(max_length=200)
    type: TicketType
    valid_from: int | None = None
    valid_until: int | None = None


class TicketRow(Row):
    """A ticket's replicated state (no holder, no plaintext code)."""

    id: Id
    festival_id: Id
    category_id: Id
    status: TicketStatus
    code_hash: Hex | None = Field(
        None,
        description="keyed hash of the current code: the opaque code's, or the signed code's"
        " (central's vouch, so a gate holding the ticket can skip the signature check)",
    )
    code_version: int = Field(0, ge=0, lt=2**16)
    suspicious: bool = False


class ZoneRow(Row):
    """An access-controlled zone with its capacity and central's occupancy count."""

    id: Id
    festival_id: Id
    name: str = Field(max_length=200)
    capacity: int | None = Field(None, ge=0)
    occupancy: int = Field(0, ge=0)
    required_types: tuple[TicketType, ...] = Field((), description="empty: any ticket type")
    reentry: bool = True


class PresenceRow(Row):
    """Whether central believes a ticket is inside a zone, as of an HLC timestamp."""

    ticket_id: Id
    zone_id: Id
    inside: bool
    hlc: int = Field(ge=0)
    # The movement's place in `sync.hlc.fact_order`, so a device breaks an HLC tie as central
    # does; absent from rows of a central that did not send it.
    device_id: Id | None = Field(None, description="device whose movement set this presence")
    device_seq: int | None = Field(None, ge=0, description="that movement's device_seq")


class AccountRow(Row):
    """A cashless wristband account: central's balance snapshot, keyed by tag hash."""

    id: Id
    festival_id: Id
    tag_hash: Hex = Field(min_length=32, max_length=32)
    balance: Cents
    blocked: bool = False


class VendorRow(Row):
    """A vendor (bar, food, merchandise) and whether it is open."""

    id: Id
    festival_id: Id
    name: str = Field(max_length=200)
    is_open: bool = True


class ProductRow(Row):
    """A product a vendor sells, priced in cents."""

    id: Id
    vendor_id: Id
    name: str = Field(max_length=200)
    price: Cents = Field(ge=0)


class BlockRow(Row):
    """A block-list entry: a ticket id or a tag hash refused at every device."""

    kind: Literal["ticket", "tag"]
    ref: Id
    reason: str = Field("", max_length=200)


TABLES: dict[str, type[Row]] = {
    "festival": FestivalRow,
    "signing_key": SigningKeyRow,
    "category": CategoryRow,
    "ticket": TicketRow,
    "zone": ZoneRow,
    "presence": PresenceRow,
    "account": AccountRow,
    "vendor": VendorRow,
    "product": ProductRow,
    "block": BlockRow,
}
TableName = Literal[
    "festival",
    "signing_key",
    "category",
    "ticket",
    "zone",
    "presence",
    "account",
    "vendor",
    "product",
    "block",
]

# The fields that identify a row, where they are not ``id``: its key in the device's table
# and in central's change feed (the values joined with ``:``).
_KEYS: dict[str, tuple[str, ...]] = {
    "signing_key": ("key_id",),
    "presence": ("ticket_id", "zone_id"),
    "block": ("kind", "ref"),
}


def key_fields(table: str) -> tuple[str, ...]:
    """Fields that identify a row of a replicated table (``id`` unless said otherwise)."""
    return _KEYS.get(table, ("id",))


class Change(BaseModel):
    """One change-feed entry: an upsert carries the whole row, a delete only its key."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seq: int = Field(ge=1)
    table: TableName
    op: Literal["upsert", "delete"] = "upsert"
    row: dict[str, object]


class Snapshot(BaseModel):
    """A whole festival catalog as of `seq`: what `festgate catalog load` and bootstrap apply."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["festgate-catalog/1"] = "festgate-catalog/1"
    festival_id: Id
    seq: int = Field(ge=0)
    tables: dict[TableName, list[dict[str, object]]]
