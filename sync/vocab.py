"""Enumerations from the seed model that both sides use on the wire, and the bounds both
sides hold them to (a device's role, which its settings name too, is in `config.vocab`)."""

from __future__ import annotations

from enum import StrEnum

# The largest amount of money, in cents, any one fact or request moves: 10 million, far above
# any real basket and far below bigint trouble. Central's ingest and ops API already held
# payloads and requests to it, so it is the bound: a device refuses what central would.
MAX_AMOUNT = 10**9


class TicketType(StrEnum):
    """Kinds of ticket; zones require some of them."""

    STANDARD = "STANDARD"
    VIP = "VIP"
    BACKSTAGE = "BACKSTAGE"
    CAMPING = "CAMPING"
    PARKING = "PARKING"
    COMBO = "COMBO"


# Stable wire order for the one-byte type field of signed codes: append only.
TICKET_TYPE_ORDER: tuple[TicketType, ...] = tuple(TicketType)


class TicketStatus(StrEnum):
    """A ticket's lifecycle: AVAILABLE → RESERVED → SOLD → USED, or CANCELLED / REFUNDED."""

    AVAILABLE = "AVAILABLE"
    RESERVED = "RESERVED"
    SOLD = "SOLD"
    USED = "USED"
    CANCELLED = "CANCELLED"
    REFUNDED = "REFUNDED"


class EventKind(StrEnum):
    """Kinds of fact a device records."""

    ENTRY = "entry"
    EXIT = "exit"
    SALE = "sale"
    TOPUP = "topup"
    REFUND = "refund"
    LOG = "log"


class TransactionType(StrEnum):
    """Cashless ledger entry types (seed model); cashless_transaction's CHECK lists the same
    words (a test says so)."""

    TOPUP = "TOPUP"
    PAYMENT = "PAYMENT"
    REFUND = "REFUND"
    TRANSFER = "TRANSFER"
    CORRECTION = "CORRECTION"
