"""Properties of the decision rules over random scan and tap sequences on one device.

The simulations keep state exactly as the device store does (presence per ticket, zone
occupancy, pending delta and offline spend per wristband) and feed it back into the pure
rules, so a rule that lets a second entry or an overdraft through fails here.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.decide import (
    Presence,
    SaleContext,
    authorize_sale,
    authorize_topup,
    available_balance,
    decide_entry,
    occupancy_delta,
    validate_amount,
)
from sync.verdicts import BarCode, GateCode
from sync.vocab import TicketStatus, TicketType
from tests.unit.factories import (
    NOW,
    Cache,
    account,
    category,
    opaque_code,
    signer,
    ticket,
    vendor,
    zone,
)

KEY = signer(key_id=11)
SETTINGS = settings(max_examples=200, deadline=None)

# --- (a) one gate device, one zone ---------------------------------------------------------


@dataclass(frozen=True)
class TicketSpec:
    signed: bool
    cached: bool
    status: TicketStatus
    ticket_type: TicketType


ticket_specs = st.builds(
    TicketSpec,
    signed=st.booleans(),
    cached=st.booleans(),
    # mostly valid tickets, so admissions happen; some refused ones mixed in
    status=st.sampled_from([TicketStatus.SOLD] * 4 + [TicketStatus.USED, TicketStatus.CANCELLED]),
    ticket_type=st.sampled_from([TicketType.STANDARD, TicketType.VIP]),
)


@SETTINGS
@given(
    specs=st.lists(ticket_specs, min_size=1, max_size=5),
    capacity=st.one_of(st.none(), st.integers(0, 4)),
    start_fill=st.integers(0, 4),
    reentry=st.booleans(),
    vip_only=st.booleans(),
    scans=st.lists(st.tuples(st.integers(0, 4), st.booleans()), max_size=40),
)
def test_gate_never_admits_twice_nor_over_capacity(
    specs: list[TicketSpec],
    capacity: int | None,
    start_fill: int,
    reentry: bool,
    vip_only: bool,
    scans: list[tuple[int, bool]],
) -> None:
    cache = Cache()
    cache.add_key(KEY.row())
    z = zone(
        capacity=capacity,
        reentry=reentry,
        required_types=(TicketType.VIP,) if vip_only else (),
    )
    texts: list[str] = []
    for spec in specs:
        cat = category(spec.ticket_type)
        text = opaque_code()
        row = ticket(cat, status=spec.status, opaque_code=None if spec.signed else text)
        if spec.signed:
            text = KEY.sign(row.id, ticket_type=spec.ticket_type)
        if spec.cached or not spec.signed:  # an opaque ticket is only ever known from the cache
            cache.add(cat, row)
        texts.append(text)

    presence = [Presence.NEVER] * len(specs)
    entered_since_exit = [False] * len(specs)
    # central's count when the device last synced: somewhere up to the capacity
    central = min(start_fill, capacity) if capacity is not None else start_fill
    occupancy = central
    pending = 0  # the device's own moves since, summed as its journal does
    for index, is_exit in scans:
        i = index % len(specs)
        spec = specs[i]
        before = presence[i]
        ctx = cache.gate_context(
            texts[i], z, presence=before, occupancy=central, pending=pending, exit=is_exit
        )
        verdict = decide_entry(ctx, NOW)
        code = verdict.code
        pending += occupancy_delta(ctx, verdict)
        refused_ticket = spec.status is TicketStatus.CANCELLED and (spec.cached or not spec.signed)

        if is_exit:
            assert code == (GateCode.CANCELLED if refused_ticket else GateCode.OK)
            if code == GateCode.OK and before is Presence.INSIDE:
                presence[i] = Presence.OUTSIDE
                entered_since_exit[i] = False
                occupancy -= 1
            assert central + pending == occupancy
            continue

        if code in (GateCode.OK, GateCode.OK_REENTRY):
            assert not entered_since_exit[i], "admitted twice without an exit between"
            assert before is not Presence.INSIDE
            assert (code == GateCode.OK_REENTRY) == (before is Presence.OUTSIDE)
            presence[i] = Presence.INSIDE
            entered_since_exit[i] = True
            occupancy += 1
        else:
            # every refusal has its reason in the state, and only that reason
            if refused_ticket:
                expected = GateCode.CANCELLED
            elif vip_only and spec.ticket_type is not TicketType.VIP:
                expected = GateCode.WRONG_ZONE
            elif before is Presence.INSIDE:
                expected = GateCode.ALREADY_INSIDE
            elif before is Presence.OUTSIDE and not reentry:
                expected = GateCode.NO_REENTRY
            else:
                expected = GateCode.ZONE_FULL
                assert capacity is not None
                assert occupancy >= capacity
            assert code == expected
        if capacity is not None:
            assert occupancy <= capacity
        assert occupancy >= 0
        assert central + pending == occupancy  # the device's count is the model's


# --- (b) one bar device, offline, one wristband --------------------------------------------


@SETTINGS
@given(
    snapshot=st.integers(0, 20_000),
    allowance=st.integers(0, 10_000),
    ops=st.lists(st.tuples(st.sampled_from(["sale", "topup"]), st.integers(1, 5000)), max_size=40),
)
def test_offline_bar_never_overdraws_nor_exceeds_allowance(
    snapshot: int, allowance: int, ops: list[tuple[str, int]]
) -> None:
    acct = account(snapshot)
    bar = vendor()
    pending = 0
    offline_spent = 0
    true_balance = snapshot  # central's snapshot plus every approved delta
    approved_sales = 0
    for op, typed in ops:
        amount = validate_amount(typed)  # what the till does with a typed amount first
        if op == "topup":
            verdict = authorize_topup(acct, tag_blocked=False)
            assert verdict.code == BarCode.APPROVED
            pending += amount
            true_balance += amount
        else:
            ctx = SaleContext(
                account=acct,
                vendor=bar,
                amount=amount,
                pending=pending,
                offline_spent=offline_spent,
                online=False,
                allowance=allowance,
            )
            assert available_balance(ctx) == true_balance
            code = authorize_sale(ctx).code
            if amount > true_balance:
                assert code == BarCode.INSUFFICIENT_FUNDS
            elif offline_spent + amount > allowance:
                assert code == BarCode.OFFLINE_LIMIT
            else:
                assert code == BarCode.APPROVED
            if code == BarCode.APPROVED:
                pending -= amount
                offline_spent += amount
                true_balance -= amount
                approved_sales += amount
        assert true_balance >= 0  # on one device the wristband never goes below zero
        assert true_balance >= -allowance
        assert offline_spent <= allowance
        assert offline_spent == approved_sales
        assert true_balance == snapshot + pending
