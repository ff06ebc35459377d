"""Build drivers from config by `type`; a missing library disables that part, not the daemon."""

from __future__ import annotations

from config.hardware import (
    ActuatorConfig,
    CameraReaderConfig,
    DisplayConfig,
    NfcReaderConfig,
    ReaderConfig,
    RelayConfig,
    SerialScannerConfig,
    SimulatedActuatorConfig,
    SimulatedReaderConfig,
)
from hardware.base import Actuator, CodeReader


def make_reader(config: ReaderConfig) -> CodeReader:
    """The reader for one config entry; HardwareUnsupported when its library is missing."""
    # Imports are lazy so that a machine without, say, nfcpy still runs its camera.
    if isinstance(config, CameraReaderConfig):
        from hardware.camera_qr import CameraQrReader

        return CameraQrReader(config)
    if isinstance(config, NfcReaderConfig):
        from hardware.nfc_wristband import NfcWristbandReader

        return NfcWristbandReader(config)
    if isinstance(config, SerialScannerConfig):
        from hardware.serial_scanner import SerialScanner

        return SerialScanner(config)
    if isinstance(config, SimulatedReaderConfig):
        from hardware.sim_reader import SimulatedReader

        return SimulatedReader(config)
    raise TypeError(f"no reader for {type(config).__name__}")


def make_actuator(config: ActuatorConfig) -> Actuator:
    """The actuator for one config entry."""
    if isinstance(config, RelayConfig):
        from hardware.serial_relay import SerialRelay

        return SerialRelay(config)
    if isinstance(config, DisplayConfig):
        from hardware.serial_display import SerialDisplay

        return SerialDisplay(config)
    if isinstance(config, SimulatedActuatorConfig):
        from hardware.sim_actuator import SimulatedActuator

        return SimulatedActuator(config)
    raise TypeError(f"no actuator for {type(config).__name__}")
