"""Perturbations for `station evaluate --perturb`: the same clip as a slightly different camera would see it.

Frame transforms are pure functions on (H, W, 3) RGB numpy frames; `decimate` keeps the frames a
slower camera would have delivered, by the source's own timestamps. `PERTURBATIONS` names the suite:
each is a transform, a frame rate, or both, and its name is part of the pose cache key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, TypeVar

import cv2
import numpy as np

T = TypeVar("T")
Transform = Callable[[np.ndarray], np.ndarray]

MAX_SIDE = 640
# Source timestamps are rounded (often to whole milliseconds), so two frames exactly 1/fps apart may
# read a hair closer; a gap this much short of 1/fps still counts as 1/fps.
DECIMATE_TOLERANCE_S = 0.002


def scale_to_max_side(rgb: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Downscale so the longer side is at most `max_side`, keeping the aspect ratio; never upscales."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def mirror(rgb: np.ndarray) -> np.ndarray:
    """Left-right mirror image (the athlete faces the other way)."""
    return np.ascontiguousarray(rgb[:, ::-1])


def shift(rgb: np.ndarray, dx: int, dy: int = 0) -> np.ndarray:
    """The image content moved `dx` px right and `dy` px down (negative: left, up); the uncovered
    border repeats the nearest edge pixel. The size is unchanged."""
    h, w = rgb.shape[:2]
    if abs(dx) >= w or abs(dy) >= h:
        raise ValueError(f"shift ({dx}, {dy}) is not smaller than the frame ({w}x{h})")
    pad = [(max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0))] + [(0, 0)] * (rgb.ndim - 2)
    padded = np.pad(rgb, pad, mode="edge")
    y0, x0 = max(-dy, 0), max(-dx, 0)
    return np.ascontiguousarray(padded[y0 : y0 + h, x0 : x0 + w])


def _about_centre(rgb: np.ndarray, degrees: float, scale: float) -> np.ndarray:
    """The picture turned `degrees` counter-clockwise and scaled by `scale` about its centre; what
    it uncovers repeats the nearest edge. The size is unchanged."""
    h, w = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, scale)
    return cv2.warpAffine(rgb, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def roll(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """The picture turned `degrees` counter-clockwise about its centre (a camera hung that much off
    level, turned clockwise); the corners it uncovers repeat the nearest edge. The size is unchanged."""
    return _about_centre(rgb, degrees, 1.0)


def farther(rgb: np.ndarray, scale: float) -> np.ndarray:
    """The picture shrunk by `scale` (< 1) about its centre, as a camera 1/`scale` times as far away
    would see the athlete (the background it would add is the edge repeated). The size is unchanged."""
    if not 0 < scale <= 1:
        raise ValueError(f"a camera farther away shrinks the picture: scale in (0, 1], not {scale}")
    return _about_centre(rgb, 0.0, scale)


def darker(rgb: np.ndarray, stops: float) -> np.ndarray:
    """The picture `stops` exposure stops darker (each stop halves the light): a dimmer gym."""
    return np.round(rgb.astype(np.float32) * np.float32(2.0 ** -stops)).astype(np.uint8)


def decimate(stamped: Iterable[tuple[float, T]], fps: float,
             tolerance_s: float = DECIMATE_TOLERANCE_S) -> Iterator[tuple[float, T]]:
    """The (timestamp, frame) pairs a camera running at `fps` would have delivered: the first one,
    then each one at least 1/fps (less `tolerance_s`) after the last one kept. From a source that is
    not a multiple of `fps` this is at most `fps` (23.976 fps thinned to 15 keeps every other frame)."""
    if fps <= 0:
        raise ValueError(f"fps must be positive (got {fps})")
    period = 1.0 / fps
    last: Optional[float] = None
    for timestamp, frame in stamped:
        if last is None or timestamp - last >= period - tolerance_s:
            last = timestamp
            yield timestamp, frame


@dataclass(frozen=True)
class Perturbation:
    """One way of changing a clip: a frame transform, a camera frame rate, or both."""

    name: str  # also the pose cache key: change it when the perturbation changes
    description: str
    transform: Optional[Transform] = None
    fps: Optional[float] = None

    def apply(self, stamped: Iterable[tuple[float, np.ndarray]]) -> Iterator[tuple[float, np.ndarray]]:
        """(timestamp, RGB frame) of the source -> those the perturbed camera would deliver."""
        frames = decimate(stamped, self.fps) if self.fps else iter(stamped)
        for timestamp, rgb in frames:
            yield timestamp, (self.transform(rgb) if self.transform else rgb)


PERTURBATIONS: tuple[Perturbation, ...] = (
    Perturbation("scale_640", f"scaled so the longer side is at most {MAX_SIDE} px", transform=scale_to_max_side),
    Perturbation("fps_15", "a 15 fps camera: frames dropped by timestamp, tracking over the rest", fps=15.0),
    Perturbation("fps_10", "a 10 fps camera: frames dropped by timestamp, tracking over the rest", fps=10.0),
    Perturbation("mirror", "mirrored left-right", transform=mirror),
    Perturbation("shift_1px", "content moved 1 px right and 1 px down (edges repeated)", transform=lambda rgb: shift(rgb, 1, 1)),
    Perturbation("shift_2px", "content moved 2 px right and 2 px down (edges repeated)", transform=lambda rgb: shift(rgb, 2, 2)),
    # Other gyms' cameras: hung a little off level either way, farther away, in dimmer light.
    Perturbation("roll_p4", "a camera hung 4 degrees off level (the picture turned counter-clockwise)",
                 transform=lambda rgb: roll(rgb, 4.0)),
    Perturbation("roll_m4", "a camera hung 4 degrees off level (the picture turned clockwise)",
                 transform=lambda rgb: roll(rgb, -4.0)),
    Perturbation("far_0.7", "a camera 1.4 times as far away (the picture shrunk to 0.7 about its centre)",
                 transform=lambda rgb: farther(rgb, 0.7)),
    Perturbation("dark_1stop", "one stop darker (half the light)", transform=lambda rgb: darker(rgb, 1.0)),
)


def perturbation(name: str) -> Perturbation:
    for p in PERTURBATIONS:
        if p.name == name:
            return p
    raise KeyError(f"unknown perturbation {name!r}; known: {', '.join(p.name for p in PERTURBATIONS)}")
