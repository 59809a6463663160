"""A fake `picamera2` module: the part of Picamera2's API the station uses, behaving as the real one.

picamera2 needs libcamera and a camera, so it never imports here. This fake is installed in
`sys.modules["picamera2"]` by the tests (`install`), and the station's own PiCameraSource runs
against it. What it keeps faithful (tests/test_picamera.py checks the names and signatures against
the real library's source, and its YUV420 arrays against the real array-making code):

- `Picamera2.global_camera_info()` lists the attached cameras; `Picamera2()` with none raises
  RuntimeError as the real one does; a camera already opened elsewhere raises on open.
- `create_video_configuration` / `create_preview_configuration` take the real keyword arguments and
  return a config dict with `main`, `lores` (YUV420 only, no larger than main), `controls`, ...;
  `configure` refuses to reconfigure a running camera; `start`, `stop`, `close`, context manager.
- Buffers are laid out as libcamera delivers them: a YUV420 frame is the Y plane (height rows of
  `stride` bytes, stride >= width, padded to the platform's alignment) then the U and V planes
  (height/2 rows of stride/2 bytes each); `make_array` / `capture_array` return it as an array of
  height*3/2 rows by stride, padding included, exactly as picamera2's own `Helpers.make_array`.
- `capture_request()` hands out at most `buffer_count` requests: one not released stalls the
  camera (here: raises, so a leak fails the test instead of hanging it).
- Failures: `fail_next_captures(n, error)`, `unplug()` (captures raise, the camera list is empty,
  open fails), `plug_in()`, and `stop_error` (stop raises, as on a camera that vanished).

The picture is the world's `scene(index) -> (H, W, 3) uint8 RGB`, at the lores or main size.
"""
from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import cv2
import numpy as np

# Picamera2 1.0 on a Pi 5 (PiSP) aligns YUV420 rows to 128 bytes (64 for the half-width chroma rows);
# a Pi 4 (VC4) to 64. A width that is not a multiple gets padding at the end of every row.
PI5_YUV420_ALIGN = 128
PI4_YUV420_ALIGN = 64
MAIN_FORMATS = ("XBGR8888", "XRGB8888", "BGR888", "RGB888", "YUV420", "YVU420")
LORES_FORMATS = ("YUV420", "YVU420")
STREAM_KEYS = {"format", "size", "stride", "framesize", "preserve_ar"}
# The controls a configuration may carry (libcamera's, plus picamera2's FrameRate convenience).
CONTROLS = {"FrameRate", "FrameDurationLimits", "ExposureTime", "AnalogueGain", "AeEnable", "AwbEnable",
            "Brightness", "Contrast", "Saturation", "Sharpness", "ScalerCrop", "NoiseReductionMode", "AfMode"}


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def yuv420_buffer(rgb: np.ndarray, stride: int, pad_value: int = 0xA5) -> np.ndarray:
    """The flat buffer libcamera fills for a YUV420 (I420) frame: Y, U, V planes, each row padded
    to `stride` (chroma rows to stride/2) with `pad_value`, which must never reach a picture."""
    h, w = rgb.shape[:2]
    planar = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).ravel()  # Y (h*w), U (h/2*w/2), V (h/2*w/2)
    y, u, v = planar[: h * w], planar[h * w : h * w * 5 // 4], planar[h * w * 5 // 4 :]
    buffer = np.full(h * stride + 2 * (h // 2) * (stride // 2), pad_value, np.uint8)
    buffer[: h * stride].reshape(h, stride)[:, :w] = y.reshape(h, w)
    chroma = buffer[h * stride :].reshape(2, h // 2, stride // 2)
    chroma[0, :, : w // 2] = u.reshape(h // 2, w // 2)
    chroma[1, :, : w // 2] = v.reshape(h // 2, w // 2)
    return buffer


def xrgb_buffer(rgb: np.ndarray, stride: int) -> np.ndarray:
    """An XRGB8888 frame as stored: B, G, R, X bytes per pixel (little-endian 0xXXRRGGBB), rows padded."""
    h, w = rgb.shape[:2]
    buffer = np.zeros((h, stride), np.uint8)
    pixels = buffer[:, : w * 4].reshape(h, w, 4)
    pixels[..., :3] = rgb[..., ::-1]
    pixels[..., 3] = 255
    return buffer.ravel()


def make_array(buffer: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    """What picamera2's Helpers.make_array returns for the formats faked here (a copy)."""
    fmt, (w, h), stride = config["format"], config["size"], config["stride"]
    if fmt in ("YUV420", "YVU420"):
        return np.copy(buffer.reshape((h * 3 // 2, stride)))
    if fmt in ("XBGR8888", "XRGB8888"):
        return np.ascontiguousarray(buffer.reshape((h, stride))[:, : w * 4].reshape((h, w, 4)))
    raise NotImplementedError(f"the fake makes no {fmt} buffers")


@dataclass
class FakeCameraWorld:
    """What is plugged in and how it behaves; the tests steer it, the fake module reads it."""

    scene: Callable[[int, tuple[int, int]], np.ndarray]  # (frame index, (width, height)) -> RGB
    cameras: list[dict[str, Any]] = field(default_factory=lambda: [
        {"Model": "imx708", "Location": 2, "Rotation": 180, "Id": "/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a", "Num": 0}])
    yuv_align: int = PI5_YUV420_ALIGN
    frame_period_ns: int = 33_333_333
    opened: int = 0  # cameras open now (a second open of the same camera fails, as libcamera's does)
    opens: int = 0
    frames: int = 0
    stop_error: Optional[Exception] = None  # what stop() raises (a camera gone mid-run can fail to stop)
    _failures: list[Exception] = field(default_factory=list)
    _plugged: bool = True

    def fail_next_captures(self, count: int, error: Optional[Exception] = None) -> None:
        self._failures += [error or RuntimeError("Camera frontend has timed out!")] * count

    def unplug(self) -> None:
        self._plugged = False

    def plug_in(self) -> None:
        self._plugged = True

    def camera_info(self) -> list[dict[str, Any]]:
        return [dict(c) for c in self.cameras] if self._plugged else []

    def next_capture_error(self) -> Optional[Exception]:
        if not self._plugged:
            return RuntimeError("Device or resource busy: camera disconnected")
        return self._failures.pop(0) if self._failures else None


class CompletedRequest:
    """One captured frame's buffers and metadata; must be released to give the buffers back."""

    def __init__(self, camera: Any, buffers: dict[str, np.ndarray], metadata: dict[str, Any]):
        self._camera, self._buffers, self._metadata = camera, buffers, metadata
        self._released = False

    def make_array(self, name: str) -> np.ndarray:
        if self._released:
            raise RuntimeError("request already released")
        if name not in self._buffers:
            raise RuntimeError(f"Stream {name!r} is not defined")
        return make_array(self._buffers[name], self._camera.camera_config[name])

    def get_metadata(self) -> dict[str, Any]:
        return dict(self._metadata)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._camera._outstanding -= 1


def _module(world: FakeCameraWorld) -> types.ModuleType:
    class Picamera2:
        """The fake camera: same method names and signatures as picamera2.Picamera2."""

        @staticmethod
        def global_camera_info() -> list[dict[str, Any]]:
            return world.camera_info()

        def __init__(self, camera_num=0, verbose_console=None, tuning=None, allocator=None):
            if camera_num >= len(self.global_camera_info()):
                raise RuntimeError(f'No camera number {camera_num} found - use "rpicam-hello --list-cameras" '
                                   "to check connected cameras")
            if world.opened:
                raise RuntimeError("Failed to acquire camera: Device or resource busy")
            world.opened += 1
            world.opens += 1
            self.camera_config: Optional[dict[str, Any]] = None
            self.started = False
            self.is_open = True
            self._outstanding = 0

        def __enter__(self):
            return self

        def __exit__(self, exc_type, exc_val, exc_traceback):
            self.close()

        def _configuration(self, main, lores, raw, transform, colour_space, buffer_count, controls, display, encode,
                           queue, sensor, use_case) -> dict[str, Any]:
            if not self.is_open:
                raise RuntimeError("Camera not opened")
            streams = {"main": {"format": "XBGR8888", "size": (640, 480), **(main or {})}}
            if lores is not None:
                streams["lores"] = {"format": "YUV420", "size": streams["main"]["size"], **lores}
            for name, stream in streams.items():
                if not isinstance(stream, dict):
                    raise RuntimeError(name + " stream should be a dictionary")
                if set(stream) - STREAM_KEYS:
                    raise ValueError(f"unknown keys {sorted(set(stream) - STREAM_KEYS)} in {name} stream")
                stream["size"] = tuple(int(v) for v in stream["size"])
            unknown = set(controls or {}) - CONTROLS
            if unknown:
                raise RuntimeError(f"Control {sorted(unknown)[0]} is not advertised by libcamera")
            return {"use_case": use_case, "transform": transform, "colour_space": colour_space,
                    "buffer_count": buffer_count, "queue": queue, "main": streams["main"],
                    "lores": streams.get("lores"), "raw": {} if raw is None else raw, "controls": dict(controls or {}),
                    "sensor": dict(sensor or {}), "display": display, "encode": encode}

        # picamera2's own signatures default main, raw, controls and sensor to {}; None here (read as empty
        # in _configuration), so no call shares one dict with the next.
        def create_preview_configuration(self, main=None, lores=None, raw=None, transform=None, colour_space=None,
                                         buffer_count=4, controls=None, display="main", encode="main", queue=True,
                                         sensor=None, use_case="preview"):
            return self._configuration(main, lores, raw, transform, colour_space, buffer_count, controls, display,
                                       encode, queue, sensor, use_case)

        def create_video_configuration(self, main=None, lores=None, raw=None, transform=None, colour_space=None,
                                       buffer_count=6, controls=None, display="main", encode="main", queue=True,
                                       sensor=None, use_case="video"):
            return self._configuration(main, lores, raw, transform, colour_space, buffer_count, controls, display,
                                       encode, queue, sensor, use_case)

        def configure(self, camera_config=None):
            if self.started:
                raise RuntimeError("Camera must be stopped before configuring")
            config = camera_config if camera_config is not None else self.create_preview_configuration()
            main, lores = config["main"], config.get("lores")
            if main["format"] not in MAIN_FORMATS:
                raise RuntimeError(f"Invalid main format {main['format']}")
            if lores is not None:
                if lores["format"] not in LORES_FORMATS:
                    raise RuntimeError("lores stream must be YUV")
                if lores["size"][0] > main["size"][0] or lores["size"][1] > main["size"][1]:
                    raise RuntimeError("lores stream dimensions may not exceed main stream")
                if lores["size"][0] % 2 or lores["size"][1] % 2:
                    raise RuntimeError("lores stream dimensions must be even for YUV420")
                lores["stride"] = _align(lores["size"][0], world.yuv_align)
            main["stride"] = _align(main["size"][0] * 4, 64) if main["format"].endswith("8888") else \
                _align(main["size"][0], world.yuv_align)
            self.camera_config = config

        def start(self, config=None, show_preview=False):
            if config is not None:
                self.configure(config)
            if self.camera_config is None:
                self.configure()
            self.started = True

        def stop(self):
            self.started = False
            if world.stop_error is not None:
                raise world.stop_error

        def close(self):
            if self.is_open:
                self.is_open = False
                world.opened -= 1
                if self.started:
                    self.stop()

        def capture_request(self, wait=None, signal_function=None, flush=None):
            if not self.started:
                raise RuntimeError("Camera is not running")
            if self._outstanding >= self.camera_config["buffer_count"]:
                raise RuntimeError(f"all {self._outstanding} buffers held by unreleased requests: the camera has stalled")
            error = world.next_capture_error()
            if error is not None:
                raise error
            index = world.frames
            world.frames += 1
            buffers = {}
            for name in ("main", "lores"):
                stream = self.camera_config.get(name)
                if stream is not None:
                    rgb = world.scene(index, stream["size"])
                    buffers[name] = (yuv420_buffer(rgb, stream["stride"]) if stream["format"] in LORES_FORMATS
                                     else xrgb_buffer(rgb, stream["stride"]))
            self._outstanding += 1
            metadata = {"SensorTimestamp": 5_000_000_000 + index * world.frame_period_ns,
                        "FrameDuration": world.frame_period_ns // 1000, "ExposureTime": 10000}
            return CompletedRequest(self, buffers, metadata)

        def capture_array(self, name="main", wait=None, signal_function=None):
            request = self.capture_request()
            try:
                return request.make_array(name)
            finally:
                request.release()

    module = types.ModuleType("picamera2")
    vars(module).update(Picamera2=Picamera2, CompletedRequest=CompletedRequest, __fake__=True)  # (names set at run time)
    return module


def install(monkeypatch, world: FakeCameraWorld) -> types.ModuleType:
    """Make `import picamera2` give the fake for the rest of the test."""
    module = _module(world)
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return module


FAKED = {"Picamera2": ("global_camera_info", "__init__", "__enter__", "__exit__", "create_preview_configuration",
                       "create_video_configuration", "configure", "start", "stop", "close", "capture_request",
                       "capture_array"),
         "CompletedRequest": ("make_array", "get_metadata", "release")}
