"""The doctor's hardware: open each configured part as `festgate hardware test` builds it,
read nothing, close it; and which groups and system libraries those parts need."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config.device import DeviceConfig
from config.hardware import (
    CameraReaderConfig,
    DisplayConfig,
    NfcReaderConfig,
    RelayConfig,
    SerialScannerConfig,
)
from hardware.base import Actuator, CodeReader, HardwareUnsupported, ReaderUnavailable

SerialPart = SerialScannerConfig | RelayConfig | DisplayConfig


def needed_groups(cfg: DeviceConfig) -> dict[str, str]:
    """Group → why, for the parts in `cfg` (the groups deploy/udev/99-festgate.rules uses)."""
    needed: dict[str, str] = {}
    for part in [*cfg.readers, *cfg.actuators]:
        if isinstance(part, SerialPart):
            needed["dialout"] = "serial scanners, relays and displays"
        elif isinstance(part, NfcReaderConfig):
            group = "dialout" if part.path.startswith("tty:") else "plugdev"
            needed[group] = "the NFC reader"
        elif isinstance(part, CameraReaderConfig) and "://" not in part.source:
            needed["video"] = "the camera"
    return needed


def needed_libraries(cfg: DeviceConfig) -> list[tuple[str, str, str, str]]:
    """(check name, soname, apt package, why) for the system libraries the parts load."""
    found = []
    if any(isinstance(r, NfcReaderConfig) and r.path.startswith("usb") for r in cfg.readers):
        found.append(("libusb", "libusb-1.0.so.0", "libusb-1.0-0", "nfcpy reaches USB readers"))
    if any(isinstance(r, CameraReaderConfig) and r.decoder == "pyzbar" for r in cfg.readers):
        found.append(("libzbar", "libzbar.so.0", "libzbar0", "pyzbar decodes QR codes"))
    return found


def uses_usb_nfc(cfg: DeviceConfig) -> bool:
    """Whether a USB NFC reader is configured (the kernel's NFC drivers would take it)."""
    return any(isinstance(r, NfcReaderConfig) and r.path.startswith("usb") for r in cfg.readers)


def _opener(built: Any) -> Callable[[], Any]:
    """How to open one built part without reading from it, and close it again."""
    from hardware.camera_qr import CameraQrReader, open_capture
    from hardware.nfc_wristband import NfcWristbandReader
    from hardware.serial_link import open_serial
    from hardware.serial_relay import SerialRelay

    config: Any = getattr(built, "config", None)  # simulated parts keep none: nothing to open
    if isinstance(built, CameraQrReader):
        return lambda: open_capture(config.source).release()
    if isinstance(built, NfcWristbandReader):
        return lambda: built._open().close()
    if isinstance(built, SerialRelay):

        def released() -> None:
            # Opened as the daemon opens it (RTS/DTR dropped at once), left released.
            try:
                built._set(False)
            finally:
                built.close()

        return released
    if isinstance(config, SerialPart):
        return lambda: open_serial(config.port, config.baud).close()
    return lambda: None  # simulated parts: nothing to open


def probe_parts(cfg: DeviceConfig) -> list[tuple[str, str, str | None]]:
    """(name, "reader" | "actuator", problem or None) for every configured part."""
    from edge.runtime import build_parts

    parts = build_parts(cfg)
    results: list[tuple[str, str, str | None]] = []
    kinds = {r.name: "reader" for r in cfg.readers} | {a.name: "actuator" for a in cfg.actuators}
    for name, why in parts.disabled.items():
        results.append((name, kinds[name], why))
    every: list[CodeReader | Actuator] = [*parts.readers, *parts.actuators]
    for built in every:
        try:
            _opener(built)()
            problem = None
        except (ReaderUnavailable, HardwareUnsupported) as exc:
            problem = str(exc)
        except Exception as exc:  # show anything: the tech is checking a new device
            problem = f"{type(exc).__name__}: {exc}"
        results.append((built.name, kinds[built.name], problem))
    return sorted(results, key=lambda r: list(kinds).index(r[0]))
