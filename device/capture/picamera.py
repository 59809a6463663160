"""The Pi camera through Picamera2: its small `lores` YUV stream feeds the model."""
from __future__ import annotations

import logging
import time
from typing import Optional

import cv2
import numpy as np

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
            from picamera2 import Picamera2
        except ImportError:
            raise SourceError(
                "picamera2 is not importable: on Raspberry Pi OS run `sudo apt install python3-picamera2` and make "
                "the venv with --system-site-packages (deploy/install.sh does both)"
            ) from None
        if not Picamera2.global_camera_info():
            raise SourceError("no Pi camera detected (check the ribbon cable and `rpicam-hello --list-cameras`)")
        # libcamera reports a busy, vanished or misconfigured camera as RuntimeError (and others);
        # as SourceError the capture thread retries it instead of ending the station.
        try:
            cam = Picamera2()
        except Exception as err:
            raise SourceError(f"cannot open the Pi camera: {err}") from err
        try:
            config = cam.create_video_configuration(
                main={"size": self.main_size, "format": "XRGB8888"},
                lores={"size": self.lores, "format": "YUV420"},
                controls={"FrameRate": self._fps},
                buffer_count=2,
            )
            cam.configure(config)
            cam.start()
        except Exception as err:
            _close_quietly(cam)
            raise SourceError(f"cannot start the Pi camera: {err}") from err
        self._cam = cam

    def stop(self) -> None:
        """Stop and close the camera. Never raises: a camera that vanished may fail to stop, and the
        capture thread stops a failed source on its way to reopening it."""
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            except Exception as err:
                log.warning("the Pi camera did not stop cleanly: %s", err)
            _close_quietly(cam)

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
        rgb = yuv420_to_rgb(yuv, *self.lores)
        stamp_ns = metadata.get("SensorTimestamp")
        timestamp = stamp_ns / 1e9 if stamp_ns else time.monotonic()
        self._count += 1
        return Frame(timestamp, rgb, self.source_id, self._count - 1)


def _close_quietly(cam) -> None:
    try:
        cam.close()
    except Exception as err:
        log.warning("the Pi camera did not close cleanly: %s", err)


def yuv420_to_rgb(yuv: np.ndarray, width: int, height: int) -> np.ndarray:
    """RGB from picamera2's YUV420 array: height*3/2 rows of `stride` bytes, as libcamera lays out
    the planes (Y: height rows of stride; U then V: height/2 rows of stride/2 each). Where the
    stride is wider than the picture (rows padded to the ISP's alignment, e.g. 128 bytes on a Pi 5)
    the padding sits inside every plane's rows, so each plane is cut out on its own before the
    planes are packed for OpenCV; cutting the whole array at `width` would shear the colours."""
    stride = yuv.shape[1]
    if stride == width:
        return cv2.cvtColor(yuv[: height * 3 // 2], cv2.COLOR_YUV2RGB_I420)
    flat = yuv.reshape(-1)
    chroma = (height // 2) * (stride // 2)
    y = yuv[:height, :width]
    u = flat[height * stride : height * stride + chroma].reshape(height // 2, stride // 2)[:, : width // 2]
    v = flat[height * stride + chroma : height * stride + 2 * chroma].reshape(height // 2, stride // 2)[:, : width // 2]
    packed = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(height * 3 // 2, width)
    return cv2.cvtColor(packed, cv2.COLOR_YUV2RGB_I420)


def picamera_available() -> bool:
    try:
        from picamera2 import Picamera2
    except ImportError:
        return False
    try:
        return bool(Picamera2.global_camera_info())
    except Exception:
        return False
