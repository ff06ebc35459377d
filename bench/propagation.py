"""`python -m bench propagation --devices K --rounds R`: central change → online devices, ms.

Central runs as its own process (uvicorn on loopback over embedded PostgreSQL, or the
server named by ``FESTGATE_BENCH_DSN``). K gate devices are enrolled at one zone and
bootstrapped, each with its own SQLite replica, and run their sync engines (long-poll pull
loop and push loop, as ``festgate run`` does) side by side in this process.

(a) ``cancel``: ops cancels a sold ticket through ``central.tickets.cancel_ticket`` in its
own transaction; measured from that commit until the ticket's cancelled row is committed
in every device's replica (the point from which its scan refuses it), per round the
slowest device. Checked after each round: every device's replica holds it CANCELLED.

(b) ``admission``: device 0 admits a fresh ticket (a real scan, journaled); measured from
the scan's verdict until device 1's replica holds central's presence row saying the
ticket is inside (push → ingest → feed → long-poll → apply). Checked after each round:
device 1 scanning the same ticket refuses it as ``already_inside``.

No baseline: the figures are absolute latencies (targets: p99 ≤ 200 ms for (a), ≤ 500 ms
for (b), on loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from bench.ingest import _database
from bench.initial_sync import central_process
from bench.stats import percentile
from central.enrol import create_enrol_code
from central.sample import create_sample_festival
from central.tickets import cancel_ticket
from config.vocab import Role
from edge.device import Device
from edge.sync_link import Credentials, engine_for, save_credentials
from sync.catalog import Change
from sync.client import CentralClient
from sync.engine import SyncEngine
from sync.vocab import TicketStatus


class _Gate:
    """One enrolled gate: its device, sync engine, and a hook on every applied page."""

    def __init__(self, device: Device, client: CentralClient, engine: SyncEngine) -> None:
        self.device = device
        self.client = client
        self.engine = engine
        self.task: asyncio.Task[None] | None = None
        self.watch: Callable[[Sequence[Change]], None] | None = None
        inner = device.store.apply_changes

        async def applied(changes: Iterable[Change]) -> int:
            page = list(changes)
            cursor = await inner(page)  # committed: from here on the device decides by it
            if self.watch is not None:
                self.watch(page)
            return cursor

        device.store.apply_changes = applied  # type: ignore[method-assign]

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.client.aclose()
        await self.device.close()


async def _gate(url: str, code: str, data_dir: Path, long_poll_s: float) -> _Gate:
    device = await Device.open(data_dir, role=Role.GATE)
    try:
        async with CentralClient(url) as anonymous:
            got = await anonymous.enrol(code, data_dir.name)
        creds = Credentials(central_url=url, **got.model_dump(mode="json"))
        await device.store.set_state("device_id", creds.device_id)
    finally:
        await device.close()
    save_credentials(data_dir, creds)
    device = await Device.open(data_dir, role=Role.GATE, zone=creds.zone_id)
    client = CentralClient(url, token=creds.token)
    engine = engine_for(device, client, long_poll_s=long_poll_s)
    await engine.bootstrap()
    return _Gate(device, client, engine)


async def _until(
    gates: Sequence[_Gate],
    test: Callable[[Change], bool],
    act: Callable[[], Awaitable[Any]],
    limit_s: float,
) -> tuple[float, float]:
    """Run `act`, then wait until every gate applied a change passing `test`.

    Returns (t0, slowest arrival) in perf_counter seconds; t0 is when `act` returned.
    """
    loop = asyncio.get_running_loop()
    arrived: dict[int, float] = {}
    done = loop.create_future()

    def watcher(i: int) -> Callable[[Sequence[Change]], None]:
        def seen(page: Sequence[Change]) -> None:
            if i not in arrived and any(test(c) for c in page):
                arrived[i] = time.perf_counter()
                if len(arrived) == len(gates) and not done.done():
                    done.set_result(None)

        return seen

    for i, gate in enumerate(gates):
        gate.watch = watcher(i)
    try:
        await act()
        t0 = time.perf_counter()
        await asyncio.wait_for(done, limit_s)
    finally:
        for gate in gates:
            gate.watch = None
    return t0, max(arrived.values())


def _cancelled(ticket_id: str) -> Callable[[Change], bool]:
    def test(c: Change) -> bool:
        row = c.row
        return (
            c.table == "ticket" and row.get("id") == ticket_id and row.get("status") == "CANCELLED"
        )

    return test


def _inside(ticket_id: str) -> Callable[[Change], bool]:
    def test(c: Change) -> bool:
        row = c.row
        return (
            c.table == "presence" and row.get("ticket_id") == ticket_id and bool(row.get("inside"))
        )

    return test


def _ms(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples, 0.50) * 1000, 1),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 1),
        "max_ms": round(max(samples) * 1000, 1),
        "mean_ms": round(sum(samples) / len(samples) * 1000, 1),
    }


async def _run(dsn: str, url: str, devices: int, rounds: int, tmp: Path) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        fest = await create_sample_festival(
            conn, signed_tickets=2 * rounds, opaque_tickets=0, wristbands=1
        )
        codes = []
        for _ in range(devices):
            codes.append(
                await create_enrol_code(
                    conn, festival_id=fest.festival_id, role="gate", zone_id=fest.zone_id,
                    vendor_id=None, ttl_s=600,
                )
            )  # fmt: skip
        await conn.commit()
    gates = [
        await _gate(url, code, tmp / f"gate-{i}", long_poll_s=25.0) for i, code in enumerate(codes)
    ]
    try:
        for gate in gates:
            gate.task = asyncio.create_task(gate.engine.run())
        await asyncio.sleep(0.5)  # every pull loop is parked in its long-poll
        to_cancel = fest.tickets[:rounds]
        to_admit = fest.tickets[rounds:]
        cancel_s: list[float] = []
        async with await psycopg.AsyncConnection.connect(dsn) as ops:
            for issued in to_cancel:
                tid = str(issued.ticket_id)
                cancel = partial(cancel_ticket, ops, issued.ticket_id, actor="bench")
                t0, t1 = await _until(gates, _cancelled(tid), cancel, limit_s=10.0)
                cancel_s.append(t1 - t0)
                for gate in gates:
                    seen = gate.device.store.gate_lookup(
                        zone_id=str(fest.zone_id),
                        device_id=gate.device.journal.device_id,
                        ticket_id=tid,
                    )
                    if seen.ticket is None or seen.ticket.status != TicketStatus.CANCELLED:
                        raise RuntimeError(f"ticket {tid} not cancelled on a device")
                await asyncio.sleep(0.02)
        admit_s: list[float] = []
        first, second = gates[0], gates[1 % len(gates)]
        for issued in to_admit:
            tid = str(issued.ticket_id)

            async def admit(code: str = issued.code) -> None:
                result = await first.device.scan(code)
                if not result.verdict.admits:
                    raise RuntimeError(f"admission refused: {result.verdict.code}")

            t0, t1 = await _until([second], _inside(tid), admit, limit_s=10.0)
            admit_s.append(t1 - t0)
            refused = await second.device.scan(issued.code)
            if refused.verdict.code != "already_inside":
                raise RuntimeError(f"second gate said {refused.verdict.code}, not already_inside")
            await asyncio.sleep(0.02)
    finally:
        for gate in gates:
            await gate.close()
    return {"cancel": _ms(cancel_s), "admission": _ms(admit_s)}


def main(argv: list[str]) -> dict[str, Any]:
    """Run the propagation benchmark and return its figures."""
    parser = argparse.ArgumentParser(prog="python -m bench propagation")
    parser.add_argument("--devices", type=int, default=4, help="online gate devices")
    parser.add_argument("--rounds", type=int, default=50, help="rounds per measurement")
    args = parser.parse_args(argv)
    if args.devices < 2 or args.rounds < 1:
        parser.error("need devices >= 2 (one admits, another refuses) and rounds >= 1")
    with (
        _database(os.environ.get("FESTGATE_BENCH_DSN")) as dsn,
        tempfile.TemporaryDirectory(prefix="festgate-bench-") as tmp,
        central_process(dsn) as url,
    ):
        got = asyncio.run(_run(dsn, url, args.devices, args.rounds, Path(tmp)))
    cancel, admission = got["cancel"], got["admission"]
    return {
        "bench": "propagation",
        "devices": args.devices,
        "rounds": args.rounds,
        "cancel_to_every_device": cancel,
        "admission_to_other_gate": admission,
        "cancel_p99_ms": cancel["p99_ms"],
        "admission_p99_ms": admission["p99_ms"],
        "target_cancel_p99_ms": 200,
        "target_admission_p99_ms": 500,
        "server": "dsn" if os.environ.get("FESTGATE_BENCH_DSN") else "embedded",
    }
