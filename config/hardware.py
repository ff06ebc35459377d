"""Reader and actuator settings: pydantic unions discriminated on `type`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from config.vocab import MAX_CODE_CHARS


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(
        min_length=1, max_length=64, description="name shown in logs and `hardware test`"
    )


class CameraReaderConfig(_Part):
    """A camera reading QR codes through OpenCV."""

    type: Literal["camera"]
    source: str = Field("0", description="device index, video file, or stream URL")
    decoder: Literal["zxing", "pyzbar"] = Field("zxing", description="QR decoder library")
    hold_s: float = Field(
        2.0,
        ge=0,
        le=60,
        description=(
            "a code held in view is reported again after this many seconds; 0 = only after it "
            "leaves the frame"
        ),
    )
    downscale: float = Field(1.0, gt=0, le=1, description="scale factor applied before decoding")
    roi: tuple[int, int, int, int] | None = Field(None, description="x, y, width, height to decode")
    invert: bool = Field(True, description="also read light-on-dark (dark-mode screen) codes")
    gone_frames: int = Field(
        4, ge=1, le=300, description="frames without a code before it counts as gone"
    )


class NfcReaderConfig(_Part):
    """An NFC reader driven by nfcpy."""

    type: Literal["nfc"]
    path: str = Field("usb", description="nfcpy path: usb[:vid:pid], tty:USB0:pn532, udp:host:port")
    reopen_backoff_s: float = Field(1.0, gt=0, le=60, description="first wait before reopening")


class SerialScannerConfig(_Part):
    """A line-oriented barcode scanner on a serial port."""

    type: Literal["serial_scanner"]
    port: str = Field(description="serial device, e.g. /dev/ttyACM0, or a pyserial URL")
    baud: int = Field(9600, gt=0, description="line speed")
    terminator: Literal["CR", "LF", "CRLF"] = Field("CR", description="what ends one code")
    max_line: int = Field(
        MAX_CODE_CHARS, ge=16, le=4096, description="longer lines are noise: dropped and counted"
    )
    line_timeout_s: float = Field(
        1.0, gt=0, le=60, description="a partial line idle this long is dropped"
    )


class SimulatedReaderConfig(_Part):
    """A reader fed from a file or the CLI, for demos and tests."""

    type: Literal["simulated"]
    feed: str | None = Field(None, description="file with one code or tag id per line")


ReaderConfig = Annotated[
    CameraReaderConfig | NfcReaderConfig | SerialScannerConfig | SimulatedReaderConfig,
    Field(discriminator="type"),
]


class RelayConfig(_Part):
    """A turnstile relay on a serial line, pulsed on an admitting verdict only."""

    type: Literal["relay"]
    port: str = Field(description="serial device or pyserial URL")
    baud: int = Field(9600, gt=0, description="line speed")
    pulse_ms: int = Field(500, ge=10, le=10_000, description="how long the relay stays closed")
    protocol: Literal["lcus", "text", "rts", "dtr"] = Field(
        "lcus",
        description=(
            "lcus: A0-framed bytes of common USB relay boards; text: `RELAY <n> ON|OFF` lines; "
            "rts/dtr: drive that modem-control pin"
        ),
    )
    channel: int = Field(1, ge=1, le=8, description="relay channel on a multi-relay board")


class DisplayConfig(_Part):
    """A customer display or LED/buzzer line showing the verdict."""

    type: Literal["display"]
    port: str = Field(description="serial device or pyserial URL")
    baud: int = Field(9600, gt=0, description="line speed")


class SimulatedActuatorConfig(_Part):
    """An actuator that logs what it would do."""

    type: Literal["simulated"]


ActuatorConfig = Annotated[
    RelayConfig | DisplayConfig | SimulatedActuatorConfig,
    Field(discriminator="type"),
]
