"""Frame sources: file timestamps are the file's own, and bad input fails clearly."""
from __future__ import annotations

import os

import numpy as np
import pytest

from device.errors import SourceError
from device.capture.file import VideoFileSource
from device.capture import open_source
from device.capture.webcam import WebcamSource
from device.capture.picamera import PiCameraSource


@pytest.mark.parametrize("clip", ["bichraix_deadlift_side_good014.mp4", "kmoir_squat_side_oblique_1rep.mp4", "formfit_squat_side.mp4"])
def test_file_timestamps_increase_at_the_file_frame_rate(clips_dir, clip):
    with VideoFileSource(clips_dir / clip) as source:
        fps = source.fps
        frames = list(source)
        count = source.frame_count
    stamps = np.array([f.timestamp for f in frames])
    assert len(frames) == count
    assert stamps[0] == pytest.approx(0.0, abs=1e-6)
    steps = np.diff(stamps)
    assert (steps > 0).all()
    assert np.median(steps) == pytest.approx(1 / fps, rel=0.02)
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape[2] == 3
    assert [f.index for f in frames] == list(range(len(frames)))


def test_file_replay_is_deterministic(clips_dir):
    clip = clips_dir / "jeffchen_deadlift_side_good_1rep.mp4"
    runs = []
    for _ in range(2):
        with VideoFileSource(clip) as source:
            runs.append([(f.timestamp, int(f.image[::50, ::50].sum())) for f in source])
    assert runs[0] == runs[1]


def test_paced_file_source_runs_at_the_clip_rate(clips_dir):
    import time

    with VideoFileSource(clips_dir / "jeffchen_deadlift_side_bad_rounded_head_down_1rep.mp4", pace=True) as source:
        started = time.monotonic()
        frames = list(source)
        elapsed = time.monotonic() - started
    assert elapsed >= frames[-1].timestamp * 0.95


def test_missing_and_unreadable_clips_raise_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        VideoFileSource(tmp_path / "nope.mp4").start()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(SourceError, match="cannot read"):
        VideoFileSource(junk).start()


def test_source_specs():
    assert isinstance(open_source("webcam:2"), WebcamSource) and open_source("webcam:2").index == 2
    assert isinstance(open_source("1"), WebcamSource)
    assert isinstance(open_source("picamera"), PiCameraSource)
    assert isinstance(open_source("clip.mp4"), VideoFileSource)


def test_picamera_without_picamera2_says_how_to_install():
    try:
        import picamera2  # noqa: F401
    except ImportError:
        with pytest.raises(SourceError, match="python3-picamera2"):
            PiCameraSource().start()
    else:  # pragma: no cover - on a Pi
        pytest.skip("picamera2 is installed here; the absence message cannot be exercised")


@pytest.mark.parametrize("spec", ["webcam:-1", "webcam:" + "9" * 20, "webcam:abc", "webcam:64", "webcam:", "webcam:٣"])
def test_a_bad_webcam_number_is_a_clear_error_before_opencv_sees_it(spec):
    """OpenCV segfaults on -1 and overflows on 20 digits; the station says what it takes instead."""
    with pytest.raises(SourceError, match=r"use webcam:N with N from 0 to 63"):
        open_source(spec)


def test_station_log_with_a_bad_source_exits_non_zero_with_one_line(tmp_path):
    import subprocess
    import sys

    for spec in ("webcam:-1", "webcam:" + "9" * 20, "webcam:abc"):
        proc = subprocess.run([sys.executable, "-m", "device", "log", "--source", spec], capture_output=True, text=True,
                              env={**os.environ, "HINGE_DATA_DIR": str(tmp_path)}, timeout=120)
        assert proc.returncode != 0 and "webcam:N" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_frames_past_1920_px_are_reduced_as_they_are_read(tmp_path):
    """A 1440p clip comes out at 1280 px on its long side, its aspect kept; 1080p is left as it is;
    4K and 8K ones are refused with the command that scales them (their decoders alone take the
    station past 300 MB)."""
    import cv2

    from device.capture.base import MAX_FRAME_SIDE, REDUCED_SIDE, reduced

    def clip(path, size, frames=3):
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 30, size)
        for i in range(frames):
            writer.write(np.full((size[1], size[0], 3), 40 * i, np.uint8))
        writer.release()
        return path

    qhd = VideoFileSource(clip(tmp_path / "qhd.mp4", (2560, 1440)))
    qhd.start()
    frame = qhd.read()
    qhd.stop()
    assert frame.image.shape == (720, 1280, 3) and (MAX_FRAME_SIDE, REDUCED_SIDE) == (1920, 1280)
    assert reduced(np.zeros((1080, 1920, 3), np.uint8)).shape == (1080, 1920, 3)  # 1080p as it is
    assert reduced(np.zeros((3000, 1000, 3), np.uint8)).shape == (1280, 427, 3)  # portrait too
    for name, size in (("uhd", (3840, 2160)), ("eightk", (7680, 4320))):
        huge = VideoFileSource(clip(tmp_path / f"{name}.mp4", size, frames=1))
        with pytest.raises(SourceError, match=rf"{size[0]}x{size[1]}.*ffmpeg -i {name}.mp4 -vf scale=1920:-2"):
            huge.start()


def test_an_8k_clip_is_refused_before_its_frames_take_the_memory(tmp_path, clips_dir, models_dir):
    """The probe's 8K clip peaked at 831 MB. Now `station log` on it stops at the source with the
    command that scales it, having decoded nothing: its peak stays at the station's own, and the
    largest clip read (1440p) costs little more than 1080p. Compared within this run, since
    absolute peaks move with the machine (1080p 222 MB here)."""
    import json
    import subprocess
    import sys

    import cv2

    def clip(size, frames):
        source = cv2.VideoCapture(str(clips_dir / "jeffchen_deadlift_side_good_1rep.mp4"))
        path = tmp_path / f"clip-{size[0]}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 30, size)
        for _ in range(frames):
            ok, bgr = source.read()
            if not ok:
                break
            writer.write(cv2.resize(bgr, size))
        writer.release()
        return path

    def run(path) -> tuple[float, int, str]:
        # From a wrapper process whose only child is this station (RUSAGE_CHILDREN keeps the largest).
        command = [sys.executable, "-m", "device", "log", "--source", str(path), "--fast", "--models-dir",
                   str(models_dir), "--variant", "float16"]
        wrapper = ("import json, resource, subprocess, sys; proc = subprocess.run(json.loads(sys.argv[1]), "
                   "capture_output=True, text=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
                   "proc.returncode); sys.stderr.write(proc.stderr)")
        proc = subprocess.run([sys.executable, "-c", wrapper, json.dumps(command)], capture_output=True, text=True,
                              env={**os.environ, "HINGE_DATA_DIR": str(tmp_path / f"data-{path.stem}")}, timeout=300)
        peak_kb, code = proc.stdout.split()
        return int(peak_kb) / 1024, int(code), proc.stderr

    full_hd, code, _ = run(clip((1920, 1080), 62))
    assert code == 0
    qhd, code, _ = run(clip((2560, 1440), 62))  # the largest read: reduced to 720p as it is read
    assert code == 0
    eight_k, code, stderr = run(clip((7680, 4320), 3))
    print(f"station log peak RSS: 1080p {full_hd:.0f} MB, 1440p {qhd:.0f} MB, 8K refused at {eight_k:.0f} MB")
    assert code != 0 and "7680x4320" in stderr and "scale=1920:-2" in stderr and "Traceback" not in stderr
    assert eight_k <= full_hd + 20
    assert qhd <= full_hd + 40  # its decoder's frames, not full-size copies of them
