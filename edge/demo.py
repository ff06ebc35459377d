"""The quick-start walk-through: one gate and one bar on a sample festival, offline."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from rich.console import Console
from rich.table import Table

from config.vocab import Role
from edge.clock import wall_clock_ms
from edge.device import Device, GateResult, SaleResult
from edge.sample import build_sample

DATA = Path("var/demo")


async def _run(console: Console) -> None:
    sample = build_sample(now=wall_clock_ms() // 1000, tickets=50)
    shutil.rmtree(DATA, ignore_errors=True)
    gate = await Device.open(DATA / "gate", role=Role.GATE, zone="General")
    bar = await Device.open(DATA / "bar", role=Role.BAR, vendor="Main Bar")
    for device in (gate, bar):
        await device.store.apply_snapshot(sample.snapshot)
    codes, tags = sample.codes, sample.tags
    table = Table(title=f"{sample.snapshot.tables['festival'][0]['name']} — offline devices")
    for column in ("device", "what happens", "verdict", "shown to staff"):
        table.add_column(column)

    def row(device: str, what: str, result: GateResult | SaleResult) -> None:
        style = "green" if result.verdict.admits else "red"
        shown = result.text
        if isinstance(result, SaleResult) and result.balance is not None:
            shown += f" · balance {result.balance / 100:.2f}"
        table.add_row(device, what, f"[{style}]{result.verdict.code}[/]", shown)

    steps: list[tuple[str, str, GateResult | SaleResult]] = []
    for what, code, kwargs in (
        ("signed ticket, first entry", codes["standard-8"], {}),
        ("same ticket again", codes["standard-8"], {}),
        ("same ticket leaves", codes["standard-8"], {"exit": True}),
        ("same ticket comes back", codes["standard-8"], {}),
        ("ticket from an outside system (opaque code)", codes["opaque-standard-4"], {}),
        ("ticket sold after the last sync (signed)", codes["sold-after-sync"], {}),
        ("standard ticket at the VIP zone", codes["standard-8"], {"zone": "VIP"}),
        ("cancelled ticket", codes["cancelled"], {}),
        ("ticket on the block list", codes["blocked"], {}),
        ("signed code with one character changed", codes["vip-5"][:-8] + "AAAAAAAA", {}),
        ("garbage from the scanner", "'; DROP TABLE ticket; --", {}),
    ):
        steps.append(("gate", what, await gate.scan(code, **kwargs)))
    steps.append(
        ("bar", "2 beers on alice", await bar.charge(tags["alice"], products=[("Beer", 2)]))
    )
    steps.append(("bar", "5.00 on bob (3.00 left)", await bar.charge(tags["bob"], amount=500)))
    steps.append(("bar", "25.00 on carol, offline", await bar.charge(tags["carol"], amount=2500)))
    steps.append(("bar", "a lost wristband", await bar.charge(tags["lost"], amount=100)))
    steps.append(("bar", "an unknown wristband", await bar.charge("04deadbeef0102", amount=100)))
    for step in steps:
        row(*step)
    console.print(table)
    for name, device in (("gate", gate), ("bar", bar)):
        stats = await device.journal.stats()
        console.print(
            f"{name}: {stats.events} events journaled (each committed before its verdict was "
            f"shown), {stats.pending} waiting for central, in {device.store.path}"
        )
        await device.close()
    console.print(
        f"Try it yourself: .venv/bin/festgate scan {codes['vip-5']} -d {DATA / 'gate'}",
        soft_wrap=True,
        highlight=False,
    )  # fmt: skip


def main() -> None:
    """Run the walk-through."""
    asyncio.run(_run(Console()))


if __name__ == "__main__":
    main()
