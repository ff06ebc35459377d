"""Scanner, relay and display through real pyserial on pty pairs."""

from __future__ import annotations

import errno
import time

import pytest

from config.hardware import DisplayConfig, RelayConfig, SerialScannerConfig
from hardware.base import ReaderUnavailable, Shown
from hardware.faults import serial_fault
from hardware.serial_display import SerialDisplay
from hardware.serial_relay import SerialRelay, lcus_frame
from hardware.serial_scanner import SerialScanner
from hardware.sim_serial import PtyDevice
from tests.hardware.helpers import Running, collect, wait_for

OK = Shown("ok", "Welcome in", admits=True)
REFUSED = Shown("cancelled", "Ticket cancelled", admits=False)


def scanner(port: str, **kw: object) -> SerialScanner:
    cfg = {"type": "serial_scanner", "name": "hand", "port": port} | kw
    return SerialScanner(SerialScannerConfig.model_validate(cfg))


def opened(reader: SerialScanner) -> Running:
    running = Running(reader)
    assert wait_for(lambda: reader.counters["opens"] == 1, 5)
    return running


def test_scanner_reads_lines_split_across_writes() -> None:
    with PtyDevice() as dev:
        running = opened(scanner(dev.port))
        dev.write(b"FG1.first\r")
        dev.write(b"FG1.sec")
        time.sleep(0.05)
        dev.write(b"ond\r\nFG1.third\r")  # a scanner set to CR that sends CR LF anyway
        running.wait(3, 5)
        got = running.stop()
    assert [s.text for s in got] == ["FG1.first", "FG1.second", "FG1.third"]
    assert all(s.source == "hand" for s in got)


def test_scanner_drops_noise_overlong_and_stale_partial_lines_and_keeps_reading() -> None:
    with PtyDevice() as dev:
        reader = scanner(dev.port, terminator="LF", max_line=64, line_timeout_s=0.2)
        running = opened(reader)
        dev.write(b"\xff\xfe\x00\x9c garbage\n")  # binary noise
        dev.write(b"A" * 300 + b"\n")  # overlong line
        dev.write(b"half a co")  # the scanner was unplugged mid-code...
        time.sleep(0.5)
        dev.write(b"\nFG1.after\n")  # ...and the next code still arrives
        running.wait(1, 5)
        got = running.stop()
    assert [s.text for s in got] == ["FG1.after"]
    assert reader.counters["binary"] == 1
    assert reader.counters["overlong"] == 1
    assert reader.counters["partial"] == 1


def test_scanner_unplugged_is_reader_unavailable() -> None:
    dev = PtyDevice()
    running = opened(scanner(dev.port))
    dev.write(b"FG1.one\r")
    assert [s.text for s in running.wait(1, 5)] == ["FG1.one"]
    dev.close()  # unplugged
    assert wait_for(lambda: not running.thread.is_alive(), 5)
    with pytest.raises(ReaderUnavailable):
        running.stop()


def test_missing_port_and_permission_faults_say_what_to_do() -> None:
    with pytest.raises(ReaderUnavailable, match="no serial port /dev/ttyNOPE0"):
        collect(scanner("/dev/ttyNOPE0"))
    denied = serial_fault("/dev/ttyUSB0", OSError(errno.EACCES, "Permission denied"))
    assert "dialout" in str(denied) and "/dev/ttyUSB0" in str(denied)


def relay(port: str, **kw: object) -> SerialRelay:
    cfg = {"type": "relay", "name": "turnstile", "port": port, "pulse_ms": 50} | kw
    return SerialRelay(RelayConfig.model_validate(cfg))


def test_relay_pulses_on_admitting_verdict_only() -> None:
    with PtyDevice() as dev:
        turnstile = relay(dev.port, channel=2)
        turnstile.show(REFUSED)
        assert dev.read(0.2) == b""  # a refusal never touches the relay
        start = time.monotonic()
        turnstile.show(OK)
        held = time.monotonic() - start
        sent = dev.read(1.0, size=8)
        turnstile.close()
        closing = dev.read(0.5, size=4)
    assert sent == lcus_frame(2, True) + lcus_frame(2, False)
    assert lcus_frame(2, True) == bytes.fromhex("a00201a3")
    assert held >= 0.05  # closed for the pulse length
    assert closing == lcus_frame(2, False)  # close leaves it released
    assert turnstile.counters["pulses"] == 1


def test_relay_text_protocol_and_missing_port_fault() -> None:
    with PtyDevice() as dev:
        turnstile = relay(dev.port, protocol="text")
        turnstile.show(OK)
        assert dev.read(1.0, until=b"OFF\r\n") == b"RELAY 1 ON\r\nRELAY 1 OFF\r\n"
        turnstile.close()
    broken = relay("/dev/ttyNOPE1")
    broken.show(OK)  # logged and counted, never raised
    assert broken.counters["faults"] == 1 and broken.counters["pulses"] == 0


def test_display_shows_colour_beeps_code_and_text() -> None:
    with PtyDevice() as dev:
        display = SerialDisplay(
            DisplayConfig(type="display", name="lamp", port=dev.port, baud=19200)
        )
        display.show(OK)
        display.show(Shown("wrong_zone", "Not\x07 valid | here", admits=False))
        got = dev.read(1.0, until=b"here\r\n")
        display.close()
    assert got == (
        b"LED GREEN\r\nBEEP 1\r\nSHOW ok|Welcome in\r\n"
        b"LED RED\r\nBEEP 3\r\nSHOW wrong_zone|Not  valid   here\r\n"
    )
