"""The daemon end to end: real readers and actuators, real SQLite journal, real threads."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from config.device import DeviceConfig
from config.hardware import (
    CameraReaderConfig,
    DisplayConfig,
    RelayConfig,
    SerialScannerConfig,
    SimulatedActuatorConfig,
    SimulatedReaderConfig,
)
from config.vocab import Role
from edge.device import Device
from edge.runtime import Runtime
from edge.runtime_logs import RateLimiter
from edge.sample import SampleFestival, build_sample
from edge.store import DB_NAME
from hardware.base import CodeReader
from hardware.camera_qr import CameraQrReader
from hardware.serial_display import SerialDisplay
from hardware.serial_relay import SerialRelay, lcus_frame
from hardware.serial_scanner import SerialScanner
from hardware.sim_actuator import SimulatedActuator
from hardware.sim_camera import clip, write_video
from hardware.sim_reader import SimulatedReader
from hardware.sim_serial import PtyDevice
from tests.hardware.conftest import NOW


def config(tmp_path: Path, **timeouts: float) -> DeviceConfig:
    return DeviceConfig.model_validate(
        {
            "device": {
                "name": "gate-t",
                "role": "gate",
                "zone": "General",
                "data_dir": str(tmp_path),
            },
            "timeouts": {"shutdown_s": 3, "reader_restart_s": 0.05} | timeouts,
        }
    )


def journal(device: Device) -> list[tuple[str, str, dict[str, Any]]]:
    conn = sqlite3.connect(device.store.path)
    try:
        rows = conn.execute("SELECT kind, verdict, payload FROM journal ORDER BY device_seq")
        return [(k, v, json.loads(p)) for k, v, p in rows]
    finally:
        conn.close()


async def wait_until(predicate: Any, within: float = 15.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


async def test_code_on_video_pulses_the_relay_and_is_journaled(
    tmp_path: Path, gate: Device, sample: SampleFestival
) -> None:
    good, bad = sample.codes["standard-8"], sample.codes["cancelled"]
    video = write_video(tmp_path / "gate.avi", clip([None, good, None, bad, None], frames_each=6))
    camera = CameraQrReader(CameraReaderConfig(type="camera", name="cam", source=str(video)))
    with PtyDevice() as relay_pty, PtyDevice() as display_pty:
        relay = SerialRelay(
            RelayConfig(type="relay", name="turnstile", port=relay_pty.port, pulse_ms=30)
        )
        display = SerialDisplay(DisplayConfig(type="display", name="lamp", port=display_pty.port))
        runtime = Runtime(config(tmp_path), gate, [camera], [relay, display])
        task = asyncio.create_task(runtime.run())
        assert await wait_until(lambda: runtime.counters["scans"] == 2)
        shown = await asyncio.to_thread(display_pty.read, 5.0, until=b"SHOW cancelled")
        pulses = await asyncio.to_thread(relay_pty.read, 2.0, size=8)
        runtime.stop()
        await asyncio.wait_for(task, 5)
    # The admitted ticket pulsed the relay exactly once; the cancelled one did not.
    assert pulses == lcus_frame(1, True) + lcus_frame(1, False)
    assert b"LED GREEN\r\nBEEP 1\r\nSHOW ok|Welcome in" in shown
    assert b"LED RED\r\nBEEP 3\r\nSHOW cancelled|" in shown
    rows = journal(gate)
    assert [(k, v) for k, v, _ in rows if k == "entry"] == [("entry", "ok"), ("entry", "cancelled")]
    events = [p.get("event") for k, _, p in rows if k == "log"]
    assert events[0] == "daemon.started" and events[-1] == "daemon.stopped"
    assert good not in json.dumps([p for _, _, p in rows])  # no plaintext code in the journal


async def test_failed_reader_restarts_while_others_go_on_and_logs_are_rate_limited(
    tmp_path: Path, gate: Device, sample: SampleFestival
) -> None:
    feed = tmp_path / "feed.txt"
    feed.write_text("")
    sim = SimulatedReader(SimulatedReaderConfig(type="simulated", name="sim", feed=str(feed)))
    broken = SerialScanner(
        SerialScannerConfig(type="serial_scanner", name="gone", port="/dev/ttyNOPE9")
    )
    lamp = SimulatedActuator(SimulatedActuatorConfig(type="simulated", name="lamp"))
    with PtyDevice() as noisy_pty:
        noisy = SerialScanner(
            SerialScannerConfig(type="serial_scanner", name="noisy", port=noisy_pty.port)
        )
        readers: list[CodeReader] = [sim, broken, noisy]
        runtime = Runtime(config(tmp_path), gate, readers, [lamp])
        task = asyncio.create_task(runtime.run())
        assert await wait_until(lambda: noisy.counters["opens"] == 1)
        for _ in range(200):
            noisy_pty.write(b"\x00\xff\xfe noise\r")
        with feed.open("a") as out:
            out.write(sample.codes["vip-5"] + "\n")
        assert await wait_until(lambda: len(lamp.shown) == 1 and noisy.counters["binary"] == 200)
        assert await wait_until(lambda: runtime.counters["restarts.gone"] >= 3)
        runtime.stop()
        await asyncio.wait_for(task, 5)
    assert lamp.shown[0].code == "ok" and lamp.counters["pulses"] == 1
    logs = [p for k, _, p in journal(gate) if k == "log"]
    binary = [p for p in logs if p.get("event") == "code.binary"]
    assert 1 <= len(binary) <= 5  # 200 dropped lines, a handful of journal events
    assert any(p.get("event") == "reader.failed" and p["reader"] == "gone" for p in logs)
    assert lamp.closed.is_set()


async def test_side_loops_run_in_the_group_and_are_cancelled_at_shutdown(
    tmp_path: Path, gate: Device
) -> None:
    seen: list[str] = []

    async def sync_loop() -> None:
        seen.append("started")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    runtime = Runtime(
        config(tmp_path), gate, [], [], side_loops=[sync_loop],
        on_stop=lambda: seen.append("on_stop"),
    )  # fmt: skip
    task = asyncio.create_task(runtime.run())
    assert await wait_until(lambda: seen == ["started"])
    runtime.stop()
    runtime.stop()  # a second SIGTERM: the hook (the daemon's watchdog) is armed once
    await asyncio.wait_for(task, 5)
    assert seen == ["started", "on_stop", "cancelled"]


def test_rate_limiter_bursts_then_refills_and_reports_suppressed() -> None:
    now = [0.0]
    limiter = RateLimiter(
        burst=2, refill_s=10, total_burst=100, total_refill_s=1, clock=lambda: now[0]
    )
    assert [limiter.allow("a")[0] for _ in range(5)] == [True, True, False, False, False]
    assert limiter.allow("b") == (True, 0)  # keys are limited separately
    now[0] = 10.0
    assert limiter.allow("a") == (True, 3)


def test_sigterm_stops_festgate_run_within_the_shutdown_bound(tmp_path: Path) -> None:
    sample = build_sample(seed=3, now=int(time.time()), tickets=10)
    catalog = tmp_path / "catalog.json"
    catalog.write_text(sample.snapshot.model_dump_json())
    feed = tmp_path / "feed.txt"
    feed.write_text(sample.codes["standard-8"] + "\n")
    toml = tmp_path / "gate.toml"
    toml.write_text(
        f"""
[device]
name = "gate-sig"
role = "gate"
zone = "General"
data_dir = "{tmp_path / "data"}"

[timeouts]
shutdown_s = 2

[[readers]]
type = "simulated"
name = "sim"
feed = "{feed}"

[[actuators]]
type = "simulated"
name = "lamp"
"""
    )
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-c", "from edge.cli import main; main()"]
    subprocess.run(
        [*cli, "catalog", "load", str(catalog), "-c", str(toml)],
        check=True,
        env=env,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [*cli, "run", "-c", str(toml)], stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(json.loads(line))
        if lines[-1].get("event") == "actuator.shown":
            break
    proc.send_signal(signal.SIGUSR1)  # a site tech asking a running daemon where it is
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=10)
    took = time.monotonic() - sent
    lines += [json.loads(x) for x in rest.splitlines() if x.startswith("{")]
    assert "most recent call first" in rest  # the stack dump, and the daemon went on
    assert proc.returncode == 0
    assert took < 2 + 1.5  # shutdown_s plus interpreter exit
    assert lines[-1]["event"] == "daemon.stopped"
    assert any(x.get("verdict") == "ok" for x in lines if x.get("event") == "scan.verdict")
    conn = sqlite3.connect(tmp_path / "data" / DB_NAME)
    kinds = [r[0] for r in conn.execute("SELECT kind FROM journal ORDER BY device_seq")]
    conn.close()
    # Started, the loud "not enrolled" notice, the entry, stopped.
    assert kinds == ["log", "log", "entry", "log"]
    assert any(x.get("event") == "daemon.not_enrolled" for x in lines)


def test_a_daemon_wedged_after_sigterm_prints_its_stacks_and_exits() -> None:
    # What `festgate run` arms when SIGTERM arrives; the wedge here is a thread that never
    # ends (as an unclosed library thread would), which keeps the interpreter from exiting.
    script = (
        "import threading\n"
        "from edge.cli_hardware import arm_stop_watchdog\n"
        "arm_stop_watchdog(0.5)\n"
        "threading.Thread(target=threading.Event().wait, name='wedged').start()\n"
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 1
    assert time.monotonic() - started < 20
    assert "most recent call first" in proc.stderr
    assert "in wait" in proc.stderr  # the wedged thread's frame is in the dump


async def test_bar_till_scanned_products_are_paid_by_the_next_tap(
    tmp_path: Path, sample: SampleFestival
) -> None:
    bar = await Device.open(tmp_path / "bar", role=Role.BAR, vendor="Main Bar")
    await bar.store.apply_snapshot(sample.snapshot)
    sim = SimulatedReader(SimulatedReaderConfig(type="simulated", name="till"))
    lamp = SimulatedActuator(SimulatedActuatorConfig(type="simulated", name="lamp"))
    cfg = DeviceConfig.model_validate(
        {
            "device": {
                "name": "bar-t",
                "role": "bar",
                "vendor": "Main Bar",
                "data_dir": str(tmp_path),
            }
        }
    )
    runtime = Runtime(cfg, bar, [sim], [lamp])
    task = asyncio.create_task(runtime.run())
    for line in ("tag:" + sample.tags["alice"], "Beer", "Beer", "tag:" + sample.tags["alice"]):
        sim.push(line)
    assert await wait_until(lambda: len(lamp.shown) == 4)
    runtime.stop()
    await asyncio.wait_for(task, 5)
    await bar.close()
    assert [s.code for s in lamp.shown] == ["empty_basket", "basket", "basket", "approved"]
    assert lamp.counters["pulses"] == 1


async def test_an_exit_lane_records_exits_and_opens_for_identified_tickets(
    tmp_path: Path, sample: SampleFestival
) -> None:
    gate = await Device.open(
        tmp_path / "exit", role=Role.GATE, zone="General", clock=lambda: NOW * 1000
    )
    await gate.store.apply_snapshot(sample.snapshot)
    code = sample.codes["standard-8"]
    assert (await gate.scan(code)).verdict.code == "ok"  # entered at an entry lane
    cfg = config(tmp_path).model_copy(
        update={"device": config(tmp_path).device.model_copy(update={"direction": "exit"})}
    )
    sim = SimulatedReader(SimulatedReaderConfig(type="simulated", name="exit-cam"))
    lamp = SimulatedActuator(SimulatedActuatorConfig(type="simulated", name="lamp"))
    runtime = Runtime(cfg, gate, [sim], [lamp])
    task = asyncio.create_task(runtime.run())
    sim.push(code)
    sim.push("not a ticket")
    assert await wait_until(lambda: len(lamp.shown) == 2)
    runtime.stop()
    await asyncio.wait_for(task, 5)
    assert (await gate.scan(code)).verdict.code == "ok_reentry"  # the exit counted
    await gate.close()
    scans = [(k, v) for k, v, _ in journal(gate) if k in ("entry", "exit")]
    assert scans == [("entry", "ok"), ("exit", "ok"), ("exit", "unknown"), ("entry", "ok_reentry")]
    assert lamp.counters["pulses"] == 1
