"""Invariants on one device, checked through the real store and journal (hypothesis)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.vocab import Role
from edge.device import Device
from edge.sample import build_sample
from tests.edge.conftest import NOW, Clock

SAMPLE = build_sample(seed=11, now=NOW, tickets=12)
TICKETS = [SAMPLE.codes[k] for k in ("standard-8", "vip-5", "opaque-standard-4", "sold-after-sync")]

scans = st.lists(st.tuples(st.integers(0, len(TICKETS) - 1), st.booleans()), max_size=40)
sales = st.lists(st.tuples(st.integers(1, 3000), st.booleans()), max_size=25)


def run(coro_factory: Callable[[Path], Coroutine[Any, Any, None]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(coro_factory(Path(tmp)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scans)
def test_no_ticket_admitted_twice_without_an_exit_between(steps: list[tuple[int, bool]]) -> None:
    async def scenario(tmp: Path) -> None:
        device = await Device.open(tmp, role=Role.GATE, zone="General", clock=Clock())
        try:
            await device.store.apply_snapshot(SAMPLE.snapshot)
            inside: set[int] = set()
            for index, is_exit in steps:
                result = await device.scan(TICKETS[index], exit=is_exit)
                if is_exit:
                    inside.discard(index)
                elif result.verdict.admits:
                    assert index not in inside, "admitted twice without an exit"
                    inside.add(index)
                else:
                    assert result.verdict.code == "already_inside" and index in inside
        finally:
            await device.close()

    run(scenario)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sales, st.integers(0, 5000))
def test_offline_sales_never_overdraw_beyond_the_allowance(
    steps: list[tuple[int, bool]], balance: int
) -> None:
    async def scenario(tmp: Path) -> None:
        device = await Device.open(tmp, role=Role.BAR, vendor="Main Bar", clock=Clock())
        try:
            snapshot = SAMPLE.snapshot.model_copy(deep=True)
            snapshot.tables["account"][0]["balance"] = balance
            await device.store.apply_snapshot(snapshot)
            festival = device.catalog.festival
            assert festival is not None
            allowance = festival.offline_allowance
            spent = 0
            approved: list[tuple[str, int]] = []
            for amount, refund in steps:
                if refund and approved:
                    event_id, refunded = approved.pop()
                    await device.refund(event_id)
                    spent -= refunded
                    continue
                result = await device.charge(SAMPLE.tags["alice"], amount=amount)
                if result.verdict.admits:
                    spent += amount
                    approved.append((result.event.event_id, amount))
                assert balance - spent >= -allowance
                assert spent <= allowance
        finally:
            await device.close()

    run(scenario)
