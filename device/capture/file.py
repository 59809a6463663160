"""A video file replayed as a camera would deliver it, with the file's own timestamps."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

import cv2

from device.capture.base import MAX_FRAME_SIDE, Frame, OpenCVSource
from device.errors import SourceError

log = logging.getLogger(__name__)


# The decoder holds several full frames of its own before any is reduced, so a clip's resolution
# sets the station's peak memory: measured for the whole `station log`, 1080p 222 MB, 1440p 232 MB,
# 4K 283 MB on one machine and 329 MB on another, 8K 786-880 MB. A 2 GB Pi shares its memory with
# the OS and the page, and the station keeps under 300 MB: clips past 1440p are refused with the
# command that scales them (a Pi camera never gives more than 1080p).
MAX_DECODE_PIXELS = 2560 * 1440


class VideoFileSource(OpenCVSource):
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
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > MAX_DECODE_PIXELS:
            cap.release()
            raise SourceError(
                f"{self.path.name} is {width}x{height}: decoding frames that large takes more memory than a Pi "
                f"can spare (2560x1440 is the most the station reads); scale it first, e.g. "
                f"ffmpeg -i {self.path.name} -vf scale=1920:-2 {self.path.stem}-1080p.mp4")
        if max(width, height) > MAX_FRAME_SIDE:
            # A 4K/8K clip: one decoding thread, not one per core, each holding its own full frames.
            cap.release()
            cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
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
        timestamp = self._opened().get(cv2.CAP_PROP_POS_MSEC) / 1000.0
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
