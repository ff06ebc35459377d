"""`festgate-demo`: a festival in a box, from an empty database to the report.

Central (uvicorn on loopback, embedded PostgreSQL or a fresh database on `--dsn`), a festival
built from `--seed`, gates and bars enrolled as `festgate init` does and run as `festgate run`
daemons on simulated hardware, a crowd, a network cut, and a report that fails loudly when
central does not hold exactly the events the devices journaled.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection
from rich.console import Console
from rich.live import Live

from central import cashless, kek, pg, tickets
from central.enrol import create_enrol_code
from festdemo.devices import CameraStream, Daemon, daemon_config, free_port
from festdemo.proxy import LinkProxy
from festdemo.stage import ExitLane, central_server
from festdemo.view import (
    DeviceView,
    build_report,
    central_figures,
    live_table,
    report_renderables,
    safe_figures,
)
from festdemo.world import Action, Phase, World, build_world, plan

EXPECTED = ("duplicate_entry", "overdraft", "stale_catalog")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What `festgate-demo` was asked for."""

    gates: int = 4
    bars: int = 2
    attendees: int = 120
    minutes: float = 1.5
    seed: int = 2024
    dsn: str | None = None
    real_hardware: bool = True
    work_dir: Path | None = None


@dataclass
class Demo:
    """Everything the run started, so teardown can stop it in reverse order."""

    opts: DemoOptions
    console: Console
    work: Path
    dsn: str = ""
    central_port: int = 0
    world: World | None = None
    daemons: list[Daemon] = field(default_factory=list)
    exit_lane: ExitLane | None = None
    phase: str = "starting"
    started: float = field(default_factory=time.monotonic)

    @property
    def views(self) -> list[DeviceView]:
        """Every device, for the live view and the report."""
        out = [
            DeviceView(d.name, d.role, d.place, d.data_dir, d.device_id, d.proxy.cut)
            for d in self.daemons
        ]
        if self.exit_lane is not None:
            self.exit_lane.view.cut = self.exit_lane.proxy.cut
            out.append(self.exit_lane.view)
        return out


async def _enrol(demo: Demo, conn: AsyncConnection[Any]) -> None:
    """Enrol every gate, bar and the exit lane through the real flow, each behind its link."""
    from edge.cli_sync import enrol_device

    world = demo.world
    assert world is not None
    real = demo.opts.real_hardware
    devices: list[tuple[str, str, str, uuid.UUID | None, uuid.UUID | None]] = [
        (name, "gate", zone, world.zones[zone], None) for name, zone in world.gates
    ]
    devices += [
        (name, "bar", f"Bar {i + 1}", None, vid) for i, (name, vid) in enumerate(world.bars)
    ]
    devices.append(("exit-1", "gate", "General (exit)", world.zones["General"], None))
    for name, role, place, zone_id, vendor_id in devices:
        proxy = LinkProxy(demo.central_port)
        url = await proxy.start()
        code = await create_enrol_code(
            conn, festival_id=world.festival_id, role=role, zone_id=zone_id,
            vendor_id=vendor_id, ttl_s=600, actor="demo",
        )  # fmt: skip
        data_dir = demo.work / "devices" / name
        summary = await enrol_device(url, code, name=name, data_dir=data_dir)
        if name.startswith("exit-"):
            view = DeviceView(name, role, place, data_dir, summary["device_id"])
            demo.exit_lane = ExitLane(view, proxy)
            continue
        daemon = Daemon(name, role, place, data_dir, proxy, device_id=summary["device_id"])
        (data_dir / "feed.txt").write_text("")
        if role == "gate" and real:
            daemon.camera = CameraStream()
            await daemon.camera.start()
        if role == "bar":
            daemon.till_feed = data_dir / "feed.txt"
            daemon.nfc_port = free_port(socket.SOCK_DGRAM)
        daemon.config_file = data_dir / "festgate.toml"
        daemon.config_file.write_text(daemon_config(summary["config"], daemon, real_hardware=real))
        demo.daemons.append(daemon)


async def _wait(predicate: Any, limit_s: float, what: str) -> None:
    end = time.monotonic() + limit_s
    while not await predicate():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def _start_devices(demo: Demo) -> None:
    for daemon in demo.daemons:
        daemon.start()
    assert demo.exit_lane is not None
    await demo.exit_lane.start()

    async def all_started() -> bool:
        for daemon in demo.daemons:
            if daemon.proc is not None and daemon.proc.poll() is not None:
                log = daemon.log_file.read_text()[-2000:] if daemon.log_file else ""
                raise RuntimeError(f"{daemon.name} exited at start:\n{log}")
        states = [await d.started() for d in demo.daemons]
        cams = [d.camera.connected.is_set() for d in demo.daemons if d.camera is not None]
        return all(states) and all(cams)

    await _wait(all_started, 90, "the daemons to start")


async def _act(demo: Demo, conn: AsyncConnection[Any], lane: str, action: Action) -> None:
    by_name = {d.name: d for d in demo.daemons}
    real = demo.opts.real_hardware
    if action.kind == "scan":
        daemon = by_name[lane]
        if daemon.camera is not None:
            await daemon.camera.show(action.code)
        else:
            with (daemon.data_dir / "feed.txt").open("a", encoding="utf-8") as feed:
                feed.write(action.code + "\n")
    elif action.kind == "exit":
        assert demo.exit_lane is not None
        await demo.exit_lane.device.scan(action.code, exit=True)
    elif action.kind == "sale":
        daemon = by_name[lane]
        assert demo.world is not None
        # A till scans product barcodes: the product's id (names repeat across bars).
        menu = demo.world.products[dict(demo.world.bars)[lane]]
        await daemon.sell(action.tag_uid, tuple(menu[p] for p in action.products), nfc=real)
    elif action.kind == "cancel":
        assert action.ref is not None
        await tickets.cancel_ticket(conn, action.ref, actor="demo-ops")
    elif action.kind == "topup":
        assert action.ref is not None
        await cashless.topup(conn, action.ref, action.amount, actor="demo-desk")
    elif action.kind == "settle":  # the overdrawn guest comes to the desk once it is known
        assert action.ref is not None

        async def known() -> bool:
            cur = await conn.execute(
                "SELECT 1 FROM conflict WHERE kind = 'overdraft' AND subject_id = %s",
                (action.ref,),
            )
            return await cur.fetchone() is not None

        with contextlib.suppress(RuntimeError):
            await _wait(known, 45, "the overdraft")
        await cashless.topup(conn, action.ref, action.amount, actor="demo-desk")


async def _lane(
    demo: Demo, conn: AsyncConnection[Any], lane: str, actions: list[Action], seconds: float
) -> None:
    """Play a lane's actions spread over the phase (never faster than they can happen)."""
    start = time.monotonic()
    step = seconds / max(1, len(actions))
    for i, action in enumerate(actions):
        await asyncio.sleep(max(0.0, start + i * step - time.monotonic()))
        await _act(demo, conn, lane, action)


async def _phase(demo: Demo, conn: AsyncConnection[Any], phase: Phase) -> None:
    demo.phase = phase.name
    for daemon in demo.daemons:
        daemon.proxy.set_cut(daemon.name in phase.cut)
    seconds = demo.opts.minutes * 60 * phase.share
    ops = phase.lanes.get("ops", [])
    # The ops desk plays first when the story needs it (a cancellation during the cut).
    if ops and ops[0].kind == "cancel":
        await _act(demo, conn, "ops", ops.pop(0))
    async with asyncio.TaskGroup() as group:
        for lane, actions in phase.lanes.items():
            group.create_task(_lane(demo, conn, lane, actions, seconds))


async def _view_loop(demo: Demo, live: Live | None, dsn: str) -> None:
    assert demo.world is not None
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        while True:
            central = await central_figures(conn, demo.world.festival_id)
            if live is not None:
                elapsed = time.monotonic() - demo.started
                live.update(live_table(demo.phase, elapsed, demo.views, central))
            await asyncio.sleep(0.5)


async def _settle(demo: Demo) -> None:
    """Links restored: wait until no device holds an unsent event (bounded)."""
    demo.phase = "settling"
    for daemon in demo.daemons:
        daemon.proxy.set_cut(False)

    async def drained() -> bool:
        figures = [await asyncio.to_thread(safe_figures, v.data_dir) for v in demo.views]
        return all(f["pending"] == 0 for f in figures)

    with contextlib.suppress(RuntimeError):
        await _wait(drained, 60, "devices to send their events")


async def _finish(demo: Demo) -> list[str]:
    """SIGTERM every daemon, then one `festgate sync` round each for what they logged last."""
    from edge.cli_sync import sync_now

    demo.phase = "stopping"
    codes = await asyncio.gather(*(asyncio.to_thread(d.stop) for d in demo.daemons))
    problems = [
        f"{d.name} exited with {c}" for d, c in zip(demo.daemons, codes, strict=True) if c != 0
    ]
    if demo.exit_lane is not None:
        await demo.exit_lane.stop()
    for view in demo.views:
        await sync_now(view.data_dir)
    return problems


@contextlib.asynccontextmanager
async def _devices(demo: Demo) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for daemon in demo.daemons:
            await asyncio.to_thread(daemon.stop)
            if daemon.camera is not None:
                await daemon.camera.stop()
            await daemon.proxy.stop()
        if demo.exit_lane is not None:
            await demo.exit_lane.stop()
            await demo.exit_lane.proxy.stop()


async def _run(demo: Demo, live: Live | None) -> dict[str, Any]:
    opts = demo.opts
    rng = random.Random(opts.seed)  # noqa: S311 - a reproducible story, not a secret
    async with await AsyncConnection.connect(demo.dsn, autocommit=True) as conn, _devices(demo):
        demo.phase = "building the festival"
        world = demo.world = await build_world(
            conn, rng, attendees=opts.attendees, gates=opts.gates, bars=opts.bars
        )
        phases = plan(world, rng, minutes=opts.minutes)
        demo.phase = "enrolling devices"
        await _enrol(demo, conn)
        demo.phase = "starting daemons"
        view = asyncio.create_task(_view_loop(demo, live, demo.dsn))
        try:
            await _start_devices(demo)
            run_start = time.monotonic()
            for phase in phases:
                await _phase(demo, conn, phase)
            await _settle(demo)
            run_seconds = time.monotonic() - run_start
            problems = await _finish(demo)
        finally:
            view.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await view
        report = await build_report(
            conn, world.festival_id, demo.views, world.stories,
            {"festival": world.slug, "seed": opts.seed, "seconds": run_seconds,
             "hardware": _hardware(demo), "daemon_problems": problems},
        )  # fmt: skip
    found = report["conflict_counts"]
    report["missing_conflicts"] = [k for k in EXPECTED if not found.get(k)]
    report["ok"] = report["ok"] and not problems and not report["missing_conflicts"]
    return report


def _hardware(demo: Demo) -> dict[str, Any]:
    exit_lane = "in-process Device + sync engine (the daemon has no exit direction)"
    if not demo.opts.real_hardware:
        return {
            "gates": "simulated reader (feed file)",
            "bars": "simulated reader (product and tag: lines)",
            "exit_lane": exit_lane,
        }
    return {
        "gates": "camera: MJPEG stream → OpenCV + zxing-cpp",
        "bars": "till feed for products + NFC tap: NTAG emulated on nfcpy udp:",
        "exit_lane": exit_lane,
        "codes_shown": sum(d.camera.shown for d in demo.daemons if d.camera is not None),
        "taps": sum(d.taps for d in demo.daemons),
    }


def run_demo(opts: DemoOptions, console: Console, *, live_view: bool = True) -> dict[str, Any]:
    """Run the whole demo and return its report; everything started is stopped on the way out
    (Ctrl-C included)."""
    if opts.gates < 3 or opts.bars < 2:
        raise ValueError("the demo needs at least 3 gates and 2 bars")
    if opts.attendees < 8:
        raise ValueError("the demo needs at least 8 attendees")
    work = opts.work_dir or Path(tempfile.mkdtemp(prefix="festgate-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    demo = Demo(opts, console, work)
    try:
        with pg.fresh_database(opts.dsn, work, prefix="festgate_demo") as dsn:
            demo.dsn = dsn
            console.log(
                f"central database ready; migrating ({'given server' if opts.dsn else 'embedded'})"
            )
            pg.migrate(dsn)
            kek.install(kek.Kek.generate())  # a throwaway database: its KEK lives in memory
            with central_server(dsn) as port:
                demo.central_port = port
                console.log(f"central listening on http://127.0.0.1:{port}")
                if live_view:
                    with Live(console=console, refresh_per_second=4, transient=False) as live:
                        return asyncio.run(_run(demo, live))
                return asyncio.run(_run(demo, None))
    finally:
        for daemon in demo.daemons:  # if the async teardown itself was cut short
            daemon.stop()
        if opts.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def print_report(report: dict[str, Any], console: Console) -> None:
    """The report for people, with a loud line when something is wrong."""
    for part in report_renderables(report):
        console.print(part)
    if report["missing_conflicts"]:
        console.print(
            f"[bold red]✘ the story did not produce: {', '.join(report['missing_conflicts'])}"
        )
    for problem in report["daemon_problems"]:
        console.print(f"[bold red]✘ {problem}")
