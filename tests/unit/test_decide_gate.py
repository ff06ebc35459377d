"""decide_entry as a table: every GateCode, for signed and opaque codes where it applies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from edge.decide import Presence, decide_entry
from sync import ticketcode
from sync.hashing import code_hash
from sync.verdicts import GateCode
from sync.vocab import TICKET_TYPE_ORDER, TicketStatus, TicketType
from tests.unit.factories import (
    FESTIVAL_BYTES,
    HASH_KEY,
    HOUR,
    NOW,
    OTHER_FESTIVAL_ID,
    SIGNATURE_START,
    TICKET_ID_BYTES,
    VERSION_BYTE,
    Cache,
    category,
    flip_bit,
    new_id,
    opaque_code,
    signer,
    ticket,
    truncate,
    zone,
)

Kind = Literal["signed", "opaque"]
BOTH: tuple[Kind, ...] = ("signed", "opaque")
SIGNED: tuple[Kind, ...] = ("signed",)
OPAQUE: tuple[Kind, ...] = ("opaque",)

# One festival key for the whole module (a real Ed25519 key; devices only hold its public half).
FESTIVAL_KEY = signer(key_id=7)
IMPOSTOR_KEY = signer(key_id=7)  # someone else's key claiming the festival's key id
OTHER_FESTIVAL_KEY = signer(key_id=7, festival_id=OTHER_FESTIVAL_ID)


@dataclass(frozen=True)
class Case:
    """One row of the table: the cache and the scan, and the verdict expected."""

    name: str
    expected: GateCode
    kinds: tuple[Kind, ...] = BOTH
    # the ticket and its cache
    status: TicketStatus = TicketStatus.SOLD
    cached: bool = True  # is the ticket in the device cache (signed codes may be unsynced)
    suspicious: bool = False
    on_block_list: bool = False
    ticket_type: TicketType = TicketType.STANDARD
    valid_from: int | None = None  # the ticket's window: in the code (signed) or category (opaque)
    valid_until: int | None = None
    category_window: tuple[int | None, int | None] | None = None  # only when it differs (signed)
    cached_code_version: int = 0
    # the signed code itself
    code_version: int = 0
    signed_by: Literal["festival", "impostor", "other_festival", "unknown_key"] = "festival"
    key_revoked: bool = False
    mangle: Literal["none", "flip_signature", "flip_ticket_id", "flip_version", "truncate"] = "none"
    vouched: bool = False  # the cached ticket carries central's hash of the code as issued
    # the zone and the device's view
    capacity: int | None = None
    occupancy: int = 0
    required: tuple[TicketType, ...] = ()
    reentry: bool = True
    presence: Presence = Presence.NEVER
    exit: bool = False
    scan: Literal["issued", "not_found", "garbage"] = "issued"
    now: int = NOW


# One row per line reads as a table, so the formatter leaves it alone.
# fmt: off
CASES: list[Case] = [
    # --- admitted ---------------------------------------------------------------------------
    Case("valid ticket", GateCode.OK),
    Case("used status is still a sold ticket", GateCode.OK, status=TicketStatus.USED),
    Case("inside its window", GateCode.OK, valid_from=NOW - HOUR, valid_until=NOW + HOUR),
    Case("at the first valid second", GateCode.OK, valid_from=NOW),
    Case("last second before expiry", GateCode.OK, valid_until=NOW + 1),
    Case("one place left", GateCode.OK, capacity=10, occupancy=9),
    Case("type the zone requires", GateCode.OK, ticket_type=TicketType.VIP,
         required=(TicketType.VIP, TicketType.BACKSTAGE)),
    Case("uncached signed ticket (sold after last sync)", GateCode.OK, SIGNED, cached=False),
    Case("newer code than the cache knows", GateCode.OK, SIGNED, code_version=3,
         cached_code_version=2),
    Case("the stricter window applies: category ended", GateCode.EXPIRED, SIGNED,
         valid_from=NOW - HOUR, valid_until=NOW + HOUR, category_window=(None, NOW - HOUR)),
    Case("the stricter window applies: code ended", GateCode.EXPIRED, SIGNED,
         valid_until=NOW - HOUR, category_window=(None, NOW + HOUR)),
    Case("the stricter window applies: category not started", GateCode.NOT_YET_VALID, SIGNED,
         valid_from=NOW - HOUR, category_window=(NOW + HOUR, None)),
    Case("central vouches for the code", GateCode.OK, SIGNED, vouched=True),
    Case("vouched code, inside already", GateCode.ALREADY_INSIDE, SIGNED, vouched=True,
         presence=Presence.INSIDE),
    Case("re-entry after an exit", GateCode.OK_REENTRY, presence=Presence.OUTSIDE),
    Case("uncached signed re-entry", GateCode.OK_REENTRY, SIGNED, cached=False,
         presence=Presence.OUTSIDE),
    # --- exits: anyone identified and not refused for the ticket itself may leave -------------
    Case("exit from inside", GateCode.OK, exit=True, presence=Presence.INSIDE),
    Case("exit never seen entering", GateCode.OK, exit=True),
    Case("exit after expiry", GateCode.OK, exit=True, valid_until=NOW - HOUR,
         presence=Presence.INSIDE),
    Case("exit before the window", GateCode.OK, exit=True, valid_from=NOW + HOUR),
    Case("exit from a zone of another type", GateCode.OK, exit=True, required=(TicketType.VIP,)),
    Case("exit from a full zone", GateCode.OK, exit=True, capacity=5, occupancy=5,
         presence=Presence.INSIDE),
    Case("exit with no re-entry", GateCode.OK, exit=True, reentry=False,
         presence=Presence.OUTSIDE),
    Case("exit of uncached signed ticket", GateCode.OK, SIGNED, cached=False, exit=True),
    # --- refused by the code itself ---------------------------------------------------------
    Case("opaque code not in cache", GateCode.UNKNOWN, OPAQUE, scan="not_found"),
    Case("opaque code not in cache, exit", GateCode.UNKNOWN, OPAQUE, scan="not_found", exit=True),
    Case("whitespace only", GateCode.UNKNOWN, OPAQUE, scan="garbage"),
    Case("garbage at exit", GateCode.UNKNOWN, OPAQUE, scan="garbage", exit=True),
    Case("signed by another key", GateCode.FORGED, SIGNED, signed_by="impostor"),
    Case("signed by another key, uncached", GateCode.FORGED, SIGNED, signed_by="impostor",
         cached=False),
    Case("signed by another key, exit", GateCode.FORGED, SIGNED, signed_by="impostor", exit=True),
    Case("revoked key", GateCode.FORGED, SIGNED, key_revoked=True),
    Case("vouched code, revoked key", GateCode.FORGED, SIGNED, vouched=True, key_revoked=True),
    Case("vouched code, signature bit flipped", GateCode.FORGED, SIGNED, vouched=True,
         mangle="flip_signature"),
    Case("vouched code, another festival's", GateCode.WRONG_FESTIVAL, SIGNED, vouched=True,
         signed_by="other_festival"),
    Case("revoked key, uncached", GateCode.FORGED, SIGNED, key_revoked=True, cached=False),
    Case("key id not in cache", GateCode.FORGED, SIGNED, signed_by="unknown_key"),
    Case("signature bit flipped", GateCode.FORGED, SIGNED, mangle="flip_signature"),
    Case("ticket id bit flipped", GateCode.FORGED, SIGNED, mangle="flip_ticket_id"),
    Case("version bit flipped (malformed)", GateCode.FORGED, SIGNED, mangle="flip_version"),
    Case("truncated (malformed)", GateCode.FORGED, SIGNED, mangle="truncate"),
    Case("forged beats a block list", GateCode.FORGED, SIGNED, signed_by="impostor",
         on_block_list=True),
    Case("another festival's ticket", GateCode.WRONG_FESTIVAL, SIGNED,
         signed_by="other_festival"),
    Case("another festival's ticket, exit", GateCode.WRONG_FESTIVAL, SIGNED,
         signed_by="other_festival", exit=True),
    # --- refused for the ticket -------------------------------------------------------------
    Case("on the block list", GateCode.BLOCKED, on_block_list=True),
    Case("uncached signed ticket on the block list", GateCode.BLOCKED, SIGNED, cached=False,
         on_block_list=True),
    Case("marked suspicious", GateCode.BLOCKED, suspicious=True),
    Case("marked suspicious, after an exit", GateCode.BLOCKED, suspicious=True,
         presence=Presence.OUTSIDE),
    Case("marked suspicious while inside", GateCode.ALREADY_INSIDE, suspicious=True,
         presence=Presence.INSIDE),
    Case("marked suspicious may leave", GateCode.OK, suspicious=True, exit=True,
         presence=Presence.INSIDE),
    Case("blocked at exit", GateCode.BLOCKED, on_block_list=True, exit=True,
         presence=Presence.INSIDE),
    Case("blocked beats cancelled", GateCode.BLOCKED, on_block_list=True,
         status=TicketStatus.CANCELLED),
    Case("blocked beats an old code", GateCode.BLOCKED, SIGNED, on_block_list=True,
         cached_code_version=1),
    Case("older code than the cache (resold)", GateCode.REVOKED, SIGNED, cached_code_version=1),
    Case("revoked code at exit", GateCode.REVOKED, SIGNED, cached_code_version=4, code_version=3,
         exit=True),
    Case("revoked beats cancelled", GateCode.REVOKED, SIGNED, cached_code_version=1,
         status=TicketStatus.CANCELLED),
    Case("cancelled", GateCode.CANCELLED, status=TicketStatus.CANCELLED),
    Case("cancelled at exit", GateCode.CANCELLED, status=TicketStatus.CANCELLED, exit=True),
    Case("cancelled beats expired", GateCode.CANCELLED, status=TicketStatus.CANCELLED,
         valid_until=NOW - HOUR),
    Case("refunded", GateCode.REFUNDED, status=TicketStatus.REFUNDED),
    Case("refunded at exit", GateCode.REFUNDED, status=TicketStatus.REFUNDED, exit=True),
    Case("never sold (available)", GateCode.NOT_SOLD, status=TicketStatus.AVAILABLE),
    Case("never sold (reserved)", GateCode.NOT_SOLD, status=TicketStatus.RESERVED),
    Case("never sold at exit", GateCode.NOT_SOLD, status=TicketStatus.AVAILABLE, exit=True),
    Case("before its window", GateCode.NOT_YET_VALID, valid_from=NOW + 1),
    Case("uncached signed, before its window", GateCode.NOT_YET_VALID, SIGNED, cached=False,
         valid_from=NOW + HOUR, valid_until=NOW + 2 * HOUR),
    Case("not yet valid beats inside", GateCode.NOT_YET_VALID, valid_from=NOW + HOUR,
         presence=Presence.INSIDE),
    Case("at the expiry second", GateCode.EXPIRED, valid_until=NOW),
    Case("long expired", GateCode.EXPIRED, valid_from=NOW - 2 * HOUR, valid_until=NOW - HOUR),
    Case("uncached signed, expired", GateCode.EXPIRED, SIGNED, cached=False,
         valid_until=NOW - HOUR),
    Case("code window expired though category is open", GateCode.EXPIRED, SIGNED,
         valid_until=NOW - HOUR, category_window=(None, None)),
    Case("zone needs another type", GateCode.WRONG_ZONE, required=(TicketType.VIP,)),
    Case("uncached signed, zone needs another type", GateCode.WRONG_ZONE, SIGNED, cached=False,
         ticket_type=TicketType.CAMPING, required=(TicketType.VIP, TicketType.BACKSTAGE)),
    Case("wrong zone beats already inside", GateCode.WRONG_ZONE, required=(TicketType.VIP,),
         presence=Presence.INSIDE),
    Case("already inside", GateCode.ALREADY_INSIDE, presence=Presence.INSIDE),
    Case("already inside, uncached signed", GateCode.ALREADY_INSIDE, SIGNED, cached=False,
         presence=Presence.INSIDE),
    Case("already inside beats a full zone", GateCode.ALREADY_INSIDE, presence=Presence.INSIDE,
         capacity=1, occupancy=1),
    Case("left a zone without re-entry", GateCode.NO_REENTRY, presence=Presence.OUTSIDE,
         reentry=False),
    Case("no re-entry beats a full zone", GateCode.NO_REENTRY, presence=Presence.OUTSIDE,
         reentry=False, capacity=1, occupancy=1),
    Case("zone at capacity", GateCode.ZONE_FULL, capacity=100, occupancy=100),
    Case("zone over capacity", GateCode.ZONE_FULL, capacity=100, occupancy=104),
    Case("zone of capacity zero", GateCode.ZONE_FULL, capacity=0),
    Case("full zone blocks re-entry too", GateCode.ZONE_FULL, presence=Presence.OUTSIDE,
         capacity=3, occupancy=3),
]
# fmt: on


def build(case: Case, kind: Kind) -> tuple[Cache, str]:
    """The device cache and the scanned text a case describes."""
    cache = Cache()
    cache.add_key(FESTIVAL_KEY.row(revoked=case.key_revoked))
    window = (
        case.category_window
        if case.category_window is not None
        else (
            case.valid_from,
            case.valid_until,
        )
    )
    if kind == "opaque":
        window = (case.valid_from, case.valid_until)
    cat = category(case.ticket_type, valid_from=window[0], valid_until=window[1])
    code = opaque_code()
    row = ticket(
        cat,
        status=case.status,
        code_version=case.cached_code_version,
        suspicious=case.suspicious,
        opaque_code=code if kind == "opaque" else None,
    )
    if case.cached:
        cache.add(cat, row)
    if case.on_block_list:
        cache.blocked.add(row.id)
    if kind == "opaque":
        text = {"issued": code, "not_found": opaque_code(), "garbage": " \r\n\t "}[case.scan]
        return cache, text
    key = {
        "festival": FESTIVAL_KEY,
        "impostor": IMPOSTOR_KEY,
        "other_festival": OTHER_FESTIVAL_KEY,
        "unknown_key": signer(key_id=8),
    }[case.signed_by]
    text = key.sign(
        row.id,
        ticket_type=case.ticket_type,
        code_version=case.code_version,
        valid_from=case.valid_from,
        valid_until=case.valid_until,
    )
    if case.vouched and case.cached:
        # Central's hash of the code it issued; a mangled scan no longer matches it.
        cache.add(cat, row.model_copy(update={"code_hash": code_hash(HASH_KEY, text).hex()}))
    if case.mangle == "flip_signature":
        text = flip_bit(text, SIGNATURE_START + 10, 3)
    elif case.mangle == "flip_ticket_id":
        text = flip_bit(text, TICKET_ID_BYTES.start + 2, 0)
    elif case.mangle == "flip_version":
        text = flip_bit(text, VERSION_BYTE, 1)
    elif case.mangle == "truncate":
        text = truncate(text, 3)
    return cache, text


PARAMS = [
    pytest.param(case, kind, id=f"{kind}: {case.name} -> {case.expected}")
    for case in CASES
    for kind in case.kinds
]


@pytest.mark.parametrize(("case", "kind"), PARAMS)
def test_decide_entry(case: Case, kind: Kind) -> None:
    cache, text = build(case, kind)
    z = zone(capacity=case.capacity, required_types=case.required, reentry=case.reentry)
    ctx = cache.gate_context(
        text, z, presence=case.presence, occupancy=case.occupancy, exit=case.exit
    )
    verdict = decide_entry(ctx, case.now)
    assert verdict.code == case.expected
    assert verdict.admits == (case.expected in (GateCode.OK, GateCode.OK_REENTRY))
    assert verdict.text  # every code has a display text


def test_table_covers_every_gate_code() -> None:
    covered = {case.expected for case in CASES}
    assert covered == set(GateCode), f"no test row for {set(GateCode) - covered}"


def test_both_code_kinds_cover_every_code_that_applies_to_them() -> None:
    # A signed code is never "unknown" (unsynced ones are verified, not looked up); forged,
    # wrong festival and revoked come from the signature and payload an opaque code lacks.
    not_applicable = {
        "signed": {GateCode.UNKNOWN},
        "opaque": {GateCode.FORGED, GateCode.WRONG_FESTIVAL, GateCode.REVOKED},
    }
    for kind in BOTH:
        covered = {c.expected for c in CASES if kind in c.kinds}
        expected = set(GateCode) - not_applicable[kind]
        assert covered >= expected, f"{kind}: no row for {expected - covered}"


def test_mangled_cases_are_really_mangled() -> None:
    """The mangled texts reach decide as intended: malformed ones via classify, others signed."""
    kinds = {}
    for case in CASES:
        if case.mangle != "none":
            cache, text = build(case, "signed")
            kinds[case.mangle] = cache.gate_context(text, zone()).code.kind
    assert kinds == {
        "flip_signature": "signed",
        "flip_ticket_id": "signed",
        "flip_version": "malformed",
        "truncate": "malformed",
    }


def _expected_for_flipped_byte(index: int) -> GateCode:
    # Version and type bytes make it malformed, key id bytes name no cached key, the rest
    # breaks the signature: all forged. Only the festival bytes are told apart, because the
    # festival is checked before the signature (a device holds no other festival's keys).
    if index in FESTIVAL_BYTES:
        return GateCode.WRONG_FESTIVAL
    return GateCode.FORGED


def test_no_single_bit_flip_is_admitted() -> None:
    """Every one of the code's bits, flipped: refused as forged (or as another festival's)."""
    cache = Cache()
    cache.add_key(FESTIVAL_KEY.row())
    cat = category(TicketType.VIP)
    row = ticket(cat)
    cache.add(cat, row)
    text = FESTIVAL_KEY.sign(row.id, ticket_type=TicketType.VIP, valid_until=NOW + HOUR)
    z = zone()
    assert decide_entry(cache.gate_context(text, z), NOW).code == GateCode.OK
    seen: dict[GateCode, int] = {}
    for index in range(ticketcode.ENCODED_BYTES):
        for bit in range(8):
            flipped = flip_bit(text, index, bit)
            code = decide_entry(cache.gate_context(flipped, z), NOW).code
            expected = _expected_for_flipped_byte(index)
            assert code == expected, (index, bit, code)
            seen[expected] = seen.get(expected, 0) + 1
    assert seen == {
        GateCode.WRONG_FESTIVAL: 16 * 8,
        GateCode.FORGED: (ticketcode.ENCODED_BYTES - 16) * 8,
    }


@pytest.mark.parametrize("chars", [1, 2, 3, 8, 100, 180])
def test_truncated_codes_are_forged(chars: int) -> None:
    cache = Cache()
    cache.add_key(FESTIVAL_KEY.row())
    text = FESTIVAL_KEY.sign(new_id())
    ctx = cache.gate_context(truncate(text, chars), zone())
    assert ctx.code.kind == "malformed"
    assert decide_entry(ctx, NOW).code == GateCode.FORGED


def test_every_ticket_type_round_trips_through_a_zone_rule() -> None:
    """The type a signed code carries is the one the zone rule sees, for every type."""
    cache = Cache()
    cache.add_key(FESTIVAL_KEY.row())
    for ticket_type in TICKET_TYPE_ORDER:
        text = FESTIVAL_KEY.sign(new_id(), ticket_type=ticket_type)
        only_this = zone(required_types=(ticket_type,))
        others = zone(required_types=tuple(t for t in TicketType if t is not ticket_type))
        assert decide_entry(cache.gate_context(text, only_this), NOW).code == GateCode.OK
        assert decide_entry(cache.gate_context(text, others), NOW).code == GateCode.WRONG_ZONE


def test_central_vouch_stands_in_for_the_signature() -> None:
    # Proof that the vouch path skips verification: a code central vouched for is admitted
    # even though the cached key did not sign it; without the vouch it is forged.
    case = Case("impostor-signed, vouched", GateCode.OK, SIGNED, signed_by="impostor", vouched=True)
    cache, text = build(case, "signed")
    ctx = cache.gate_context(text, zone())
    assert ctx.vouched
    assert decide_entry(ctx, NOW).code == GateCode.OK
    unvouched = build(
        Case("impostor-signed", GateCode.FORGED, SIGNED, signed_by="impostor"), "signed"
    )
    assert (
        decide_entry(unvouched[0].gate_context(unvouched[1], zone()), NOW).code == GateCode.FORGED
    )
