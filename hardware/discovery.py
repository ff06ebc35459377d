"""`festgate hardware list`: cameras, serial ports and NFC readers found on this machine."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hardware.faults import KERNEL_NFC_HINT

# nfcpy's supported USB readers (nfc.clf.device.usb_device_map), named for people.
NFC_USB_IDS: dict[tuple[int, int], str] = {
    (0x054C, 0x0193): "Sony PN531",
    (0x04CC, 0x0531): "Philips PN531 / SCM SCL3710",
    (0x04CC, 0x2533): "NXP PN533",
    (0x04E6, 0x5591): "SCM SCL3711 (PN533)",
    (0x04E6, 0x5593): "SCM SCL3712 (PN533)",
    (0x054C, 0x02E1): "Sony RC-S330/360/370",
    (0x054C, 0x06C1): "Sony RC-S380",
    (0x054C, 0x06C3): "Sony RC-S380",
    (0x072F, 0x2200): "ACS ACR122U",
}
KERNEL_NFC_DRIVERS = {"pn533_usb", "pn533", "port100"}


@dataclass
class Found:
    """One piece of hardware: what it is, the path to put in the config, and any problem."""

    kind: str  # camera | serial | nfc
    path: str
    name: str
    problems: list[str] = field(default_factory=list)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def cameras(dev: Path = Path("/dev"), sys_root: Path = Path("/sys")) -> list[Found]:
    """V4L2 capture devices; index N in the config means /dev/videoN."""
    found = []
    for node in sorted(dev.glob("video[0-9]*"), key=lambda p: int(p.name[5:])):
        index = node.name[5:]
        name = _read(sys_root / "class/video4linux" / node.name / "name") or "camera"
        item = Found("camera", index, f"{name} ({node})")
        if not os.access(node, os.R_OK | os.W_OK):
            item.problems.append(f"no access to {node}: add the service user to the video group")
        found.append(item)
    return found


def serial_ports() -> list[Found]:
    """Serial ports pyserial sees (USB adapters, ACM scanners, on-board UARTs)."""
    try:
        from serial.tools import list_ports
    except ImportError:
        return []
    found = []
    for port in sorted(list_ports.comports(), key=lambda p: p.device):
        desc = port.description if port.description and port.description != "n/a" else ""
        ids = f" [{port.vid:04x}:{port.pid:04x}]" if port.vid is not None else ""
        item = Found("serial", port.device, (desc or "serial port") + ids)
        if os.path.exists(port.device) and not os.access(port.device, os.R_OK | os.W_OK):
            item.problems.append(
                f"permission denied on {port.device}: add the service user to the dialout group"
            )
        found.append(item)
    return found


def nfc_readers(sys_root: Path = Path("/sys"), dev: Path = Path("/dev")) -> list[Found]:
    """USB NFC readers nfcpy supports, with a kernel driver or permission problem if any."""
    found = []
    devices = sys_root / "bus/usb/devices"
    for entry in sorted(devices.glob("*")) if devices.is_dir() else []:
        vid, pid = _read(entry / "idVendor"), _read(entry / "idProduct")
        if not vid or not pid:
            continue
        name = NFC_USB_IDS.get((int(vid, 16), int(pid, 16)))
        if name is None:
            continue
        bus, devnum = int(_read(entry / "busnum") or 0), int(_read(entry / "devnum") or 0)
        item = Found("nfc", f"usb:{bus:03d}:{devnum:03d}", name)
        for interface in entry.glob(f"{entry.name}:*"):
            driver = interface / "driver"
            if driver.is_symlink() and os.path.basename(os.readlink(driver)) in KERNEL_NFC_DRIVERS:
                item.problems.append(KERNEL_NFC_HINT)
                break
        node = dev / f"bus/usb/{bus:03d}/{devnum:03d}"
        if node.exists() and not os.access(node, os.R_OK | os.W_OK):
            item.problems.append(
                f"no access to {node}: install deploy/udev/99-festgate.rules (plugdev group)"
            )
        found.append(item)
    return found


def list_hardware() -> list[Found]:
    """Everything found, cameras first."""
    return [*cameras(), *serial_ports(), *nfc_readers()]


def as_json(found: list[Found]) -> list[dict[str, Any]]:
    """Found items as plain dicts."""
    return [asdict(f) for f in found]
