"""Issue 17: a real device's software version and readers reach ops through a real central:
what the daemon's reader supervisor knows, sent with its next changes request."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

from typer.testing import CliRunner

from central.cli import app as central_cli
from central.sample import SampleFestival
from config.device import DeviceConfig
from config.hardware import NfcReaderConfig, SerialScannerConfig
from edge.runtime import Runtime
from hardware.base import Counters, ReaderState, ReaderUnavailable, Scan
from hardware.nfc_wristband import NfcWristbandReader
from hardware.serial_scanner import SerialScanner
from hardware.sim_serial import PtyDevice
from tests.hardware.helpers import free_udp_port
from tests.integration.conftest import CentralServer, Node, enrolled_dir, open_node, until
from tests.integration.test_ops_figures import _ops_get


class BreakableReader:
    """A reader that opens, reads nothing until it is told to break, then raises as lost
    hardware."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.counters = Counters()
        self.state = ReaderState()
        self.broken = threading.Event()

    def scans(self, stop: threading.Event) -> Iterator[Scan]:
        """Nothing to yield; up until broken, then raise."""
        yield from ()
        self.state.set(True)
        while not stop.wait(0.01):
            if self.broken.is_set():
                raise ReaderUnavailable(f"{self.name} unplugged")


async def _report(central: CentralServer, dsn: str, fest: SampleFestival, node: Node) -> object:
    devices = await _ops_get(central, dsn, fest, "/devices")
    (row,) = [d for d in devices if d["id"] == node.creds.device_id]
    return row["software_version"], row["readers"]


async def test_ops_see_the_software_and_a_reader_going_down(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    data = await enrolled_dir(central, pg_dsn, fest, "gate", tmp_path)
    node = await open_node(data)
    nodes.append(node)
    device = {"name": "gate", "role": "gate", "zone": node.creds.zone_id, "data_dir": str(data)}
    timeouts = {"shutdown_s": 3, "reader_restart_s": 300}  # a broken reader stays down here
    config = DeviceConfig.model_validate({"device": device, "timeouts": timeouts})
    camera, nfc = BreakableReader("camera"), BreakableReader("nfc")
    runtime = Runtime(config, node.device, [camera, nfc], [])
    node.client.readers = runtime.readers_up  # as `run_daemon` wires them
    task = asyncio.create_task(runtime.run())
    try:
        await until(lambda: runtime.readers_up == {"camera": True, "nfc": True})
        await node.engine.sync_round()
        running = version("festgate")
        both = {"camera": True, "nfc": True}
        assert await _report(central, pg_dsn, fest, node) == (running, both)
        nfc.broken.set()
        await until(lambda: not runtime.readers_up["nfc"])
        await node.engine.sync_round()
        down = {"camera": True, "nfc": False}
        assert await _report(central, pg_dsn, fest, node) == (running, down)
    finally:
        runtime.stop()
        await asyncio.wait_for(task, 10)
    # A device CLI run (no daemon) says its version only: the readers stay as last told.
    node.client.readers = None
    await node.engine.pull_once()
    assert await _report(central, pg_dsn, fest, node) == (running, down)
    # The central CLI's table shows them as text.
    args = ["--dsn", pg_dsn, "device", "list", "--festival", str(fest.festival_id)]
    # In a thread: the CLI runs its own event loop.
    listed = await asyncio.to_thread(CliRunner().invoke, central_cli, args, env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    assert running in listed.output and "camera up, nfc DOWN" in listed.output


async def test_central_hears_the_real_drivers_state_missing_open_and_unplugged(
    central: CentralServer, pg_dsn: str, fest: SampleFestival, tmp_path: Path, nodes: list[Node]
) -> None:
    """No NFC reader at its `usb:` path is down from the start, however long the driver
    retries; a `udp:` one and a plugged scanner are up; the scanner unplugged is down."""
    data = await enrolled_dir(central, pg_dsn, fest, "gate", tmp_path)
    node = await open_node(data)
    nodes.append(node)
    device = {"name": "gate", "role": "gate", "zone": node.creds.zone_id, "data_dir": str(data)}
    timeouts = {"shutdown_s": 3, "reader_restart_s": 300}  # an unplugged scanner stays down
    config = DeviceConfig.model_validate({"device": device, "timeouts": timeouts})
    missing = NfcWristbandReader(
        NfcReaderConfig(type="nfc", name="nfc-usb", path="usb:ffff:ffff", reopen_backoff_s=0.05)
    )
    udp = NfcWristbandReader(
        NfcReaderConfig(type="nfc", name="nfc-udp", path=f"udp:localhost:{free_udp_port()}")
    )
    with PtyDevice() as pty:
        hand = SerialScanner(SerialScannerConfig(type="serial_scanner", name="hand", port=pty.port))
        runtime = Runtime(config, node.device, [missing, udp, hand], [])
        node.client.readers = runtime.readers_up  # as `run_daemon` wires them
        task = asyncio.create_task(runtime.run())
        try:
            await until(
                lambda: (
                    runtime.readers_up["nfc-udp"]
                    and runtime.readers_up["hand"]
                    and missing.counters["open_failures"] >= 2
                )
            )
            await node.engine.sync_round()
            up = {"nfc-usb": False, "nfc-udp": True, "hand": True}
            assert await _report(central, pg_dsn, fest, node) == (version("festgate"), up)
            pty.close()  # the scanner unplugged
            await until(lambda: not runtime.readers_up["hand"])
            await node.engine.sync_round()
            up["hand"] = False
            assert await _report(central, pg_dsn, fest, node) == (version("festgate"), up)
        finally:
            runtime.stop()
            await asyncio.wait_for(task, 10)
