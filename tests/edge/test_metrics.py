"""The daemon's Prometheus endpoint: real scans through the runtime, scraped over HTTP."""

from __future__ import annotations

import asyncio
import math
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from config.device import DeviceConfig
from config.hardware import SerialScannerConfig, SimulatedReaderConfig
from config.vocab import Role
from edge.metrics import for_daemon
from edge.runtime import Runtime
from edge.sample import SampleFestival, build_sample
from edge.sync_link import engine_for
from hardware.base import CodeReader
from hardware.serial_scanner import SerialScanner
from hardware.sim_reader import SimulatedReader
from sync.client import CentralClient
from tests.edge.conftest import Clock, DeviceFactory

PATIENCE_S = 30.0


def _free_listen() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) → value, from Prometheus text."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_scans_latency_readers_sync_and_clock_are_scraped(
    tmp_path: Path, make_device: DeviceFactory, sample: SampleFestival, clock: Clock
) -> None:
    device = await make_device(Role.GATE)
    config = DeviceConfig.model_validate(
        {
            "device": {"name": "g", "role": "gate", "zone": "General", "data_dir": str(tmp_path)},
            # A failed reader waits out its backoff (until the test stops it): down meanwhile.
            "timeouts": {"shutdown_s": 3, "reader_restart_s": 120},
        }
    )
    feed = tmp_path / "feed.txt"
    codes = [sample.codes["standard-8"], sample.codes["cancelled"], sample.codes["vip-5"]]
    feed.write_text("".join(c + "\n" for c in codes))
    readers: list[CodeReader] = [
        SimulatedReader(SimulatedReaderConfig(type="simulated", name="feed", feed=str(feed))),
        SerialScanner(SerialScannerConfig(type="serial_scanner", name="gone", port="/dev/ttyNO7")),
    ]
    client = CentralClient("http://127.0.0.1:9")  # never called: the engine only holds status
    engine = engine_for(device, client)
    engine.status.last_success_ms = clock.ms - 42_000
    engine.status.clock_offset_ms = -1_500
    listen = _free_listen()
    metrics, stop = for_daemon(listen, device, engine, disabled=["camera"])
    runtime = Runtime(config, device, readers, [], metrics=metrics)
    task = asyncio.create_task(runtime.run())
    try:
        async with asyncio.timeout(PATIENCE_S):
            # Counters of the reader threads, read here: a bounded poll, not a measure.
            while runtime.counters["scans"] < len(codes) or runtime.counters["restarts.gone"] < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as http:
            before = await device.journal.pending_count()
            answer = await http.get(f"http://{listen}/metrics")
            after = await device.journal.pending_count()
    finally:
        runtime.stop()
        await asyncio.wait_for(task, 10)
        stop()
        await client.aclose()
    assert answer.status_code == 200
    got = _samples(answer.text)
    verdicts = {labels[0][1]: v for (n, labels), v in got.items() if n == "festgate_scans_total"}
    assert verdicts == {"ok": 2.0, "cancelled": 1.0}
    assert got[("festgate_decision_seconds_count", ())] == 3.0
    assert got[("festgate_decision_seconds_bucket", (("le", "+Inf"),))] == 3.0
    assert got[("festgate_reader_up", (("reader", "feed"),))] == 1.0
    assert got[("festgate_reader_up", (("reader", "gone"),))] == 0.0  # no such port
    assert got[("festgate_reader_up", (("reader", "camera"),))] == 0.0  # disabled at start
    assert before <= got[("festgate_pending_events", ())] <= after and before >= 3
    assert got[("festgate_seconds_since_last_sync", ())] == 42.0
    assert got[("festgate_clock_offset_seconds", ())] == -1.5


async def test_endpoint_before_any_sync_and_on_a_taken_port(make_device: DeviceFactory) -> None:
    device = await make_device(Role.BAR)
    listen = _free_listen()
    _, stop = for_daemon(listen, device, None, disabled=[])
    try:
        async with httpx.AsyncClient() as http:
            got = _samples((await http.get(f"http://{listen}/metrics")).text)
        # The same address again: no endpoint, and no crash (the bar keeps selling).
        _, stop_again = for_daemon(listen, device, None, disabled=[])
        stop_again()
    finally:
        stop()
    assert got[("festgate_seconds_since_last_sync", ())] == math.inf
    assert math.isnan(got[("festgate_clock_offset_seconds", ())])
    assert got[("festgate_pending_events", ())] == 0.0
    assert not [n for (n, _) in got if n == "festgate_scans_total"]


def test_festgate_run_serves_metrics_when_the_config_asks(tmp_path: Path) -> None:
    sample = build_sample(seed=7, now=int(time.time()), tickets=20)  # the daemon's real clock
    catalog, feed, listen = tmp_path / "catalog.json", tmp_path / "feed.txt", _free_listen()
    catalog.write_text(sample.snapshot.model_dump_json())
    feed.write_text(sample.codes["standard-8"] + "\n" + sample.codes["cancelled"] + "\n")
    toml = tmp_path / "gate.toml"
    toml.write_text(
        f'[device]\nname = "g"\nrole = "gate"\nzone = "General"\n'
        f'data_dir = "{tmp_path / "data"}"\n\n[metrics]\nlisten = "{listen}"\n\n'
        f'[[readers]]\ntype = "simulated"\nname = "sim"\nfeed = "{feed}"\n'
    )
    cli = [sys.executable, "-c", "from edge.cli import main; main()"]
    subprocess.run([*cli, "catalog", "load", str(catalog), "-c", str(toml)], check=True,
                   capture_output=True)  # fmt: skip
    proc = subprocess.Popen([*cli, "run", "-c", str(toml)], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:  # the daemon says when each verdict is in
            if '"scan.verdict"' in line and '"cancelled"' in line:
                break
        got = _samples(httpx.get(f"http://{listen}/metrics", timeout=10).text)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    assert proc.returncode == 0
    verdicts = {labels[0][1]: v for (n, labels), v in got.items() if n == "festgate_scans_total"}
    assert verdicts == {"ok": 1.0, "cancelled": 1.0}
    assert got[("festgate_reader_up", (("reader", "sim"),))] == 1.0
    assert got[("festgate_seconds_since_last_sync", ())] == math.inf  # never enrolled
