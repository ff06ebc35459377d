"""authorize_sale, authorize_topup, available_balance and validate_amount as tables."""

from __future__ import annotations

from dataclasses import replace

import pytest

from edge.decide import (
    BadInput,
    SaleContext,
    authorize_sale,
    authorize_topup,
    available_balance,
    validate_amount,
)
from sync.verdicts import BarCode
from sync.vocab import MAX_AMOUNT
from tests.unit.factories import account, sale, vendor

# Defaults of `sale`: open vendor, wristband with 50.00 (5000 cents), offline, allowance 20.00.
NO_ACCOUNT = replace(sale(100), account=None)

# fmt: off
SALES: list[tuple[str, SaleContext, BarCode]] = [
    # --- approved ---------------------------------------------------------------------------
    ("small sale offline", sale(450), BarCode.APPROVED),
    ("exactly the allowance offline", sale(2000), BarCode.APPROVED),
    ("allowance left after earlier sales", sale(500, offline_spent=1500), BarCode.APPROVED),
    ("online ignores the allowance", sale(5000, online=True, offline_spent=9000),
     BarCode.APPROVED),
    ("exactly the balance online", sale(5000, online=True), BarCode.APPROVED),
    ("exactly the balance offline", sale(3000, acct=account(3000), allowance=3000),
     BarCode.APPROVED),
    ("pending top-up adds to the balance", sale(1500, acct=account(0), pending=1500),
     BarCode.APPROVED),
    ("the rest of the balance after pending sales", sale(1000, pending=-4000,
                                                         offline_spent=4000, allowance=5000),
     BarCode.APPROVED),
    ("low balance still covers a small sale", sale(100, acct=account(200)), BarCode.APPROVED),
    # --- declined ---------------------------------------------------------------------------
    ("vendor closed", sale(100, vend=vendor(is_open=False)), BarCode.VENDOR_CLOSED),
    ("vendor unknown", replace(sale(100), vendor=None), BarCode.VENDOR_CLOSED),
    ("vendor closed beats unknown tag", replace(NO_ACCOUNT, vendor=None), BarCode.VENDOR_CLOSED),
    ("vendor closed beats unknown product", sale(100, vend=vendor(is_open=False),
                                                 unknown_product=True), BarCode.VENDOR_CLOSED),
    ("unknown product", sale(100, unknown_product=True), BarCode.UNKNOWN_PRODUCT),
    ("unknown product beats unknown tag", replace(NO_ACCOUNT, unknown_product=True),
     BarCode.UNKNOWN_PRODUCT),
    ("unknown tag", NO_ACCOUNT, BarCode.UNKNOWN_TAG),
    ("unknown tag online", replace(NO_ACCOUNT, online=True), BarCode.UNKNOWN_TAG),
    ("unknown tag with a pending top-up", replace(NO_ACCOUNT, pending=5000),
     BarCode.UNKNOWN_TAG),
    ("tag on the block list", sale(100, tag_blocked=True), BarCode.TAG_BLOCKED),
    ("account blocked", sale(100, acct=account(blocked=True)), BarCode.TAG_BLOCKED),
    ("blocked beats insufficient funds", sale(9999, acct=account(0, blocked=True)),
     BarCode.TAG_BLOCKED),
    ("one cent over the balance", sale(5001, online=True), BarCode.INSUFFICIENT_FUNDS),
    ("empty wristband", sale(1, acct=account(0)), BarCode.INSUFFICIENT_FUNDS),
    ("wristband in debt", sale(1, acct=account(-500)), BarCode.INSUFFICIENT_FUNDS),
    ("pending sales used the balance", sale(1500, pending=-4000), BarCode.INSUFFICIENT_FUNDS),
    ("funds beat the offline limit", sale(6000, offline_spent=2000),
     BarCode.INSUFFICIENT_FUNDS),
    ("one cent over the allowance", sale(2001), BarCode.OFFLINE_LIMIT),
    ("allowance used by earlier sales", sale(1, offline_spent=2000), BarCode.OFFLINE_LIMIT),
    ("zero allowance offline", sale(1, allowance=0), BarCode.OFFLINE_LIMIT),
    ("top-up does not raise the allowance", sale(1000, acct=account(0), pending=5000,
                                                 offline_spent=1500), BarCode.OFFLINE_LIMIT),
]
# fmt: on

TOPUPS: list[tuple[str, bool, bool, BarCode]] = [
    # (id, account known, tag on block list, expected)
    ("known wristband", True, False, BarCode.APPROVED),
    ("unknown wristband", False, False, BarCode.UNKNOWN_TAG),
    ("unknown wristband on block list", False, True, BarCode.UNKNOWN_TAG),
    ("tag on the block list", True, True, BarCode.TAG_BLOCKED),
]


@pytest.mark.parametrize(
    ("ctx", "expected"), [pytest.param(c, e, id=f"{i} -> {e}") for i, c, e in SALES]
)
def test_authorize_sale(ctx: SaleContext, expected: BarCode) -> None:
    verdict = authorize_sale(ctx)
    assert verdict.code == expected
    assert verdict.admits == (expected is BarCode.APPROVED)
    assert verdict.text


@pytest.mark.parametrize(
    ("known", "tag_blocked", "expected"),
    [pytest.param(k, b, e, id=f"{i} -> {e}") for i, k, b, e in TOPUPS],
)
def test_authorize_topup(known: bool, tag_blocked: bool, expected: BarCode) -> None:
    acct = account(0) if known else None
    assert authorize_topup(acct, tag_blocked=tag_blocked).code == expected


@pytest.mark.parametrize("balance", [-5000, 0, 100])
def test_topup_allowed_on_a_wristband_blocked_for_debt(balance: int) -> None:
    acct = account(balance, blocked=True)
    assert authorize_topup(acct, tag_blocked=False).code == BarCode.APPROVED
    assert authorize_sale(sale(1, acct=acct, online=True)).code == BarCode.TAG_BLOCKED


def test_tables_cover_every_bar_code() -> None:
    covered = {e for _, _, e in SALES} | {e for *_, e in TOPUPS}
    assert covered == set(BarCode), f"no test row for {set(BarCode) - covered}"
    assert {e for _, _, e in SALES} == set(BarCode)  # every code reachable from a sale alone


@pytest.mark.parametrize(
    ("balance", "pending", "expected"),
    [
        (5000, 0, 5000),
        (5000, -1200, 3800),
        (0, 2500, 2500),
        (-300, 0, -300),
        (-300, 200, -100),
    ],
)
def test_available_balance(balance: int, pending: int, expected: int) -> None:
    assert available_balance(sale(1, acct=account(balance), pending=pending)) == expected


@pytest.mark.parametrize("pending", [0, 700, -700])
def test_available_balance_without_account_is_pending(pending: int) -> None:
    assert available_balance(replace(NO_ACCOUNT, pending=pending)) == pending


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(0, id="zero"),
        pytest.param(-1, id="negative"),
        pytest.param(-MAX_AMOUNT, id="large negative"),
        pytest.param(MAX_AMOUNT + 1, id="over max"),
        pytest.param(10**18, id="huge"),
        pytest.param(True, id="bool true"),
        pytest.param(False, id="bool false"),
        pytest.param(1.5, id="float"),
        pytest.param(100.0, id="whole float"),
        pytest.param(float("nan"), id="nan"),
        pytest.param("100", id="numeric string"),
        pytest.param(None, id="none"),
    ],
)
def test_validate_amount_refuses(value: object) -> None:
    with pytest.raises(BadInput) as caught:
        validate_amount(value)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_amount"
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith("invalid_amount: ")


@pytest.mark.parametrize("value", [1, 250, MAX_AMOUNT])
def test_validate_amount_accepts(value: int) -> None:
    assert validate_amount(value) == value
