"""The pinned versions cover what pyproject.toml asks for, and a device's pins hold nothing of
central's (constraints/compile regenerates both files)."""

from __future__ import annotations

import re
import tomllib

from tests.deploy.conftest import ROOT

DEVICE_EXTRAS = ("camera", "zbar", "nfc")


def _name(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name is not None, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def _pinned(file: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints" / file).read_text().splitlines():
        if line and not line.startswith("#"):
            requirement = line.split(";")[0].split("#")[0].strip()
            name, _, version = requirement.partition("==")
            assert version, f"{file}: {line!r} is not pinned"
            pins[_name(name)] = version
    return pins


def test_every_requirement_is_pinned_and_devices_pin_nothing_of_centrals() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    core = {_name(r) for r in project["dependencies"]}
    device = core | {_name(r) for e in DEVICE_EXTRAS for r in extras[e]}
    everything = device | {_name(r) for reqs in extras.values() for r in reqs} - {"festgate"}
    assert device <= set(_pinned("device.txt")), device - set(_pinned("device.txt"))
    assert everything <= set(_pinned("dev.txt")), everything - set(_pinned("dev.txt"))
    central = {_name(r) for r in extras["central"]}
    assert not central & set(_pinned("device.txt"))
    # One tested set: a package both files pin has the same version in both.
    dev = _pinned("dev.txt")
    assert {n: v for n, v in _pinned("device.txt").items() if dev.get(n) != v} == {}


def test_the_reader_libraries_are_extras_not_core() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    assert not core & {"opencv-python-headless", "zxing-cpp", "pyzbar", "nfcpy", "numpy"}
    extras = project["optional-dependencies"]
    assert extras["gate"] == ["festgate[camera]"] and extras["bar"] == ["festgate[nfc]"]
