"""Opening a pyserial port (device path or URL such as socket://) with plain-language faults."""

from __future__ import annotations

from typing import Any

from hardware.faults import missing_library, serial_fault

try:
    import serial
except ImportError as exc:  # pragma: no cover - pyserial is a core dependency
    serial = None
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None


def open_serial(port: str, baud: int, *, timeout: float = 0.1) -> Any:
    """Open `port` (path or pyserial URL); ReaderUnavailable explains why it failed."""
    if serial is None:
        assert _IMPORT_ERROR is not None
        raise missing_library("serial port", "serial", _IMPORT_ERROR)
    try:
        # serial_for_url takes plain paths too, and URLs (socket://, loop://) for tests.
        return serial.serial_for_url(port, baudrate=baud, timeout=timeout, write_timeout=1.0)
    except (OSError, ValueError, serial.SerialException) as exc:
        raise serial_fault(port, exc) from exc


def serial_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a port raises when it goes away mid-use (USB unplugged)."""
    if serial is None:
        return (OSError,)
    return (OSError, serial.SerialException)
