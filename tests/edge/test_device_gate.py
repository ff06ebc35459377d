"""Gate scans through the real store and journal: the verdict is journaled before it returns."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.vocab import Role
from edge.decide import BadInput
from edge.sample import SampleFestival
from edge.store import Store
from sync.catalog import Change
from tests.edge.conftest import Clock, DeviceFactory, dump, journal_rows


async def test_first_entry_then_already_inside_then_exit_then_reentry(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device()
    code = sample.codes["standard-8"]
    verdicts = [
        (await device.scan(code)).verdict.code,
        (await device.scan(code)).verdict.code,
        (await device.scan(code, exit=True)).verdict.code,
        (await device.scan(code)).verdict.code,
    ]
    assert verdicts == ["ok", "already_inside", "ok", "ok_reentry"]
    rows = journal_rows(device.store.path)
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("entry", "ok", 1),
        ("entry", "already_inside", 0),
        ("exit", "ok", -1),
        ("entry", "ok_reentry", 1),
    ]
    assert [r[0] for r in rows] == [1, 2, 3, 4]  # gap-free device_seq


async def test_opaque_code_is_found_by_keyed_hash_and_never_stored_plain(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device()
    code = sample.codes["opaque-standard-4"]
    result = await device.scan(code)
    assert result.verdict.code == "ok"
    raw = (
        device.store.path.read_bytes()
        + (device.store.path.parent / "replica.sqlite3-wal").read_bytes()
    )
    assert code.encode() not in raw


async def test_signed_ticket_sold_after_sync_is_admitted(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device()
    assert (await device.scan(sample.codes["sold-after-sync"])).verdict.code == "ok"
    assert (await device.scan(sample.codes["sold-after-sync"])).verdict.code == "already_inside"


@pytest.mark.parametrize(
    ("label", "zone", "expected"),
    [
        ("cancelled", "General", "cancelled"),
        ("refunded", "General", "refunded"),
        ("unsold", "General", "not_sold"),
        ("blocked", "General", "blocked"),
        ("standard-8", "VIP", "wrong_zone"),
        ("vip-5", "VIP", "ok"),
        ("backstage-6", "Backstage", "ok"),
        ("camping-7", "Backstage", "wrong_zone"),
    ],
)
async def test_catalog_states_give_their_codes(
    make_device: DeviceFactory, sample: SampleFestival, label: str, zone: str, expected: str
) -> None:
    device = await make_device()
    assert (await device.scan(sample.codes[label], zone=zone)).verdict.code == expected


async def test_no_reentry_zone_refuses_after_exit(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device(zone="Backstage")
    code = sample.codes["backstage-6"]
    assert (await device.scan(code)).verdict.code == "ok"
    assert (await device.scan(code, exit=True)).verdict.code == "ok"
    assert (await device.scan(code)).verdict.code == "no_reentry"


async def test_validity_window_uses_the_clock(
    make_device: DeviceFactory, sample: SampleFestival, clock: Clock
) -> None:
    device = await make_device()
    clock.advance(4 * 86_400)  # the sample's categories end three days after NOW
    assert (await device.scan(sample.codes["standard-8"])).verdict.code == "expired"
    clock.advance(-8 * 86_400)
    assert (await device.scan(sample.codes["standard-8"])).verdict.code == "not_yet_valid"


async def test_zone_full_counts_central_occupancy_and_local_entries(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device()
    zone = device.catalog.find_zone("Backstage")
    assert zone is not None
    row = zone.model_dump(mode="json") | {"occupancy": 49}
    await device.store.apply_changes([Change(seq=1000, table="zone", row=row)])
    backstage = [sample.codes["backstage-6"], sample.codes["backstage-10"]]
    first = await device.scan(backstage[0], zone="Backstage")
    second = await device.scan(backstage[1], zone="Backstage")
    assert (first.verdict.code, second.verdict.code) == ("ok", "zone_full")


async def test_central_presence_newer_than_local_history_wins(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device()
    code = sample.codes["standard-8"]
    entered = await device.scan(code)
    ticket_id = entered.event.payload["ticket_id"]
    zone_id = entered.event.payload["zone_id"]
    # Central learned (from another gate) that the ticket left, after our entry.
    exit_row = {
        "ticket_id": ticket_id,
        "zone_id": zone_id,
        "inside": False,
        "hlc": entered.event.hlc + 1,
    }
    await device.store.apply_changes([Change(seq=2000, table="presence", row=exit_row)])
    assert (await device.scan(code)).verdict.code == "ok_reentry"


# This device's id, and two others on either side of it in uuid order.
_ME = "80000000-0000-7000-8000-000000000000"
_BEFORE_ME = "00000000-0000-7000-8000-000000000000"
_AFTER_ME = "ffffffff-0000-7000-8000-000000000000"


@pytest.mark.parametrize(
    ("other", "expected"),
    [(_BEFORE_ME, "already_inside"), (_AFTER_ME, "ok_reentry")],
)
async def test_presence_tie_in_hlc_is_broken_by_device_id_as_central_breaks_it(
    make_device: DeviceFactory, sample: SampleFestival, tmp_path: Path, other: str, expected: str
) -> None:
    # Central merges presence by the latest fact in (hlc, device_id, device_seq): at an equal
    # HLC the movement of the device with the larger id stands, here as there.
    store = await Store.open(tmp_path / "dev")
    await store.set_state("device_id", _ME)
    await store.close()
    device = await make_device()
    assert device.journal.device_id == _ME
    code = sample.codes["standard-8"]
    entered = await device.scan(code)
    exit_row = {
        "ticket_id": entered.event.payload["ticket_id"],
        "zone_id": entered.event.payload["zone_id"],
        "inside": False,
        "hlc": entered.event.hlc,  # the same HLC as our entry, from another gate
        "device_id": other,
        "device_seq": 1,
    }
    await device.store.apply_changes([Change(seq=2000, table="presence", row=exit_row)])
    assert (await device.scan(code)).verdict.code == expected


async def test_cancellation_arriving_by_change_feed_is_applied(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device()
    code = sample.codes["standard-12"]
    first = await device.scan(code)
    ticket = {
        "id": first.event.payload["ticket_id"],
        "festival_id": sample.snapshot.festival_id,
        "category_id": first.event.payload.get("category_id")
        or next(iter(device.catalog.categories)),
        "status": "CANCELLED",
    }
    await device.store.apply_changes([Change(seq=3000, table="ticket", row=ticket)])
    await device.scan(code, exit=True)
    again = await device.scan(code)
    assert again.verdict.code == "cancelled"
    assert again.event.catalog_seq == 3000


GARBAGE: list[str | bytes] = [
    b"\xff\xfe\x00garbage",
    b"\xc3\x28",  # invalid UTF-8
    "x" * 100_000,
    "'; DROP TABLE ticket; --",
    "FG1.AAAA",  # truncated signed code
    "",
    "\x00\x01\x02",
]


@pytest.mark.parametrize("raw", GARBAGE, ids=lambda r: repr(r)[:20])
async def test_garbage_is_refused_journaled_and_changes_nothing_else(
    make_device: DeviceFactory, raw: str | bytes
) -> None:
    device = await make_device()
    before = dump(device.store.path)
    result = await device.scan(raw)
    assert result.verdict.code in {"unknown", "forged"}
    assert dump(device.store.path) == before
    assert [r[2] for r in journal_rows(device.store.path)] == [result.verdict.code]
    assert "ticket_id" not in result.event.payload


async def test_bit_flipped_signed_code_is_forged(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device()
    code = sample.codes["standard-8"]
    i = len(code) - 10  # inside the signature
    flipped = code[:i] + ("A" if code[i] != "A" else "B") + code[i + 1 :]
    assert (await device.scan(flipped)).verdict.code == "forged"


async def test_unknown_zone_and_missing_catalog_are_errors_not_verdicts(
    make_device: DeviceFactory, sample: SampleFestival
) -> None:
    device = await make_device()
    with pytest.raises(BadInput) as unknown_zone:
        await device.scan(sample.codes["standard-8"], zone="Moon")
    assert unknown_zone.value.code == "unknown_zone"
    empty = await make_device(name="empty", load=False)
    with pytest.raises(BadInput) as no_catalog:
        await empty.scan(sample.codes["standard-8"])
    assert no_catalog.value.code == "no_catalog"
    assert journal_rows(device.store.path) == [] and journal_rows(empty.store.path) == []


async def test_bar_device_cannot_scan(make_device: DeviceFactory, sample: SampleFestival) -> None:
    bar = await make_device(Role.BAR, name="bar")
    with pytest.raises(BadInput) as caught:
        await bar.scan(sample.codes["standard-8"])
    assert caught.value.code == "wrong_role"
