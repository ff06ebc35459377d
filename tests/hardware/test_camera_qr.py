"""The camera reader through real OpenCV capture and real decoders, on generated video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from config.hardware import CameraReaderConfig
from hardware.base import ReaderUnavailable
from hardware.camera_qr import CameraQrReader, HoldFilter
from hardware.sim_camera import Look, clip, render, write_images, write_video
from tests.hardware.helpers import collect

CODE_A = "FG1.upright-ticket-0001"
CODE_B = "FG1.second-ticket-0002"


def camera(source: Path | str, **kw: object) -> CameraQrReader:
    return CameraQrReader(
        CameraReaderConfig.model_validate(
            {"type": "camera", "name": "cam", "source": str(source)} | kw
        )
    )


def texts(reader: CameraQrReader) -> list[str | None]:
    return [s.text for s in collect(reader)]


@pytest.mark.parametrize("decoder", ["zxing", "pyzbar"])
def test_reads_upright_tilted_blurred_and_inverted_codes(tmp_path: Path, decoder: str) -> None:
    looks = {
        "upright": Look(),
        "tilted": Look(angle=30),
        "blurred": Look(blur=7),
        "inverted": Look(inverted=True),
    }
    frames = []
    for i, (name, look) in enumerate(looks.items()):
        frames += clip([f"FG1.{name}"], frames_each=5, look=look)
        frames += [render(None, seed=i)] * 6  # nobody in the lane
    video = write_video(tmp_path / "lane.avi", frames)
    assert texts(camera(video, decoder=decoder)) == [f"FG1.{n}" for n in looks]


def test_code_held_in_view_is_reported_once_and_again_after_it_left(tmp_path: Path) -> None:
    blank = render(None)
    frames = clip([CODE_A], frames_each=20) + [blank] * 6 + clip([CODE_A], frames_each=5)
    video = write_video(tmp_path / "held.avi", frames)
    assert texts(camera(video)) == [CODE_A, CODE_A]


def test_two_codes_in_a_row_are_both_reported_in_order(tmp_path: Path) -> None:
    video = write_video(tmp_path / "row.avi", clip([CODE_A, CODE_B, None], frames_each=6))
    assert texts(camera(video)) == [CODE_A, CODE_B]


def test_image_sequence_is_a_source_too(tmp_path: Path) -> None:
    pattern = write_images(tmp_path / "seq", clip([None, CODE_A, None], frames_each=2))
    assert texts(camera(pattern)) == [CODE_A]


def test_region_of_interest_and_downscale(tmp_path: Path) -> None:
    frames = [render(CODE_A, Look(center=(0.25, 0.5)))] * 3
    video = write_video(tmp_path / "left.avi", frames)
    assert texts(camera(video, roi=(640, 0, 640, 720))) == []  # the code is outside the ROI
    assert texts(camera(video, roi=(0, 0, 640, 720), downscale=0.5)) == [CODE_A]


def test_binary_and_oversized_codes_are_dropped_and_counted(tmp_path: Path) -> None:
    binary = bytes(range(256))
    big = "X" * 3000
    frames = clip([binary, None, big, None, CODE_A], frames_each=5, look=Look(module_px=3))
    reader = camera(write_video(tmp_path / "bad.avi", frames))
    assert texts(reader) == [CODE_A]  # the reader kept reading after the bad codes
    assert reader.counters["binary"] == 1
    assert reader.counters["too_long"] == 1


def test_empty_and_unreadable_frames_are_counted_not_raised() -> None:
    reader = camera("unused.avi")
    assert reader.decode_frame(None) == []
    assert reader.decode_frame(np.zeros((0, 0, 3), np.uint8)) == []
    assert reader.counters["empty_frames"] == 2
    assert reader.decode_frame(np.zeros((4, 4, 7), np.uint8)) == []  # no such colour layout
    assert reader.counters["bad_frames"] == 1


def test_frames_without_codes_give_no_scans(tmp_path: Path) -> None:
    video = write_video(tmp_path / "empty.avi", clip([None, None], frames_each=5))
    reader = camera(video)
    assert texts(reader) == []
    assert reader.counters["frames"] == 10


def test_missing_camera_and_corrupt_file_are_clear_faults(tmp_path: Path) -> None:
    with pytest.raises(ReaderUnavailable, match="no camera at index 97"):
        collect(camera("97"))
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(ReaderUnavailable, match="cannot open video source"):
        collect(camera(junk))


def test_hold_filter_repeats_after_hold_time_only_while_held() -> None:
    hold = HoldFilter(hold_s=2.0, gone_frames=3)
    assert hold.frame([b"a"], 0.0) == [b"a"]
    assert hold.frame([b"a"], 1.0) == []
    assert hold.frame([], 1.1) == []  # one missed frame is not "gone"
    assert hold.frame([b"a"], 1.2) == []
    assert hold.frame([b"a", b"b"], 2.0) == [b"a", b"b"]
    never = HoldFilter(hold_s=0, gone_frames=1)
    assert never.frame([b"a"], 0.0) == [b"a"]
    assert never.frame([b"a"], 100.0) == []
    assert never.frame([], 100.1) == []
    assert never.frame([b"a"], 100.2) == [b"a"]
