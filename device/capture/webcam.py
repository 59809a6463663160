"""A USB webcam through OpenCV."""
from __future__ import annotations

import logging
import time
from typing import Optional

import cv2

from device.capture.base import Frame, OpenCVSource
from device.errors import SourceError

log = logging.getLogger(__name__)


class WebcamSource(OpenCVSource):
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
