"""A camera reading QR codes: OpenCV frames, decoded by zxing-cpp (default) or pyzbar."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from config.hardware import CameraReaderConfig
from hardware.base import Counters, ReaderState, ReaderUnavailable, Scan, clean_text
from hardware.faults import camera_fault, missing_library

log = logging.getLogger("hardware.camera_qr")

# A decoder turns one grayscale frame into the raw payloads of the QR codes in it.
Decoder = Callable[[Any], list[bytes]]

# A live camera that returns this many failed reads in a row is gone (unplugged, stream down).
MAX_FAILED_READS = 30


def zxing_decoder(*, invert: bool = True) -> Decoder:
    """zxing-cpp: fast, reads tilted and light-on-dark codes itself."""
    try:
        import zxingcpp
    except ImportError as exc:
        raise missing_library("zxing decoder", "zxingcpp", exc) from exc
    formats = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)

    def decode(gray: Any) -> list[bytes]:
        found = zxingcpp.read_barcodes(gray, formats=formats, try_invert=invert)
        # Raw bytes, not .text: binary payloads must be refused, not transcoded to look valid.
        return [bytes(b.bytes) for b in found if b.valid]

    return decode


def pyzbar_decoder(*, invert: bool = True) -> Decoder:
    """pyzbar (libzbar0): the alternative; it cannot see light-on-dark codes, so it retries
    the inverted frame when the plain one holds none (doubling the cost of empty frames)."""
    try:
        from pyzbar import pyzbar
    except (ImportError, OSError) as exc:  # OSError/ImportError: libzbar0 missing
        raise missing_library("pyzbar decoder", "pyzbar", exc) from exc
    symbols = [pyzbar.ZBarSymbol.QRCODE]

    def decode(gray: Any) -> list[bytes]:
        found = pyzbar.decode(gray, symbols=symbols)
        if not found and invert:
            found = pyzbar.decode(255 - gray, symbols=symbols)
        return [bytes(s.data) for s in found]

    return decode


DECODERS: dict[str, Callable[..., Decoder]] = {"zxing": zxing_decoder, "pyzbar": pyzbar_decoder}


def preprocess(frame: Any, roi: tuple[int, int, int, int] | None, scale: float) -> Any:
    """Crop to the region of interest, convert to grayscale, downscale: all before decoding."""
    import cv2

    if roi is not None:
        x, y, w, h = roi
        frame = frame[y : y + h, x : x + w]
    if frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if scale != 1.0:
        frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return frame


class HoldFilter:
    """Reports a code once while it stays in view: again only after it has been gone for
    `gone_frames` frames (decoders miss a code now and then, so one blank frame is not
    "gone"), or after `hold_s` seconds in view when hold_s > 0."""

    def __init__(self, hold_s: float, gone_frames: int) -> None:
        self.hold_s = hold_s
        self.gone_frames = gone_frames
        self._reported: dict[bytes, float] = {}  # payload → when last reported
        self._missing: dict[bytes, int] = {}  # payload → frames since last seen

    def frame(self, payloads: list[bytes], now: float) -> list[bytes]:
        """Feed one frame's payloads; return those to report now."""
        present = set(payloads)
        for payload in list(self._missing):
            if payload not in present:
                self._missing[payload] += 1
                if self._missing[payload] >= self.gone_frames:
                    del self._missing[payload]
                    del self._reported[payload]
        fresh = []
        for payload in dict.fromkeys(payloads):  # keep order, drop repeats within a frame
            last = self._reported.get(payload)
            if last is None or (self.hold_s > 0 and now - last >= self.hold_s):
                self._reported[payload] = now
                fresh.append(payload)
            self._missing[payload] = 0
        return fresh


def open_capture(source: str) -> Any:
    """Open a VideoCapture on a device index, a file or a stream URL."""
    import cv2

    if source.isdigit():
        cap = cv2.VideoCapture(int(source))
    elif "://" in source:
        # A stalled stream must not block the worker forever: bound open and read.
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
        cap = cv2.VideoCapture(source, cv2.CAP_ANY, params)
    else:
        cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        cap.release()
        raise camera_fault(source)
    return cap


class CameraQrReader:
    """Yields a scan per QR code that comes into view."""

    def __init__(self, config: CameraReaderConfig, *, clock: Callable[[], float] = time.monotonic):
        self.name = config.name
        self.config = config
        self.counters = Counters()
        self.state = ReaderState()
        self.clock = clock
        # Checked now so a missing library disables this reader at startup, not at the first
        # frame: OpenCV captures and prepares frames, the decoder reads them.
        try:
            import cv2  # noqa: F401
        except ImportError as exc:
            raise missing_library("camera reader", "cv2", exc) from exc
        self.decode = DECODERS[config.decoder](invert=config.invert)

    def decode_frame(self, frame: Any) -> list[bytes]:
        """One frame → the QR payloads in it; an unreadable frame is counted, never raised."""
        cfg = self.config
        if frame is None or getattr(frame, "size", 0) == 0:
            self.counters.add("empty_frames")
            return []
        try:
            return self.decode(preprocess(frame, cfg.roi, cfg.downscale))
        except Exception as exc:  # a decoder must never take the reader down
            self.counters.add("bad_frames")
            log.warning(
                "frame not decodable: %s",
                exc,
                extra={"event": "camera.bad_frame", "reader": self.name},
            )
            return []

    def scans(self, stop: threading.Event) -> Iterator[Scan]:
        """Read frames until `stop` or the end of a file; yield each code as it comes into view."""
        source = self.config.source
        # A file or an image sequence (frame_%04d.png) ends; a camera or stream should not.
        is_file = os.path.isfile(source) or ("%" in source and "://" not in source)
        cap = open_capture(source)
        hold = HoldFilter(self.config.hold_s, self.config.gone_frames)
        failed = 0
        try:
            while not stop.is_set():
                ok, frame = cap.read()
                if not ok:
                    if is_file:
                        return  # a recording has ended: the reader is done, not broken
                    failed += 1
                    self.counters.add("failed_reads")
                    if failed >= MAX_FAILED_READS:
                        raise ReaderUnavailable(f"camera {source!r} stopped delivering frames")
                    stop.wait(0.05)
                    continue
                failed = 0
                self.counters.add("frames")
                # Up once frames arrive: an opened capture may still deliver none.
                self.state.set(True)
                for payload in hold.frame(self.decode_frame(frame), self.clock()):
                    text = clean_text(payload, source=self.name, counters=self.counters)
                    if text is not None:
                        yield Scan(self.name, text=text)
        finally:
            self.state.set(False)
            cap.release()
