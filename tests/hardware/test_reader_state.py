"""A reader is up only while its driver has its device open: real nfcpy (`usb:` and `tty:`
paths with no reader, a `udp:` one), real pyserial on pty pairs, OpenCV on a generated
video; then through the daemon to the scraped `festgate_reader_up`."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from config.hardware import CameraReaderConfig, NfcReaderConfig, SerialScannerConfig
from edge.device import Device
from edge.metrics import for_daemon
from edge.runtime import Runtime
from edge.sample import SampleFestival
from hardware.base import CodeReader, ReaderState, ReaderUnavailable
from hardware.camera_qr import CameraQrReader
from hardware.nfc_wristband import NfcWristbandReader
from hardware.serial_scanner import SerialScanner
from hardware.sim_camera import clip, write_video
from hardware.sim_serial import PtyDevice
from tests.hardware.helpers import Running, collect, free_udp_port, wait_for
from tests.hardware.test_runtime import config, wait_until


class History:
    """Every value a reader's state took, from the moment it was watched."""

    def __init__(self, state: ReaderState) -> None:
        self._lock = threading.Lock()
        self._seen: list[bool] = []
        state.watch(self._add)

    def _add(self, up: bool) -> None:
        with self._lock:
            self._seen.append(up)

    @property
    def seen(self) -> list[bool]:
        with self._lock:
            return list(self._seen)


def nfc(name: str, path: str) -> NfcWristbandReader:
    return NfcWristbandReader(
        NfcReaderConfig(type="nfc", name=name, path=path, reopen_backoff_s=0.05)
    )


def scanner(name: str, port: str) -> SerialScanner:
    return SerialScanner(SerialScannerConfig(type="serial_scanner", name=name, port=port))


@pytest.mark.parametrize("path", ["usb:ffff:ffff", "usb:001:099", "tty:NOPE9:pn532"])
def test_an_nfc_reader_with_nothing_at_its_path_stays_down_while_it_retries(path: str) -> None:
    reader = nfc("nfc", path)
    history = History(reader.state)
    running = Running(reader)
    assert wait_for(lambda: reader.counters["open_failures"] >= 3)  # it keeps trying
    running.stop()
    assert history.seen == [False]  # never up, not even for a moment


def test_an_nfc_reader_on_udp_is_up_while_open_and_down_once_stopped() -> None:
    reader = nfc("nfc", f"udp:localhost:{free_udp_port()}")
    history = History(reader.state)
    running = Running(reader)
    assert wait_for(lambda: reader.state.up)
    running.stop()
    assert not reader.state.up
    assert history.seen == [False, True, False]


def test_a_serial_scanner_is_up_while_its_port_is_open_and_down_once_unplugged() -> None:
    dev = PtyDevice()
    reader = scanner("hand", dev.port)
    history = History(reader.state)
    running = Running(reader)
    assert wait_for(lambda: reader.state.up)
    dev.close()  # unplugged
    assert wait_for(lambda: not running.thread.is_alive())
    with pytest.raises(ReaderUnavailable):
        running.stop()
    assert history.seen == [False, True, False]


def test_a_serial_scanner_on_a_missing_port_never_goes_up() -> None:
    reader = scanner("hand", "/dev/ttyNOPE3")
    history = History(reader.state)
    with pytest.raises(ReaderUnavailable):
        collect(reader)
    assert history.seen == [False]


def test_a_camera_is_up_once_frames_arrive_and_down_when_they_end_or_never_come(
    tmp_path: Path,
) -> None:
    video = write_video(tmp_path / "v.avi", clip([None, "FG1.x", None], frames_each=4))
    played = CameraQrReader(CameraReaderConfig(type="camera", name="cam", source=str(video)))
    history = History(played.state)
    assert [s.text for s in collect(played)] == ["FG1.x"]
    assert history.seen == [False, True, False]  # a recording that ended is down
    missing = CameraQrReader(
        CameraReaderConfig(type="camera", name="cam", source=str(tmp_path / "none.avi"))
    )
    history = History(missing.state)
    with pytest.raises(ReaderUnavailable):
        collect(missing)
    assert history.seen == [False]


def _free_listen() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


async def _readers_up(listen: str) -> dict[str, float]:
    """`festgate_reader_up` by reader, scraped from the daemon's endpoint."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://{listen}/metrics")).text
    return {
        s.labels["reader"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "festgate_reader_up"
    }


async def test_the_scraped_metric_follows_each_device_missing_open_gone_and_back(
    tmp_path: Path, gate: Device, sample: SampleFestival
) -> None:
    port = tmp_path / "ttyHAND"  # not there yet: the scanner is not plugged in
    readers: list[CodeReader] = [
        nfc("nfc-usb", "usb:ffff:ffff"),
        nfc("nfc-udp", f"udp:localhost:{free_udp_port()}"),
        scanner("hand", str(port)),
        CameraQrReader(CameraReaderConfig(type="camera", name="cam", source="/dev/videoNOPE")),
    ]
    histories = {r.name: History(r.state) for r in readers}
    listen = _free_listen()
    metrics, stop_metrics = for_daemon(listen, gate, None, disabled=[])
    runtime = Runtime(config(tmp_path), gate, readers, [], metrics=metrics)
    task = asyncio.create_task(runtime.run())
    try:
        assert await wait_until(
            lambda: (
                runtime.readers_up["nfc-udp"]
                and readers[0].counters["open_failures"] >= 2
                and runtime.counters["restarts.hand"] >= 2
                and runtime.counters["restarts.cam"] >= 2
            )
        )
        want = {"nfc-usb": 0.0, "nfc-udp": 1.0, "hand": 0.0, "cam": 0.0}
        assert await _readers_up(listen) == want
        assert runtime.readers_up == {name: bool(v) for name, v in want.items()}
        with PtyDevice() as dev:
            port.symlink_to(dev.port)  # plugged in: the supervisor's next retry opens it
            assert await wait_until(lambda: runtime.readers_up["hand"], 30)
            assert (await _readers_up(listen))["hand"] == 1.0
            dev.write(sample.codes["standard-8"].encode() + b"\r")
            assert await wait_until(lambda: runtime.counters["admitted"] == 1)
            port.unlink()
        # Unplugged (the pty closed): the read loop fails and the reader is down again.
        assert await wait_until(lambda: not runtime.readers_up["hand"])
        assert (await _readers_up(listen))["hand"] == 0.0
    finally:
        runtime.stop()
        await asyncio.wait_for(task, 10)
        stop_metrics()
    assert histories["nfc-usb"].seen == [False]
    assert histories["cam"].seen == [False]
    assert histories["hand"].seen == [False, True, False]  # retries while absent stay down
