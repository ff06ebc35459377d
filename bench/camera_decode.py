"""camera-decode: 1280x720 frame → decoded text → verdict journaled, ms per frame, per decoder.

Baseline, same run, same frames: the decoder library alone (zxingcpp.read_barcodes or
pyzbar.decode on the raw frame). Also the share of a hard frame set (tilted, blurred,
inverted, small, noisy) each decoder reads. Frames are generated in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stats import percentile
from config.hardware import CameraReaderConfig
from config.vocab import Role
from edge.device import Device
from edge.sample import build_sample
from hardware.base import clean_text
from hardware.camera_qr import CameraQrReader
from hardware.sim_camera import Look, render

TARGET_MS = 10.0
HARD_KINDS = ("tilted", "blurred", "inverted", "small", "noisy")


def _bare(decoder: str) -> Any:
    """The library call an application would make on a raw BGR frame."""
    if decoder == "zxing":
        import zxingcpp

        formats = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
        return lambda frame: zxingcpp.read_barcodes(frame, formats=formats)
    from pyzbar import pyzbar

    return lambda frame: pyzbar.decode(frame, symbols=[pyzbar.ZBarSymbol.QRCODE])


def _hard_look(kind: str, rng: random.Random) -> Look:
    """Conditions a gate camera meets, made hard enough that decoders differ."""
    center = (rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7))
    if kind == "tilted":
        return Look(module_px=3, angle=rng.uniform(15, 45), blur=3, center=center)
    if kind == "blurred":
        return Look(module_px=4, blur=rng.choice([11, 13, 15, 17, 19]), center=center)
    if kind == "inverted":
        return Look(inverted=True, module_px=3, angle=rng.uniform(0, 30), blur=3, center=center)
    if kind == "small":
        return Look(module_px=rng.choice([1, 2]), blur=rng.choice([0, 3]), center=center)
    return Look(module_px=3, noise=rng.uniform(50, 90), center=center)


async def _to_verdict(
    reader: CameraQrReader, device: Device, frames: list[Any], rounds: int
) -> tuple[list[float], int]:
    """The real reader's decode path plus Device.scan (journal commit included), per frame."""
    timings, verdicts = [], 0
    for _ in range(rounds):
        for frame in frames:
            start = time.perf_counter()
            for payload in reader.decode_frame(frame):
                text = clean_text(payload, source=reader.name, counters=reader.counters)
                if text is not None:
                    await device.scan(text)
                    verdicts += 1
            timings.append(time.perf_counter() - start)
    return timings, verdicts


def _bare_timings(decode: Any, frames: list[Any], rounds: int) -> list[float]:
    timings = []
    for _ in range(rounds):
        for frame in frames:
            start = time.perf_counter()
            decode(frame)
            timings.append(time.perf_counter() - start)
    return timings


def _ms(seconds: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(seconds, 0.5) * 1000, 2),
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 2),
        "mean_ms": round(sum(seconds) / len(seconds) * 1000, 2),
    }


def main(argv: list[str]) -> dict[str, Any]:
    """Run the benchmark and return its figures."""
    parser = argparse.ArgumentParser(prog="python -m bench camera-decode")
    parser.add_argument(
        "--frames", type=int, default=40, help="distinct 720p frames, one code each"
    )
    parser.add_argument("--rounds", type=int, default=3, help="passes over the frames")
    parser.add_argument("--hard", type=int, default=60, help="hard frames per kind")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    sample = build_sample(seed=args.seed, now=int(time.time()), tickets=max(16, args.frames))
    codes = list(sample.codes.values())
    frames = [
        render(
            codes[i % len(codes)],
            Look(center=(rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7))),
            seed=i,
        )
        for i in range(args.frames)
    ]
    figures: dict[str, Any] = {
        "bench": "camera-decode",
        "frame": "1280x720",
        "frames": args.frames * args.rounds,
    }
    with tempfile.TemporaryDirectory(prefix="festgate-bench-") as tmp:
        for decoder in ("zxing", "pyzbar"):
            reader = CameraQrReader(
                CameraReaderConfig(type="camera", name="bench", decoder=decoder)
            )

            async def run(
                decoder: str = decoder, reader: CameraQrReader = reader
            ) -> tuple[list[float], int]:
                device = await Device.open(Path(tmp) / decoder, role=Role.GATE, zone="General")
                await device.store.apply_snapshot(sample.snapshot)
                try:
                    await _to_verdict(reader, device, frames[:5], 1)  # warm up caches
                    return await _to_verdict(reader, device, frames, args.rounds)
                finally:
                    await device.close()

            bare = _bare_timings(_bare(decoder), frames, args.rounds)
            ours, verdicts = asyncio.run(run())
            hard: dict[str, float] = {}
            for kind in HARD_KINDS:
                kind_rng = random.Random(f"{args.seed}-{kind}")
                read = 0
                for i in range(args.hard):
                    payload = f"FG-HARD-{kind}-{i:04d}"
                    got = reader.decode_frame(render(payload, _hard_look(kind, kind_rng), seed=i))
                    read += payload.encode() in got
                hard[kind] = round(read / args.hard, 3)
            ours_ms, bare_ms = _ms(ours), _ms(bare)
            figures[decoder] = {
                "to_verdict": ours_ms,
                "bare_decode": bare_ms,
                "ratio_mean_vs_bare": round(ours_ms["mean_ms"] / bare_ms["mean_ms"], 2),
                "verdicts": verdicts,
                "hard_read_share": round(sum(hard.values()) / len(hard), 3),
                "hard_by_kind": hard,
            }
    zx = figures["zxing"]
    figures["target_ms"] = TARGET_MS
    figures["zxing_meets_target"] = (
        zx["to_verdict"]["mean_ms"] <= TARGET_MS and zx["ratio_mean_vs_bare"] <= 1.3
    )
    return figures
