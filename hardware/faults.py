"""Plain-language explanations of the usual hardware faults a site tech meets."""

from __future__ import annotations

import errno
from typing import Any

from hardware.base import HardwareUnsupported, ReaderUnavailable

KERNEL_NFC_HINT = (
    "the kernel's NFC driver (pn533_usb, port100) holds the reader: run "
    "`sudo modprobe -r pn533_usb pn533 port100 nfc` now, and install "
    "deploy/modprobe.d/festgate-blacklist.conf so it stays free after a reboot"
)


def serial_fault(port: str, exc: BaseException) -> ReaderUnavailable:
    """Explain a pyserial open or read failure."""
    code = getattr(exc, "errno", None)
    if code == errno.EACCES:
        hint = (
            f"permission denied on {port}: add the service user to the dialout group "
            "(`sudo usermod -aG dialout festgate`, then log in again) or install "
            "deploy/udev/99-festgate.rules"
        )
    elif code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        hint = f"no serial port {port}: is it plugged in? `festgate hardware list` shows ports"
    elif code == errno.EBUSY:
        hint = f"{port} is busy: another program (ModemManager, a terminal) has it open"
    else:
        hint = f"serial port {port} failed: {exc}"
    return ReaderUnavailable(hint)


def nfc_fault(path: str, exc: BaseException | None) -> ReaderUnavailable:
    """Explain an nfcpy open failure (it raises IOError with an errno, or finds nothing)."""
    code = getattr(exc, "errno", None)
    if code == errno.EBUSY:
        hint = f"NFC reader at {path} is busy: {KERNEL_NFC_HINT}"
    elif code == errno.EACCES:
        hint = (
            f"permission denied on the NFC reader at {path}: install "
            "deploy/udev/99-festgate.rules (then `sudo udevadm trigger`) or add the user to "
            "plugdev"
        )
    elif code == errno.ENODEV or exc is None:
        hint = f"no NFC reader at {path}: is it plugged in? If `lsusb` shows it, {KERNEL_NFC_HINT}"
    else:
        hint = f"NFC reader at {path} failed: {exc}"
    return ReaderUnavailable(hint)


def camera_fault(source: str) -> ReaderUnavailable:
    """Explain a camera that OpenCV could not open."""
    if source.isdigit():
        return ReaderUnavailable(
            f"no camera at index {source}: check `ls /dev/video*`, that the service user is in "
            "the video group, and `festgate hardware list`"
        )
    return ReaderUnavailable(f"cannot open video source {source!r} (file missing or stream down)")


def missing_library(driver: str, module: str, exc: ImportError | OSError) -> HardwareUnsupported:
    """A driver whose library is not installed is disabled with this message."""
    extra = " (pyzbar also needs the system's libzbar0: apt install libzbar0)"
    return HardwareUnsupported(
        f"{driver} disabled: cannot import {module}: {exc}" + (extra if module == "pyzbar" else "")
    )


def describe(exc: BaseException) -> dict[str, Any]:
    """An exception as log fields (type and message only: never a scanned code)."""
    return {"error": type(exc).__name__, "detail": str(exc)[:300]}
