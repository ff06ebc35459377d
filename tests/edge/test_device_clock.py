"""Online or offline is measured on the monotonic clock: moving the wall clock changes nothing."""

from __future__ import annotations

from pathlib import Path

from config.vocab import Role
from edge.clock import CentralContact, DeviceClock
from edge.device import Device
from edge.sample import SampleFestival
from tests.edge.conftest import Clock, DeviceFactory

DAY_S = 86_400


async def test_the_allowance_holds_with_the_wall_clock_moved_back_forward_and_back(
    make_device: DeviceFactory, sample: SampleFestival, clock: Clock
) -> None:
    bar = await make_device(Role.BAR)
    bar.time.record_contact(clock())
    assert bar.online()
    clock.advance(60)  # central has not answered for a minute: offline
    carol = sample.tags["carol"]  # 200.00 on the wristband, allowance 20.00
    approved = 0
    for move in (-DAY_S, 2 * DAY_S, -2 * DAY_S):
        clock.set_wall(move)
        assert not bar.online()
        for _ in range(3):
            result = await bar.charge(carol, amount=450)
            approved += result.amount if result.verdict.code == "approved" else 0
    assert approved == 1800


async def test_a_contact_from_another_boot_or_the_future_counts_as_none(
    make_device: DeviceFactory, clock: Clock
) -> None:
    bar = await make_device(Role.BAR)
    bar.time.last_contact = CentralContact("another-boot", clock.monotonic(), clock())
    assert bar.time.since_contact_ms() is None and not bar.online()
    ahead = CentralContact(bar.time.boot_id, clock.monotonic() + 1000, clock())
    bar.time.last_contact = ahead  # later than now on this boot's clock: cannot be placed
    assert bar.time.since_contact_ms() is None and bar.time.central_ms() is None
    assert not bar.online()


async def test_a_contact_is_kept_for_the_next_process_on_the_same_boot(
    tmp_path: Path, sample: SampleFestival, clock: Clock
) -> None:
    first = await Device.open(tmp_path / "bar", role=Role.BAR, vendor="Main Bar",
                              clock=clock, monotonic=clock.monotonic)  # fmt: skip
    await first.store.apply_snapshot(sample.snapshot)
    await first.journal.observe_central(first.journal.hlc.last + (5 << 16), clock())
    await first.close()
    clock.advance(5)
    again = await Device.open(tmp_path / "bar", role=Role.BAR, vendor="Main Bar",
                              clock=clock, monotonic=clock.monotonic)  # fmt: skip
    try:
        assert again.time.since_contact_ms() == 5000
        assert again.online()
        contact = again.time.last_contact
        assert contact is not None and again.time.central_ms() == contact.central_ms + 5000
    finally:
        await again.close()


def test_central_time_is_carried_forward_on_the_monotonic_clock() -> None:
    now = {"wall": 1_000_000, "mono": 50}
    time = DeviceClock(lambda: now["wall"], lambda: now["mono"], boot_id="b")
    assert time.central_ms() is None
    time.record_contact(2_000_000)
    now["mono"] += 30_000
    now["wall"] -= 86_400_000  # the wall clock is set back a day
    assert time.central_ms() == 2_030_000
    assert time.since_contact_ms() == 30_000


async def test_a_gate_decides_validity_by_central_time_when_its_clock_is_far_off(
    make_device: DeviceFactory, sample: SampleFestival, clock: Clock
) -> None:
    gate = await make_device()
    clock.set_wall(4 * DAY_S)  # past the sample's validity window, by the wall clock only
    assert (await gate.scan(sample.codes["standard-8"])).verdict.code == "expired"  # no contact
    gate.time.record_contact(clock() - 4 * DAY_S * 1000)  # central says the true time
    result = await gate.scan(sample.codes["standard-12"])
    assert result.verdict.code == "ok"
    assert result.event.wall_ms == clock()  # the fact keeps the clock's own reading
