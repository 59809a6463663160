"""Capture: frame sources behind one interface (`start`, `stop`, `read`, context manager).

`open_source` turns a --source value into a source; the concrete sources live one per module.
"""
from __future__ import annotations

from pathlib import Path

from device.capture.base import Frame, FrameSource
from device.capture.file import VideoFileSource
from device.capture.picamera import PiCameraSource, picamera_available
from device.capture.webcam import WebcamSource
from device.errors import SourceError

__all__ = ["Frame", "FrameSource", "VideoFileSource", "WebcamSource", "PiCameraSource", "picamera_available", "open_source"]


def open_source(spec: str, width: int = 640, height: int = 480, fps: float = 30.0, pace: bool = False) -> FrameSource:
    """Turn a --source / source.camera value into a source (not yet started).

    'auto' is the Pi camera when one is attached, else the first webcam; 'picamera'; 'webcam' or
    'webcam:N'; a bare integer N is webcam N; anything else is a video file path.
    """
    if spec == "auto":
        return PiCameraSource(width, height, fps) if picamera_available() else WebcamSource(0, width, height, fps)
    if spec == "picamera":
        return PiCameraSource(width, height, fps)
    if spec == "webcam" or spec.startswith("webcam:") or spec.isdigit():
        return WebcamSource(webcam_index(spec), width, height, fps)
    return VideoFileSource(Path(spec), pace=pace)


MAX_WEBCAM_INDEX = 63  # /dev/video0../dev/video63: far more than a Pi ever has


def webcam_index(spec: str) -> int:
    """The camera number of 'webcam', 'webcam:N' or 'N', checked before OpenCV sees it (it crashes
    on a negative one and overflows on a huge one)."""
    text = spec.split(":", 1)[1] if spec.startswith("webcam:") else "0" if spec == "webcam" else spec
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_WEBCAM_INDEX:
        raise SourceError(f"{spec!r} is not a webcam: use webcam:N with N from 0 to {MAX_WEBCAM_INDEX} "
                          "(webcam:0 is /dev/video0), 'picamera', 'auto', or a video file's path")
    return int(text)
