"""Verdict codes: stable strings shown to staff, stored in events and asserted in tests.

The codes, and which of them admit, are declared with what each kind of fact means
(`sync.facts`); here are their texts and the `Verdict` a decision returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from sync.facts import ADMITTING, BarCode, GateCode

__all__ = ["ADMITTING", "TEXTS", "BarCode", "GateCode", "Verdict"]

TEXTS: dict[str, str] = {
    GateCode.OK: "Welcome in",
    GateCode.OK_REENTRY: "Welcome back",
    GateCode.UNKNOWN: "Ticket not recognised",
    GateCode.FORGED: "Invalid ticket signature",
    GateCode.WRONG_FESTIVAL: "Ticket is for another festival",
    GateCode.REVOKED: "Ticket code replaced by a newer one",
    GateCode.CANCELLED: "Ticket cancelled",
    GateCode.REFUNDED: "Ticket refunded",
    GateCode.NOT_SOLD: "Ticket was never sold",
    GateCode.ALREADY_INSIDE: "Ticket already inside",
    GateCode.NO_REENTRY: "No re-entry on this ticket",
    GateCode.WRONG_ZONE: "Ticket not valid for this zone",
    GateCode.NOT_YET_VALID: "Ticket not valid yet",
    GateCode.EXPIRED: "Ticket expired",
    GateCode.ZONE_FULL: "Zone is full",
    GateCode.BLOCKED: "Ticket blocked, call a supervisor",
    BarCode.APPROVED: "Approved",
    BarCode.INSUFFICIENT_FUNDS: "Insufficient funds",
    BarCode.UNKNOWN_TAG: "Wristband not recognised",
    BarCode.TAG_BLOCKED: "Wristband blocked",
    BarCode.OFFLINE_LIMIT: "Offline limit reached for this wristband",
    BarCode.UNKNOWN_PRODUCT: "Unknown product",
    BarCode.VENDOR_CLOSED: "Vendor is closed",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """A decision: its stable code, whether it admits or approves, and its display text."""

    code: str

    @property
    def admits(self) -> bool:
        """True for a green light: the turnstile opens or the sale goes through."""
        return self.code in ADMITTING

    @property
    def text(self) -> str:
        """Short human text for the display and the CLI."""
        return TEXTS[self.code]
