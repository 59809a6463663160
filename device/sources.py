"""Frame sources behind one interface: the Pi camera, a USB webcam, or a video file.

Each source owns its device's lifetime (`start`, `stop`, or `with source:`) and yields `Frame`s with
RGB pixels. File frames carry the file's own timestamps so a replay is deterministic; live frames
carry the capture time on the monotonic clock.
"""
from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np

from device.errors import SourceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    timestamp: float  # seconds on the source's clock
    image: np.ndarray  # (H, W, 3) uint8 RGB
    source_id: str
    index: int


class FrameSource(ABC):
    """Start it, read frames until `read()` returns None (end of a file), stop it.

    `read()` raises SourceError when a live device fails; the caller decides whether to retry.
    """

    source_id: str = "source"
    live: bool = True

    def __enter__(self) -> "FrameSource":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    @property
    def fps(self) -> Optional[float]:
        return None

    @property
    def frame_count(self) -> Optional[int]:
        return None

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def read(self) -> Optional[Frame]: ...


class _OpenCVSource(FrameSource):
    """What a clip and a webcam share: an OpenCV capture that is released on stop."""

    _cap: Optional[cv2.VideoCapture] = None

    def stop(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _read_bgr(self) -> Optional[np.ndarray]:
        if self._cap is None:
            raise SourceError(f"{self.source_id} is not started")
        ok, bgr = self._cap.read()
        return bgr if ok else None


class VideoFileSource(_OpenCVSource):
    """A clip on disk. With `pace=True` frames are released at the clip's own frame rate, as a
    camera would deliver them; otherwise as fast as they decode."""

    live = False

    def __init__(self, path: Path, pace: bool = False):
        self.path = Path(path)
        self.source_id = f"file:{self.path.name}"
        self.pace = pace
        self._index = 0
        self._t0: Optional[float] = None

    def start(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"clip {self.path} does not exist")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened() or cap.get(cv2.CAP_PROP_FRAME_COUNT) <= 0:
            cap.release()
            raise SourceError(f"cannot read {self.path} as video (is it a video file that OpenCV/FFmpeg can decode?)")
        self._cap = cap
        self._index = 0
        self._t0 = None

    @property
    def fps(self) -> Optional[float]:
        return float(self._cap.get(cv2.CAP_PROP_FPS)) if self._cap is not None else None

    @property
    def frame_count(self) -> Optional[int]:
        return int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)) if self._cap is not None else None

    def read(self) -> Optional[Frame]:
        bgr = self._read_bgr()
        if bgr is None:
            if self._index == 0:
                raise SourceError(f"{self.path} has no decodable frames")
            return None
        timestamp = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0  # type: ignore[union-attr]
        if self.pace:
            now = time.monotonic()
            if self._t0 is None:
                self._t0 = now - timestamp
            delay = self._t0 + timestamp - now
            if delay > 0:
                time.sleep(delay)
        frame = Frame(timestamp, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.source_id, self._index)
        self._index += 1
        return frame


class WebcamSource(_OpenCVSource):
    """A USB webcam through OpenCV (V4L2 on Linux)."""

    def __init__(self, index: int = 0, width: int = 640, height: int = 480, fps: float = 30.0):
        self.index = index
        self.source_id = f"webcam:{index}"
        self.size = (width, height)
        self._fps = fps
        self._count = 0

    def start(self) -> None:
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"no webcam at index {self.index} (is it plugged in? is another program using it?)")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        cap.set(cv2.CAP_PROP_FPS, self._fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap

    @property
    def fps(self) -> Optional[float]:
        return self._fps

    def read(self) -> Optional[Frame]:
        bgr = self._read_bgr()
        if bgr is None:
            raise SourceError(f"{self.source_id} stopped delivering frames (unplugged?)")
        self._count += 1
        return Frame(time.monotonic(), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.source_id, self._count - 1)


class PiCameraSource(FrameSource):
    """The Raspberry Pi camera through Picamera2 (imported lazily: it exists only on a Pi).

    As picamera2's own ML examples do, inference reads the small `lores` stream (YUV420) while the
    `main` stream runs at full size; only the lores frame is converted to RGB.
    """

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30.0, main_size: tuple[int, int] = (1280, 960)):
        self.source_id = "picamera"
        self.lores = (width - width % 64, height - height % 2)
        self.main_size = main_size
        self._fps = fps
        self._cam = None
        self._count = 0

    def start(self) -> None:
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError:
            raise SourceError(
                "picamera2 is not importable: on Raspberry Pi OS run `sudo apt install python3-picamera2` and make "
                "the venv with --system-site-packages (deploy/install.sh does both)"
            ) from None
        if not Picamera2.global_camera_info():
            raise SourceError("no Pi camera detected (check the ribbon cable and `rpicam-hello --list-cameras`)")
        cam = Picamera2()
        config = cam.create_video_configuration(
            main={"size": self.main_size, "format": "XRGB8888"},
            lores={"size": self.lores, "format": "YUV420"},
            controls={"FrameRate": self._fps},
            buffer_count=2,
        )
        cam.configure(config)
        cam.start()
        self._cam = cam

    def stop(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
            finally:
                self._cam.close()
                self._cam = None

    @property
    def fps(self) -> Optional[float]:
        return self._fps

    def read(self) -> Optional[Frame]:
        if self._cam is None:
            raise SourceError("picamera is not started")
        try:
            request = self._cam.capture_request()
            try:
                yuv = request.make_array("lores")
                metadata = request.get_metadata()
            finally:
                request.release()
        except Exception as err:  # libcamera reports a lost camera as various runtime errors
            raise SourceError(f"Pi camera stopped delivering frames: {err}") from err
        width, height = self.lores
        rgb = cv2.cvtColor(yuv[: height * 3 // 2, :width], cv2.COLOR_YUV2RGB_I420)
        stamp_ns = metadata.get("SensorTimestamp")
        timestamp = stamp_ns / 1e9 if stamp_ns else time.monotonic()
        self._count += 1
        return Frame(timestamp, rgb, self.source_id, self._count - 1)


def picamera_available() -> bool:
    try:
        from picamera2 import Picamera2  # type: ignore[import-not-found]
    except ImportError:
        return False
    try:
        return bool(Picamera2.global_camera_info())
    except Exception:
        return False


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
