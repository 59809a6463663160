"""The Pi camera through Picamera2: its small `lores` YUV stream feeds the model."""
from __future__ import annotations

import logging
import time
from typing import Optional

import cv2

from device.capture.base import Frame, FrameSource
from device.errors import SourceError

log = logging.getLogger(__name__)


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
