"""`station evaluate --perturb`: the frame transforms and the frame-rate decimator on synthetic data, and
the 10 fps camera through the real pose engine's tracking on one short real clip."""
from __future__ import annotations

import os

import numpy as np
import pytest

from device.commands.perturb import (
    PERTURBATIONS,
    darker,
    decimate,
    farther,
    mirror,
    perturbation,
    roll,
    scale_to_max_side,
    shift,
)


def frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- transforms ---------------------------------------------------------------------------------


@pytest.mark.parametrize("h,w,out", [
    (720, 1280, (360, 640)),
    (1920, 1080, (640, 360)),
    (1080, 608, (640, 360)),
    (854, 480, (640, 360)),
    (333, 1000, (213, 640)),
])
def test_scale_caps_the_long_side_at_640_and_keeps_the_aspect(h, w, out):
    scaled = scale_to_max_side(frame(h, w))
    assert scaled.shape == (*out, 3) and scaled.dtype == np.uint8
    assert max(scaled.shape[:2]) == 640
    assert abs(scaled.shape[1] / scaled.shape[0] - w / h) < 0.01


@pytest.mark.parametrize("h,w", [(600, 600), (480, 640), (640, 360), (10, 20)])
def test_scale_never_upscales(h, w):
    small = frame(h, w)
    assert scale_to_max_side(small) is small


def test_scale_keeps_the_picture():
    """A flat colour stays that colour; a left/right split stays split in the middle."""
    img = np.zeros((1080, 1920, 3), np.uint8)
    img[:, 960:] = (200, 100, 50)
    scaled = scale_to_max_side(img)
    assert (scaled[:, :319] == 0).all() and (scaled[:, 321:] == (200, 100, 50)).all()


def test_mirror_twice_is_the_identity_and_once_flips_columns():
    img = frame(7, 11)
    once = mirror(img)
    assert once.shape == img.shape and not np.array_equal(once, img)
    np.testing.assert_array_equal(once[:, 0], img[:, -1])
    np.testing.assert_array_equal(once[3, 4], img[3, 11 - 1 - 4])
    np.testing.assert_array_equal(mirror(once), img)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_shift_moves_the_content_by_exactly_k_px_and_repeats_the_edge(k):
    img = frame(20, 30, seed=k)
    moved = shift(img, k, k)
    assert moved.shape == img.shape and moved.dtype == img.dtype
    np.testing.assert_array_equal(moved[k:, k:], img[:-k, :-k])  # every pixel k right and k down
    np.testing.assert_array_equal(moved[:k, k:], np.repeat(img[:1, :-k], k, axis=0))  # top edge repeated
    np.testing.assert_array_equal(moved[k:, :k], np.repeat(img[:-k, :1], k, axis=1))  # left edge repeated
    assert (moved[:k, :k] == img[0, 0]).all()


def test_shift_works_along_one_axis_and_backwards():
    img = frame(9, 12)
    np.testing.assert_array_equal(shift(img, 2)[:, 2:], img[:, :-2])
    np.testing.assert_array_equal(shift(img, 2)[:, :2], np.repeat(img[:, :1], 2, axis=1))
    np.testing.assert_array_equal(shift(img, 0, -3)[:-3], img[3:])
    np.testing.assert_array_equal(shift(img, 0, -3)[-3:], np.repeat(img[-1:], 3, axis=0))
    np.testing.assert_array_equal(shift(img, 0), img)


def bar_tilt_deg(img: np.ndarray) -> float:
    """The lit pixels' principal axis, in degrees from vertical, positive with the top leaning left
    (the way a counter-clockwise turn leans a vertical line); and where their centre is."""
    ys, xs = np.nonzero(img[..., 0] > 127)
    cov = np.cov(np.stack([xs, ys]).astype(float))
    vals, vecs = np.linalg.eigh(cov)
    dx, dy = vecs[:, np.argmax(vals)]
    if dy > 0:  # point it up (image y grows down)
        dx, dy = -dx, -dy
    return float(np.degrees(np.arctan2(-dx, -dy)))


def vertical_bar(h: int = 240, w: int = 320) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[40:200, 158:162] = 255
    return img


@pytest.mark.parametrize("degrees", [4.0, -4.0, 10.0])
def test_roll_turns_a_plumb_line_by_the_angle_about_the_centre(degrees):
    img = vertical_bar()
    turned = roll(img, degrees)
    assert turned.shape == img.shape and turned.dtype == np.uint8
    assert abs(bar_tilt_deg(img)) < 0.1
    assert bar_tilt_deg(turned) == pytest.approx(degrees, abs=0.3)
    ys, xs = np.nonzero(turned[..., 0] > 127)
    assert (xs.mean(), ys.mean()) == pytest.approx((159.5, 119.5), abs=0.5)  # the bar's centre stays
    np.testing.assert_array_equal(roll(img, 0.0), img)


def test_farther_shrinks_about_the_centre_and_keeps_the_size():
    img = np.zeros((240, 320, 3), np.uint8)
    img[60:180, 100:220] = 200  # a 120 px square at the centre
    small = farther(img, 0.5)
    assert small.shape == img.shape and small.dtype == np.uint8
    ys, xs = np.nonzero(small[..., 0] > 100)
    assert (xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) == (60, 60)
    assert (xs.mean(), ys.mean()) == pytest.approx((159.5, 119.5), abs=0.5)
    assert (small[0, 0] == 0).all()  # the black edge repeated outward
    np.testing.assert_array_equal(farther(img, 1.0), img)
    with pytest.raises(ValueError, match="farther"):
        farther(img, 1.5)


def test_darker_halves_the_light_per_stop_and_keeps_black():
    img = np.array([[[0, 100, 201]]], np.uint8)
    np.testing.assert_array_equal(darker(img, 1.0), [[[0, 50, 100]]])
    np.testing.assert_array_equal(darker(img, 2.0), [[[0, 25, 50]]])
    np.testing.assert_array_equal(darker(img, 0.0), img)


def test_the_suite_names_every_perturbation_once():
    names = [p.name for p in PERTURBATIONS]
    assert names == ["scale_640", "fps_15", "fps_10", "mirror", "shift_1px", "shift_2px",
                     "roll_p4", "roll_m4", "far_0.7", "dark_1stop"]
    img = vertical_bar()
    assert bar_tilt_deg(perturbation("roll_p4").transform(img)) == pytest.approx(4.0, abs=0.3)
    assert bar_tilt_deg(perturbation("roll_m4").transform(img)) == pytest.approx(-4.0, abs=0.3)
    assert perturbation("fps_10").fps == 10.0 and perturbation("fps_10").transform is None
    img = frame(30, 40)
    np.testing.assert_array_equal(perturbation("shift_2px").transform(img)[2:, 2:], img[:-2, :-2])
    with pytest.raises(KeyError, match="unknown perturbation"):
        perturbation("blur")


# --- the frame-rate decimator --------------------------------------------------------------------

TOLERANCE = 0.002


def stamps(fps: float, seconds: float = 10.0, round_ms: bool = False) -> list[float]:
    out = [i / fps for i in range(int(seconds * fps))]
    return [round(t, 3) for t in out] if round_ms else out


@pytest.mark.parametrize("source_fps,round_ms", [(30.0, False), (30.0, True), (60.0, False), (59.94, True)])
@pytest.mark.parametrize("fps", [15.0, 10.0])
def test_decimating_a_multiple_of_the_rate_keeps_that_rate(source_fps, round_ms, fps):
    times = stamps(source_fps, round_ms=round_ms)
    kept = [t for t, _ in decimate(((t, i) for i, t in enumerate(times)), fps)]
    seconds = times[-1] - times[0]
    assert abs(len(kept) / seconds - fps) < 0.3, len(kept)
    assert min(np.diff(kept)) >= 1 / fps - TOLERANCE
    step = round(source_fps / fps)  # every second frame of 30 fps for 15, every third for 10, ...
    assert kept == times[::step][: len(kept)]


@pytest.mark.parametrize("fps,every", [(15.0, 2), (10.0, 3)])
def test_decimating_23976_fps_never_exceeds_the_rate(fps, every):
    """Frames 41.7 ms apart: a 15 fps camera's 66.7 ms needs two of them, a 10 fps camera's 100 ms three."""
    times = stamps(24000 / 1001)
    kept = [t for t, _ in decimate(((t, None) for t in times), fps)]
    assert min(np.diff(kept)) >= 1 / fps - TOLERANCE
    assert kept == times[::every]
    assert len(kept) / (times[-1] - times[0]) <= fps


def test_decimating_keeps_the_first_frame_and_the_pairs_intact():
    pairs = [(0.0, "a"), (0.01, "b"), (0.11, "c"), (0.15, "d"), (0.30, "e")]
    assert list(decimate(pairs, 10.0)) == [(0.0, "a"), (0.11, "c"), (0.30, "e")]
    assert list(decimate([], 10.0)) == []
    with pytest.raises(ValueError):
        list(decimate(pairs, 0))


def test_a_perturbation_drops_frames_before_transforming_them():
    seen = []

    def transform(img):
        seen.append(int(img[0, 0, 0]))
        return mirror(img)

    from device.commands.perturb import Perturbation

    p = Perturbation("test", "mirror at 10 fps", transform=transform, fps=10.0)
    source = [(i / 30, np.full((2, 3, 3), i, np.uint8)) for i in range(30)]
    out = list(p.apply(source))
    assert [t for t, _ in out] == [i / 30 for i in range(0, 30, 3)]
    assert seen == list(range(0, 30, 3))


# --- one real clip through the real engine -----------------------------------------------------

SHORT_CLIP = "jeffchen_deadlift_side_bad_rounded_head_down_1rep.mp4"  # 29 frames at 30 fps


def test_the_10fps_camera_tracks_a_third_of_the_frames_of_a_real_clip(clips_dir, settings, tmp_path):
    from device.capture import VideoFileSource
    from device.commands.evaluate import PoseCache, engine_poses

    clip = clips_dir / SHORT_CLIP
    if not clip.is_file():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"real clip {clip} is missing")
    with VideoFileSource(clip) as source:
        frames = [(f.timestamp, f.image.shape) for f in source]
    cache = PoseCache(tmp_path / "poses", "test")
    poses = engine_poses(settings, cache, perturbation("fps_10"))(clip)
    assert abs(len(poses) - len(frames) / 3) <= 1, (len(poses), len(frames))
    assert all(p.found for p in poses)
    assert min(np.diff([p.timestamp for p in poses])) >= 0.1 - TOLERANCE
    assert {p.timestamp for p in poses} <= {t for t, _ in frames}  # the camera's own frames, at their times
    assert poses[0].image_size == (frames[0][1][1], frames[0][1][0])
    assert sum(p.detector_ran for p in poses) <= 2  # tracked from frame to frame, not re-detected

    # cached under the perturbation's name, apart from the unperturbed poses
    assert cache.path(clip, "fps_10").is_file() and not cache.path(clip).exists()
    assert len(cache.load(clip, "fps_10")) == len(poses) and cache.load(clip) is None


def test_a_camera_off_level_tilts_the_segments_by_the_roll_and_leaves_the_bends(clips_dir, settings, tmp_path):
    """Through the real model, a picture turned 4 degrees reads like a camera hung 4 degrees off
    level: the trunk, thigh and shin (read against the image's vertical) turn by the roll, and the
    hip and knee bends (angles between bones) stay as filmed, to within the model's own wander
    (here 0.3-1.4 degrees)."""
    from device.analysis.kinematics import AngleTracker
    from device.analysis.profiles import load_profile
    from device.commands.evaluate import PoseCache, engine_poses

    clip = clips_dir / SHORT_CLIP  # the athlete faces image right
    if not clip.is_file():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"real clip {clip} is missing")
    cache = PoseCache(tmp_path / "poses", "test")

    def readings(name):
        tracker = AngleTracker(load_profile("hinge").kinematics)
        poses = engine_poses(settings, cache, perturbation(name) if name else None)(clip)
        return [tracker.update(pose) for pose in poses]

    def median_change(turned, filmed, quantity) -> float:
        change = np.array([getattr(t, quantity) - getattr(f, quantity) for t, f in zip(turned, filmed)])
        change = change[np.isfinite(change)]
        assert len(change) >= 0.8 * len(filmed), quantity  # read on most frames either way
        return float(np.median(change))

    filmed = readings(None)
    for name, roll_deg in (("roll_p4", 4.0), ("roll_m4", -4.0)):
        turned = readings(name)
        assert len(turned) == len(filmed)
        # Turned counter-clockwise, the top of the picture goes back for an athlete facing right:
        # the trunk (from vertical, forward) loses the roll, the thigh (from straight down) gains it.
        assert median_change(turned, filmed, "trunk_deg") == pytest.approx(-roll_deg, abs=1.0)
        assert median_change(turned, filmed, "thigh_deg") == pytest.approx(roll_deg, abs=1.0)
        assert median_change(turned, filmed, "shin_deg") == pytest.approx(-roll_deg, abs=1.0)
        # Read against the vertical, a bend would move by the whole roll; it moves by the model's wander.
        assert abs(median_change(turned, filmed, "hip_flexion_deg")) < abs(roll_deg) / 2
        assert abs(median_change(turned, filmed, "knee_flexion_deg")) < abs(roll_deg) / 2
