"""Frame sources behind one interface: the Pi camera, a USB webcam, or a video file.

Each source owns its device's lifetime (`start`, `stop`, or `with source:`) and yields `Frame`s with
RGB pixels. File frames carry the file's own timestamps so a replay is deterministic; live frames
carry the capture time on the monotonic clock.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
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


# The pose model looks at a 224-px view of the whole frame and a 256-px crop of the athlete; a
# frame's long side past 1080p (4K, 8K) buys nothing but memory, so such a frame is reduced to
# 720p's long side as it is read. (Reduced to 1920 a 4K clip still peaked at ~320 MB for the whole
# station, to 1280 at ~280 MB; frames up to 1080p are left as they are.)
MAX_FRAME_SIDE = 1920
REDUCED_SIDE = 1280


def reduced(bgr: np.ndarray, max_side: int = MAX_FRAME_SIDE, to_side: int = REDUCED_SIDE) -> np.ndarray:
    """A frame whose long side passes `max_side`, area-averaged to a long side of `to_side` (aspect
    kept); a smaller one as it is."""
    h, w = bgr.shape[:2]
    if max(h, w) <= max_side:
        return bgr
    scale = to_side / max(h, w)
    return cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


class OpenCVSource(FrameSource):
    """What a clip and a webcam share: an OpenCV capture that is released on stop."""

    _cap: Optional[cv2.VideoCapture] = None

    def stop(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _opened(self) -> cv2.VideoCapture:
        if self._cap is None:
            raise SourceError(f"{self.source_id} is not started")
        return self._cap

    def _read_bgr(self) -> Optional[np.ndarray]:
        ok, bgr = self._opened().read()
        return reduced(bgr) if ok else None
