"""Capture: frame sources behind one interface (`start`, `stop`, `read`, context manager).

`open_source` turns a --source value into a source; the concrete sources live one per module.
"""
from __future__ import annotations

from pathlib import Path

from device.capture.base import Frame, FrameSource
from device.capture.file import VideoFileSource
from device.capture.picamera import PiCameraSource, picamera_available
from device.capture.webcam import WebcamSource

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
        index = int(spec.split(":", 1)[1]) if ":" in spec else int(spec) if spec.isdigit() else 0
        return WebcamSource(index, width, height, fps)
    return VideoFileSource(Path(spec), pace=pace)
