"""The station's Pi camera source against a fake picamera2 (tests/support/fake_picamera2.py): its
configuration (main + lores), its YUV420 -> RGB conversion including padded rows, its sizes and
timestamps, its errors, and the capture thread reopening it after failures. The fake itself is
checked against the real picamera2's source (a pinned wheel from PyPI, read with `ast`): method
names and signatures, and the array its own `make_array` code makes from a YUV420 buffer."""
from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from device.capture.picamera import PiCameraSource
from device.errors import SourceError
from support import fake_picamera2 as fake

# The picamera2 release the fake follows (PyPI wheel; pure Python, needs libcamera only to import).
REAL_VERSION = "0.3.38"
REAL_CACHE = Path(os.environ.get("HINGE_TEST_CACHE", Path.home() / ".cache" / "hinge-station-test")) / "picamera2"
REPO = Path(__file__).resolve().parents[1]


def scene(index: int, size: tuple[int, int]) -> np.ndarray:
    """A smooth picture with a block that moves one pixel per frame (chroma subsampling blurs
    edges, so the colours are smooth and the block edges even)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 200 // max(w - 1, 1) + 20, y * 200 // max(h - 1, 1) + 20,
                    np.full_like(x, 120)], axis=-1).astype(np.uint8)
    rgb[40:80, 2 * index + 20 : 2 * index + 60] = (200, 60, 40)
    return rgb


@pytest.fixture
def world(monkeypatch):
    w = fake.FakeCameraWorld(scene)
    fake.install(monkeypatch, w)
    return w


def _close_to_scene(rgb: np.ndarray, index: int) -> float:
    """Mean absolute difference from the scene (YUV420 round trips cost a level or two)."""
    h, w = rgb.shape[:2]
    return float(np.abs(rgb.astype(int) - scene(index, (w, h)).astype(int)).mean())


# --- the source on the fake -------------------------------------------------------------------------


def test_configures_a_full_size_main_and_a_small_yuv_lores_stream(world):
    with PiCameraSource(640, 480, 25.0) as source:
        config = source._cam.camera_config
        assert config["main"]["size"] == (1280, 960) and config["main"]["format"] == "XRGB8888"
        assert config["lores"]["size"] == (640, 480) and config["lores"]["format"] == "YUV420"
        assert config["controls"]["FrameRate"] == 25.0 and source.fps == 25.0
        frame = source.read()
    assert frame.image.shape == (480, 640, 3) and frame.image.dtype == np.uint8
    assert frame.source_id == "picamera" and frame.index == 0
    assert _close_to_scene(frame.image, 0) < 2.0


@pytest.mark.parametrize("align", [fake.PI4_YUV420_ALIGN, fake.PI5_YUV420_ALIGN])
def test_padded_lores_rows_convert_to_the_picture_without_the_padding(world, align):
    """704 px is a multiple of 64 but not of 128: on a Pi 5 every YUV420 row carries 64 bytes of
    padding (chroma rows 32), which must not shear the colours or show up as a stripe."""
    world.yuv_align = align
    with PiCameraSource(704, 480) as source:
        stride = source._cam.camera_config["lores"]["stride"]
        assert stride == (704 if align == 64 else 768)
        frames = [source.read() for _ in range(3)]
    for i, frame in enumerate(frames):
        assert frame.image.shape == (480, 704, 3)
        assert _close_to_scene(frame.image, i) < 2.0, (align, i)
        # The moving block lands where the scene put it, in its colour (not blended with padding).
        assert np.abs(frame.image[50:70, 2 * i + 30 : 2 * i + 50].astype(int) - (200, 60, 40)).max() <= 12


def test_lores_sizes_are_rounded_as_the_isp_needs(world):
    with PiCameraSource(650, 487) as source:
        assert source.lores == (640, 486)
        assert source._cam.camera_config["lores"]["size"] == (640, 486)
        assert source.read().image.shape == (486, 640, 3)


def test_timestamps_come_from_the_sensor_and_every_request_is_released(world):
    """buffer_count=2: a request not released would stall the camera on the third read."""
    with PiCameraSource() as source:
        frames = [source.read() for _ in range(12)]
        assert source._cam._outstanding == 0
    gaps = np.diff([f.timestamp for f in frames])
    assert np.allclose(gaps, world.frame_period_ns / 1e9)
    assert [f.index for f in frames] == list(range(12))


def test_no_camera_is_a_clear_error_and_opens_nothing(world):
    world.unplug()
    with pytest.raises(SourceError, match="no Pi camera detected"):
        PiCameraSource().start()
    assert world.opened == 0


def test_a_busy_camera_is_a_source_error_and_is_not_left_open(world, monkeypatch):
    """libcamera refuses a camera another process holds with a RuntimeError; the capture thread only
    retries SourceError, so anything else would end the station instead of waiting for the camera."""
    holder = sys.modules["picamera2"].Picamera2()
    with pytest.raises(SourceError, match="busy"):
        PiCameraSource().start()
    holder.close()
    # A failure after opening (here: configure) must close the camera again.
    monkeypatch.setattr(sys.modules["picamera2"].Picamera2, "configure",
                        lambda self, config=None: (_ for _ in ()).throw(RuntimeError("Failed to configure")))
    with pytest.raises(SourceError, match="Failed to configure"):
        PiCameraSource().start()
    assert world.opened == 0


def test_a_failing_capture_is_a_source_error_and_stop_closes(world):
    source = PiCameraSource()
    source.start()
    source.read()
    world.fail_next_captures(1)
    with pytest.raises(SourceError, match="stopped delivering frames: Camera frontend has timed out"):
        source.read()
    source.stop()
    assert world.opened == 0
    with pytest.raises(SourceError, match="not started"):
        source.read()


def test_a_camera_that_vanished_and_cannot_stop_is_still_closed(world):
    source = PiCameraSource()
    source.start()
    world.unplug()
    world.stop_error = RuntimeError("Device or resource busy")
    with pytest.raises(SourceError):
        source.read()
    source.stop()  # must not raise: the capture thread calls it on its way to reopening
    assert world.opened == 0 and source._cam is None


def test_capture_thread_reopens_the_camera_after_failures_and_an_unplug(world):
    """The station's FrameGrabber on the Pi camera: frames, a capture failure, a camera gone for a
    few reopen attempts, then frames again; every camera it opened is closed."""
    from device.station.loop import END_OF_STREAM, FrameGrabber, LatestFrame

    mailbox, stop, statuses, got = LatestFrame(lossless=True), threading.Event(), [], []
    grabber = FrameGrabber(lambda: PiCameraSource(), mailbox, stop, lambda kind, text: statuses.append(kind),
                           retry_initial_s=0.01, retry_max_s=0.02)
    attempts = {"unplugged": 0}
    original_info = world.camera_info

    def counting_info():
        info = original_info()
        if not info:
            attempts["unplugged"] += 1
            if attempts["unplugged"] >= 3:
                world.plug_in()
        return info

    world.camera_info = counting_info
    grabber.start()
    try:
        while len(got) < 30:
            item = mailbox.get(timeout=5.0)
            assert item is not None and item is not END_OF_STREAM, (statuses, len(got), grabber.fatal)
            got.append(item.frame)
            if len(got) == 5:
                world.fail_next_captures(1)
            if len(got) == 12:
                world.unplug()
    finally:
        stop.set()
        while mailbox.get(timeout=0.5) not in (None, END_OF_STREAM):
            pass
        grabber.join(timeout=5.0)
    assert not grabber.is_alive() and grabber.fatal is None
    assert statuses == ["camera_lost", "camera_back", "camera_lost", "camera_back"], statuses
    assert attempts["unplugged"] >= 3 and world.opens >= 3
    assert world.opened == 0
    assert all(f.image.shape == (480, 640, 3) for f in got)


# --- the fake against the real library ----------------------------------------------------------


def _fail_or_skip(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def real_picamera2() -> dict[str, str]:
    """The real picamera2's sources (picamera2.py, request.py, formats.py) from its PyPI wheel,
    downloaded once into a cache (pip, no dependencies: the code is read, never imported)."""
    wheel = REAL_CACHE / f"picamera2-{REAL_VERSION}-py3-none-any.whl"
    if not wheel.is_file():
        REAL_CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                               "-d", str(REAL_CACHE), f"picamera2=={REAL_VERSION}"], capture_output=True, text=True)
        if done.returncode != 0 or not wheel.is_file():
            _fail_or_skip(f"cannot download picamera2=={REAL_VERSION} from PyPI to check the fake: {done.stderr[-300:]}")
    with zipfile.ZipFile(wheel) as zf:
        return {name: zf.read(f"picamera2/{name}").decode() for name in ("picamera2.py", "request.py", "formats.py")}


def _real_methods(source: str, class_name: str) -> dict[str, list[str]]:
    """Each method of the class and its parameter names (the implementation, not @overload stubs)."""
    cls = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == class_name)
    methods = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and not any(getattr(d, "id", None) == "overload" for d in node.decorator_list):
            a = node.args
            methods[node.name] = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
    return methods


def test_the_fake_exposes_only_real_methods_with_the_real_parameters(real_picamera2):
    module = fake._module(fake.FakeCameraWorld(scene))
    files = {"Picamera2": "picamera2.py", "CompletedRequest": "request.py"}
    for class_name, faked in fake.FAKED.items():
        real = _real_methods(real_picamera2[files[class_name]], class_name)
        cls = getattr(module, class_name)
        public = {n for n, v in vars(cls).items() if callable(v) or isinstance(v, staticmethod)}
        # Dunders count where the station uses them (Picamera2() and `with`); CompletedRequest is built
        # by the camera, never by the station, so its constructor is the fake's own.
        public = {n for n in public if not n.startswith("_") or n in faked}
        assert public == set(faked), f"{class_name}: the fake's methods {sorted(public)} vs FAKED {sorted(faked)}"
        for name in faked:
            assert name in real, f"{class_name}.{name} is not in picamera2 {REAL_VERSION}"
            member = vars(cls)[name]
            params = list(inspect.signature(getattr(member, "__func__", member)).parameters)
            assert params == real[name], (class_name, name, params, real[name])


def test_the_station_calls_only_what_the_fake_has(real_picamera2):
    """Every attribute the station's camera code reads off picamera2 objects is faked (so tested here)."""
    tree = ast.parse((REPO / "device" / "capture" / "picamera.py").read_text())
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute) and node.value.attr == "_cam"}
    used |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
             and isinstance(node.value, ast.Name) and node.value.id in ("cam", "request", "Picamera2")}
    faked = set(fake.FAKED["Picamera2"]) | set(fake.FAKED["CompletedRequest"])
    assert used and used <= faked, sorted(used - faked)
    assert {"capture_request", "make_array", "release", "create_video_configuration"} <= used


def _real_make_array(real_picamera2):
    """picamera2's own Helpers.make_array (and the method it calls), compiled from its source."""
    tree = ast.parse(real_picamera2["request.py"])
    helpers = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Helpers")
    wanted = [n for n in helpers.body if isinstance(n, ast.FunctionDef) and n.name in ("_make_array_shared", "make_array")]
    formats = {}
    exec(compile(real_picamera2["formats.py"], "formats.py", "exec"), formats)
    namespace = {"np": np, "formats": type("formats", (), {k: staticmethod(v) for k, v in formats.items() if callable(v)}),
                 "Dict": dict, "Any": object}
    cls = ast.Module(body=[ast.ClassDef(name="Helpers", bases=[], keywords=[], body=wanted, decorator_list=[])],
                     type_ignores=[])
    exec(compile(ast.fix_missing_locations(cls), "request.py", "exec"), namespace)
    return namespace["Helpers"]().make_array


@pytest.mark.parametrize("size,fmt", [((640, 480), "YUV420"), ((704, 486), "YUV420"), ((1280, 960), "XRGB8888")])
def test_the_fake_arrays_are_the_ones_picamera2_makes(real_picamera2, size, fmt):
    real_make_array = _real_make_array(real_picamera2)
    rgb = scene(3, size)
    if fmt == "YUV420":
        stride = fake._align(size[0], fake.PI5_YUV420_ALIGN)
        buffer = fake.yuv420_buffer(rgb, stride)
    else:
        stride = fake._align(size[0] * 4, 64)
        buffer = fake.xrgb_buffer(rgb, stride)
    config = {"format": fmt, "size": size, "stride": stride}
    real, mine = real_make_array(buffer, config), fake.make_array(buffer, config)
    assert real.shape == mine.shape and np.array_equal(real, mine)
    if fmt == "YUV420":
        assert real.shape == (size[1] * 3 // 2, stride)
