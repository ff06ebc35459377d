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


# Which extra of the festgate package brings a driver's library, and the system package it
# loads (pyproject.toml's optional dependencies; docs/deploy-device.md).
EXTRAS: dict[str, tuple[str, str | None]] = {
    "cv2": ("camera", None),
    "zxingcpp": ("camera", None),
    "pyzbar": ("zbar", "libzbar0"),
    "nfc": ("nfc", "libusb-1.0-0"),
    "ndef": ("nfc", "libusb-1.0-0"),
}


def install_hint(module: str) -> str:
    """How to get `module`: the festgate extra to install, and the system package it needs."""
    extra, system = EXTRAS.get(module, ("", None))
    if not extra:
        return "reinstall festgate (`pip install festgate`)"
    hint = f"install the {extra!r} extra (`pip install 'festgate[{extra}]'`)"
    return hint + (f" and the system's {system} (`apt install {system}`)" if system else "")


def missing_library(driver: str, module: str, exc: ImportError | OSError) -> HardwareUnsupported:
    """A driver whose library is not installed is disabled with this one-line message."""
    return HardwareUnsupported(
        f"{driver} disabled: cannot import {module} ({exc}); {install_hint(module)}"
    )


def describe(exc: BaseException) -> dict[str, Any]:
    """An exception as log fields (type and message only: never a scanned code)."""
    return {"error": type(exc).__name__, "detail": str(exc)[:300]}
