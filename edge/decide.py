"""Pure decisions: cached rows + this device's history + `now` → a verdict. No IO, no clock."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from config.vocab import MAX_CODE_CHARS
from sync import ticketcode
from sync.catalog import AccountRow, CategoryRow, SigningKeyRow, TicketRow, VendorRow, ZoneRow
from sync.facts import ticket_bad
from sync.hlc import FactOrder
from sync.verdicts import BarCode, GateCode, Verdict
from sync.vocab import MAX_AMOUNT, TicketStatus, TicketType


class BadInput(ValueError):
    """Operator input that is no decision at all (a negative amount, say); nothing is journaled."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class Presence(StrEnum):
    """Where a ticket stands in one zone, merged from central's view and this device's journal."""

    NEVER = "never"
    INSIDE = "inside"
    OUTSIDE = "outside"  # entered before, exited since


@dataclass(frozen=True, slots=True)
class Movement:
    """A ticket's latest admitted movement in a zone, placed in the one order of facts."""

    order: FactOrder  # `sync.hlc.fact_order` of the fact that moved it
    inside: bool  # an entry (else an exit)


def merge_presence(*movements: Movement | None) -> Presence:
    """Where a ticket stands, from central's view and this device's last movement: the
    latest in the order of facts wins, the rule central merges presence by."""
    known = [m for m in movements if m is not None]
    if not known:
        return Presence.NEVER
    return Presence.INSIDE if max(known, key=lambda m: m.order).inside else Presence.OUTSIDE


@dataclass(frozen=True, slots=True)
class ScannedCode:
    """Scanned text, classified: a signed code, an opaque code, or garbage."""

    kind: Literal["signed", "malformed", "opaque", "garbage"]
    text: str
    signed: ticketcode.SignedCode | None = None


def classify(raw: str | bytes) -> ScannedCode:
    """Classify scanner output; never raises, whatever bytes arrive."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return ScannedCode("garbage", "")
    # Scanners append CR/LF and people paste spaces; codes never contain them.
    text = raw.strip()
    if not text or len(text) > MAX_CODE_CHARS or not text.isprintable():
        return ScannedCode("garbage", "")
    if ticketcode.looks_signed(text):
        try:
            return ScannedCode("signed", text, ticketcode.decode(text))
        except ticketcode.MalformedCode:
            return ScannedCode("malformed", text)
    return ScannedCode("opaque", text)


@dataclass(frozen=True, slots=True)
class GateContext:
    """Everything the gate rule looks at, gathered by the store."""

    festival_id: str
    zone: ZoneRow
    code: ScannedCode
    key: SigningKeyRow | None = None  # the cached key named by a signed code, if any
    # The scanned text's keyed hash is central's hash of the cached ticket's current code:
    # central vouches for the very text, so the signature needs no checking here.
    vouched: bool = False
    ticket: TicketRow | None = None
    category: CategoryRow | None = None
    blocked: bool = False  # ticket id on the block list
    presence: Presence = Presence.NEVER
    occupancy: int = 0  # central's count plus this device's entries it has not yet reflected
    exit: bool = False


def vouched(code: ScannedCode, ticket: TicketRow | None, code_hash: str | None) -> bool:
    """Central vouches for a signed code's very text: the cached ticket it names holds the
    keyed hash (`code_hash`) of that text as its current code, so no signature check is due."""
    return (
        code.signed is not None
        and ticket is not None
        and code_hash is not None
        and ticket.code_hash == code_hash
    )


def gate_context(
    festival_id: str,
    zone: ZoneRow,
    code: ScannedCode,
    *,
    key: SigningKeyRow | None,
    code_hash: str | None,
    ticket: TicketRow | None,
    category: CategoryRow | None,
    blocked: bool,
    presence: Presence,
    pending_occupancy: int,
    exit: bool = False,
) -> GateContext:
    """The gate rule's context from the rows a lookup found: whether central vouches for the
    code, and the zone's occupancy as central's count plus this device's unreflected moves."""
    return GateContext(
        festival_id=festival_id,
        zone=zone,
        code=code,
        key=key,
        vouched=vouched(code, ticket, code_hash),
        ticket=ticket,
        category=category,
        blocked=blocked,
        presence=presence,
        occupancy=zone.occupancy + pending_occupancy,
        exit=exit,
    )


def _identify(ctx: GateContext) -> GateCode | None:
    """Refusals that come from the code itself, before any ticket rule."""
    code = ctx.code
    if code.kind == "garbage":
        return GateCode.UNKNOWN
    if code.kind == "malformed":
        return GateCode.FORGED
    if code.signed is not None:
        if str(code.signed.festival_id) != ctx.festival_id:
            return GateCode.WRONG_FESTIVAL
        key = ctx.key
        if key is None or key.revoked:
            return GateCode.FORGED
        if not ctx.vouched and not code.signed.verify(bytes.fromhex(key.public_key)):
            return GateCode.FORGED
        return None
    return GateCode.UNKNOWN if ctx.ticket is None else None


def _ticket_type(ctx: GateContext) -> TicketType | None:
    if ctx.code.signed is not None:
        return ctx.code.signed.ticket_type
    return ctx.category.type if ctx.category is not None else None


def _window(ctx: GateContext) -> tuple[int | None, int | None]:
    # A signed code carries its own window, so it holds even for a ticket sold after the last
    # sync; when the category is cached too, the stricter of the two applies.
    starts: list[int] = []
    ends: list[int] = []
    for start, end in (
        (ctx.code.signed.valid_from, ctx.code.signed.valid_until)
        if ctx.code.signed
        else (None, None),
        (ctx.category.valid_from, ctx.category.valid_until) if ctx.category else (None, None),
    ):
        starts += [start] if start is not None else []
        ends += [end] if end is not None else []
    return (max(starts) if starts else None), (min(ends) if ends else None)


def decide_entry(ctx: GateContext, now: int) -> Verdict:
    """Decide a gate scan (entry, or exit when `ctx.exit`) at unix time `now`."""
    refused = _identify(ctx)
    if refused is not None:
        return Verdict(refused)
    ticket = ctx.ticket
    if ctx.blocked:
        return Verdict(GateCode.BLOCKED)
    if ticket is not None:
        signed = ctx.code.signed
        if signed is not None and signed.code_version < ticket.code_version:
            return Verdict(GateCode.REVOKED)
        unusable = ticket_bad(ticket.status)
        if unusable is not None:
            return Verdict(unusable)
        if ticket.status in (TicketStatus.AVAILABLE, TicketStatus.RESERVED):
            return Verdict(GateCode.NOT_SOLD)
    if ctx.exit:
        # Anyone identified may leave; the exit is what makes re-entry possible.
        return Verdict(GateCode.OK)
    valid_from, valid_until = _window(ctx)
    if valid_from is not None and now < valid_from:
        return Verdict(GateCode.NOT_YET_VALID)
    if valid_until is not None and now >= valid_until:
        return Verdict(GateCode.EXPIRED)
    required = ctx.zone.required_types
    if required and _ticket_type(ctx) not in required:
        return Verdict(GateCode.WRONG_ZONE)
    if ctx.presence is Presence.INSIDE:
        return Verdict(GateCode.ALREADY_INSIDE)
    if ticket is not None and ticket.suspicious:
        # Central saw this ticket admitted twice (a clone): whoever holds it now is not let
        # in again without a supervisor; while it is inside, the plain answer still holds.
        return Verdict(GateCode.BLOCKED)
    if ctx.presence is Presence.OUTSIDE and not ctx.zone.reentry:
        return Verdict(GateCode.NO_REENTRY)
    if ctx.zone.capacity is not None and ctx.occupancy >= ctx.zone.capacity:
        return Verdict(GateCode.ZONE_FULL)
    return Verdict(GateCode.OK_REENTRY if ctx.presence is Presence.OUTSIDE else GateCode.OK)


def occupancy_delta(ctx: GateContext, verdict: Verdict) -> int:
    """How an admitted movement moves the zone's count: an entry in, an exit of a ticket
    inside out; a refusal, or an exit of a ticket not known inside, leaves it."""
    if not verdict.admits:
        return 0
    if ctx.exit:
        return -1 if ctx.presence is Presence.INSIDE else 0
    return 1


def validate_amount(cents: int) -> int:
    """An amount in cents a person could mean: 1 to MAX_AMOUNT; BadInput otherwise."""
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise BadInput("invalid_amount", "amount must be a whole number of cents")
    if not 0 < cents <= MAX_AMOUNT:
        raise BadInput("invalid_amount", f"amount must be between 1 and {MAX_AMOUNT} cents")
    return cents


@dataclass(frozen=True, slots=True)
class SaleContext:
    """Everything the bar rule looks at, gathered by the store."""

    account: AccountRow | None
    vendor: VendorRow | None
    amount: int  # validated, > 0
    tag_blocked: bool = False  # tag hash on the block list
    unknown_product: bool = False  # a basket line named a product this vendor does not sell
    pending: int = 0  # this device's unreflected delta on the account (sales < 0, top-ups > 0)
    offline_spent: int = 0  # this device's unreflected sales on the account, cents >= 0
    online: bool = False
    allowance: int = 0  # offline allowance per wristband, cents


def available_balance(ctx: SaleContext) -> int:
    """Central's snapshot plus what this device has done that central's snapshot does not show."""
    return (ctx.account.balance if ctx.account is not None else 0) + ctx.pending


def authorize_sale(ctx: SaleContext) -> Verdict:
    """Approve or decline a charge on a wristband."""
    if ctx.vendor is None or not ctx.vendor.is_open:
        return Verdict(BarCode.VENDOR_CLOSED)
    if ctx.unknown_product:
        return Verdict(BarCode.UNKNOWN_PRODUCT)
    if ctx.account is None:
        return Verdict(BarCode.UNKNOWN_TAG)
    if ctx.tag_blocked or ctx.account.blocked:
        return Verdict(BarCode.TAG_BLOCKED)
    if ctx.amount > available_balance(ctx):
        return Verdict(BarCode.INSUFFICIENT_FUNDS)
    # Offline, each device may spend at most the allowance per wristband beyond what central
    # has confirmed: the exposure to a double spend at several offline bars stays bounded.
    if not ctx.online and ctx.offline_spent + ctx.amount > ctx.allowance:
        return Verdict(BarCode.OFFLINE_LIMIT)
    return Verdict(BarCode.APPROVED)


def authorize_topup(account: AccountRow | None, *, tag_blocked: bool) -> Verdict:
    """Approve loading money onto a wristband; a wristband blocked for debt may be topped up."""
    if account is None:
        return Verdict(BarCode.UNKNOWN_TAG)
    if tag_blocked:
        return Verdict(BarCode.TAG_BLOCKED)
    return Verdict(BarCode.APPROVED)
