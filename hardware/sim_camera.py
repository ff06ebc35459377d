"""A simulated camera: QR codes rendered into 1280x720 frames, written as video or images.

Frames come from zxing-cpp's own QR writer and OpenCV, so no extra package is needed. The
camera reader replays the result through OpenCV's VideoCapture like a real stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zxingcpp

WIDTH, HEIGHT = 1280, 720


@dataclass(frozen=True)
class Look:
    """How a code appears in a frame: size, tilt, blur, polarity, noise, position."""

    module_px: int = 6
    angle: float = 0.0
    blur: int = 0  # Gaussian kernel size (odd), 0 = sharp
    inverted: bool = False
    noise: float = 0.0  # standard deviation of Gaussian noise, in grey levels
    center: tuple[float, float] = (0.5, 0.5)  # as a share of width and height


def qr_image(payload: str | bytes, module_px: int = 6) -> Any:
    """A black-on-white QR code with its quiet zone, as a grayscale array."""
    barcode = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode)
    image = np.asarray(barcode.to_image(scale=module_px, add_quiet_zones=True), dtype=np.uint8)
    return image


def blank_frame(seed: int = 0) -> Any:
    """A plain background frame with some texture, like an empty gate lane."""
    rng = np.random.default_rng(seed)
    frame = np.full((HEIGHT, WIDTH, 3), 170, dtype=np.uint8)
    for _ in range(6):  # a few soft shapes so decoders have something that is not a code
        x, y = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
        cv2.circle(
            frame,
            (x, y),
            int(rng.integers(20, 120)),
            tuple(int(v) for v in rng.integers(60, 230, 3)),
            -1,
        )
    return frame


def render(payload: str | bytes | None, look: Look = Look(), seed: int = 0) -> Any:
    """One BGR 1280x720 frame showing `payload` (or no code) as `look` says."""
    frame = blank_frame(seed)
    if payload is not None:
        code = qr_image(payload, look.module_px)
        if look.inverted:  # a dark-mode phone screen: light modules on dark
            code = np.subtract(255, code, dtype=np.uint8)
        h, w = code.shape
        diag = int(np.ceil(np.hypot(h, w))) + 2
        canvas: Any = np.full((diag, diag), 255 if not look.inverted else 0, dtype=np.uint8)
        y0, x0 = (diag - h) // 2, (diag - w) // 2
        canvas[y0 : y0 + h, x0 : x0 + w] = code
        if look.angle:
            matrix = cv2.getRotationMatrix2D((diag / 2, diag / 2), look.angle, 1.0)
            border = 255 if not look.inverted else 0
            canvas = cv2.warpAffine(canvas, matrix, (diag, diag), borderValue=border)
        cx, cy = int(look.center[0] * WIDTH), int(look.center[1] * HEIGHT)
        x, y = max(0, cx - diag // 2), max(0, cy - diag // 2)
        patch = canvas[: HEIGHT - y, : WIDTH - x]
        frame[y : y + patch.shape[0], x : x + patch.shape[1]] = cv2.cvtColor(
            patch, cv2.COLOR_GRAY2BGR
        )
    if look.blur:
        frame = cv2.GaussianBlur(frame, (look.blur, look.blur), 0)
    if look.noise:
        rng = np.random.default_rng(seed + 1)
        noisy = frame.astype(np.float32) + rng.normal(0, look.noise, frame.shape)
        frame = np.clip(noisy, 0, 255).astype(np.uint8)
    return frame


def write_video(path: Path, frames: Iterable[Any], fps: float = 30.0) -> Path:
    """Write frames as MJPG in an .avi container (readable by every OpenCV build)."""
    fourcc = cv2.VideoWriter.fourcc(*"MJPG")
    writer = cv2.VideoWriter(str(path), fourcc, fps, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path


def write_images(directory: Path, frames: Iterable[Any]) -> str:
    """Write frames as a numbered PNG sequence; returns the pattern VideoCapture opens."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(directory / f"frame_{i:04d}.png"), frame)
    return str(directory / "frame_%04d.png")


def clip(
    payloads: Iterable[str | bytes | None], frames_each: int = 8, look: Look = Look()
) -> list[Any]:
    """A sequence: each payload (None = no code) held for `frames_each` frames."""
    frames = []
    for i, payload in enumerate(payloads):
        frame = render(payload, look, seed=i)
        frames.extend([frame] * frames_each)
    return frames
