"""Bar and top-up taps through the real store and journal."""

from __future__ import annotations

import pytest

from config.vocab import Role
from edge.decide import BadInput
from edge.device import Device
from edge.sample import SampleFestival
from sync.catalog import Change
from sync.vocab import MAX_AMOUNT
from tests.edge.conftest import Clock, DeviceFactory, dump, journal_rows


async def test_basket_charge_reduces_the_balance_seen_locally(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    bar = await make_device(Role.BAR)
    first = await bar.charge(sample.tags["alice"], products=[("Beer", 2)])
    assert (first.verdict.code, first.amount, first.balance) == ("approved", 900, 4100)
    second = await bar.charge(sample.tags["alice"], amount=500)
    assert (second.verdict.code, second.balance) == ("approved", 3600)
    assert [r[3] for r in journal_rows(bar.store.path)] == [-900, -500]


async def test_offline_allowance_bounds_spend_per_wristband(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    bar = await make_device(Role.BAR)  # never talked to central: offline
    carol = sample.tags["carol"]  # 200.00 on the wristband, allowance 20.00
    assert (await bar.charge(carol, amount=1500)).verdict.code == "approved"
    assert (await bar.charge(carol, amount=600)).verdict.code == "offline_limit"
    assert (await bar.charge(carol, amount=500)).verdict.code == "approved"


async def test_online_device_spends_up_to_the_balance(
    make_device: DeviceFactory, sample: SampleFestival, clock: Clock
) -> None:
    bar = await make_device(Role.BAR)
    bar.time.record_contact(clock())  # central answered just now
    assert (await bar.charge(sample.tags["carol"], amount=15_000)).verdict.code == "approved"
    assert (
        await bar.charge(sample.tags["carol"], amount=6_000)
    ).verdict.code == "insufficient_funds"
    clock.advance(60)  # past the online window: back to offline rules
    assert (await bar.charge(sample.tags["carol"], amount=100)).verdict.code == "offline_limit"


async def test_allowance_cap_in_config_lowers_the_festival_allowance(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    bar = await make_device(Role.BAR, allowance_cap=500)
    assert (await bar.charge(sample.tags["carol"], amount=600)).verdict.code == "offline_limit"


@pytest.mark.parametrize(
    ("tag", "kwargs", "expected"),
    [
        ("bob", {"amount": 500}, "insufficient_funds"),
        ("lost", {"amount": 100}, "tag_blocked"),
        ("alice", {"products": [("Caviar", 1)]}, "unknown_product"),
    ],
)
async def test_declines_are_journaled_and_change_nothing_else(
    make_device: DeviceFactory,
    sample: SampleFestival,
    tag: str,
    kwargs: dict[str, object],
    expected: str,
) -> None:
    bar = await make_device(Role.BAR)
    before = dump(bar.store.path)
    result = await bar.charge(sample.tags[tag], **kwargs)  # type: ignore[arg-type]
    assert result.verdict.code == expected
    assert dump(bar.store.path) == before
    assert journal_rows(bar.store.path) == [(1, "sale", expected, 0)]


async def test_unknown_tag_and_closed_vendor(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    bar = await make_device(Role.BAR)
    assert (await bar.charge("04aabbccddeeff", amount=100)).verdict.code == "unknown_tag"
    vendor = next(iter(bar.catalog.vendors.values()))
    closed = vendor.model_dump(mode="json") | {"is_open": False}
    await bar.store.apply_changes([Change(seq=500, table="vendor", row=closed)])
    assert (await bar.charge(sample.tags["alice"], amount=100)).verdict.code == "vendor_closed"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"amount": -5}, "invalid_amount"),
        ({"amount": 0}, "invalid_amount"),
        ({"amount": MAX_AMOUNT + 1}, "invalid_amount"),
        ({"amount": 100, "products": [("Beer", 1)]}, "invalid_amount"),
        ({}, "invalid_amount"),
        ({"products": [("Beer", 0)]}, "invalid_quantity"),
        ({"products": [("Beer", 1000)]}, "invalid_quantity"),
    ],
)
async def test_bad_amounts_are_errors_and_store_nothing(
    make_device: DeviceFactory, sample: SampleFestival, kwargs: dict[str, object], code: str
) -> None:
    bar = await make_device(Role.BAR)
    before = dump(bar.store.path, skip=())
    with pytest.raises(BadInput) as caught:
        await bar.charge(sample.tags["alice"], **kwargs)  # type: ignore[arg-type]
    assert caught.value.code == code
    assert dump(bar.store.path, skip=()) == before


@pytest.mark.parametrize("tag", ["zz", "", "04:aa:bb:cc:dd:ee:f", "12345", "00" * 11, "aabbcc"])
async def test_malformed_tag_is_an_error(make_device: DeviceFactory, tag: str) -> None:
    bar = await make_device(Role.BAR)
    with pytest.raises(BadInput) as caught:
        await bar.charge(tag, amount=100)
    assert caught.value.code == "invalid_tag"


async def test_topup_then_refund(make_device: DeviceFactory, sample: SampleFestival) -> None:
    point = await make_device(Role.TOPUP, name="topup")
    topped = await point.topup(sample.tags["bob"], amount=2000)
    assert (topped.verdict.code, topped.balance) == ("approved", 2300)
    bar = await make_device(Role.BAR, name="bar")
    sale = await bar.charge(sample.tags["alice"], amount=700)
    refunded = await bar.refund(sale.event.event_id)
    assert (refunded.verdict.code, refunded.balance) == ("approved", 5000)
    with pytest.raises(BadInput) as twice:
        await bar.refund(sale.event.event_id)
    assert twice.value.code == "already_refunded"
    with pytest.raises(BadInput) as unknown:
        await bar.refund("01234567-89ab-7def-8123-456789abcdef")
    assert unknown.value.code == "unknown_sale"
    # A refund gives back offline allowance too: the 7.00 spent no longer counts.
    assert (await bar.charge(sample.tags["alice"], amount=2000)).verdict.code == "approved"


async def test_topup_of_blocked_wristband_on_block_list_is_refused(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    point = await make_device(Role.TOPUP, name="topup")
    row = {"kind": "tag", "ref": point.catalog.festival and _hash(point, sample.tags["bob"])}
    await point.store.apply_changes([Change(seq=900, table="block", row=row)])
    assert (await point.topup(sample.tags["bob"], amount=100)).verdict.code == "tag_blocked"
    bar = await make_device(Role.BAR, name="bar")
    with pytest.raises(BadInput) as bar_topup:
        await bar.topup(sample.tags["bob"], amount=100)
    assert bar_topup.value.code == "wrong_role"


def _hash(device: Device, uid: str) -> str:
    from sync.hashing import tag_hash

    assert device.catalog.festival is not None
    return tag_hash(bytes.fromhex(device.catalog.festival.hash_key), uid).hex()


async def test_product_names_are_looked_up_at_this_vendor(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    bar = await make_device(Role.BAR)
    festival_id = sample.snapshot.festival_id
    other = {"id": "v-food", "festival_id": festival_id, "name": "Food Truck"}
    cheap_beer = {"id": "p-beer-2", "vendor_id": "v-food", "name": "Beer", "price": 100}
    await bar.store.apply_changes(
        [
            Change(seq=700, table="vendor", row=other),
            Change(seq=701, table="product", row=cheap_beer),
        ]
    )
    main_bar = await bar.charge(sample.tags["alice"], products=[("beer", 1)])
    assert (main_bar.verdict.code, main_bar.amount) == ("approved", 450)
    bar.vendor_ref = "Food Truck"  # the same till, now selling for the other vendor
    truck = await bar.charge(sample.tags["alice"], products=[("beer", 1)])
    assert (truck.verdict.code, truck.amount) == ("approved", 100)
