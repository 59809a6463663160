"""The silhouette across the trunk, read from the landmark model's segmentation output.

Landmarks have no point on the spine: the hip and shoulder points are joints, and a straight line
between them looks the same whether the back between them is flat or rounded. The landmark model
also segments the person (BlazePose GHUM's mask); the back's outline between hips and shoulders
shows its shape. This module turns the mask into a few numbers: at stations along the line from the
hips' centre to the shoulders' centre, how far the silhouette reaches on either side. Which side is
the back, and what the outline's shape means, is the analysis' business (device/analysis/kinematics.py).

Pure numpy on the mask logits, in the model's crop pixels; the engine maps the points to the image.
"""
from __future__ import annotations

import numpy as np

from device.pose.landmarks import TORSO_STATIONS

# How far out a ray looks for the silhouette's edge, in trunk lengths: a trunk is 0.3-0.5 trunk
# lengths deep at the chest (the line between the joints runs through its middle), so 0.8 reaches
# past any back; the rays stop at the mask's edge anyway.
REACH = 0.8
# Ray samples per crop pixel: a quarter pixel, so the edge's place comes from interpolation, not the
# sampling step.
SAMPLES_PER_PX = 4


def _bilinear(grid: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """grid sampled at (x, y) (any shape), clamped at the border."""
    h, w = grid.shape
    x = np.clip(x, 0.0, w - 1.0)
    y = np.clip(y, 0.0, h - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.intp), w - 2)
    y0 = np.minimum(np.floor(y).astype(np.intp), h - 2)
    fx, fy = x - x0, y - y0
    top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
    bottom = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def torso_outline(logits: np.ndarray, hips: np.ndarray, shoulders: np.ndarray, crop_size: float,
                  stations: tuple[float, ...] = TORSO_STATIONS) -> np.ndarray:
    """Where the silhouette ends on either side of the hips -> shoulders line, in crop pixels.

    `logits`: the mask (H, W) as logits (person where > 0), covering the `crop_size`-pixel crop that
    `hips` and `shoulders` (crop pixels) are given in. Returns (stations, 2, 2): side 0 along the
    line's left normal (dx, dy) -> (dy, -dx), side 1 the other way; NaN where the station itself is
    not inside the silhouette or no edge lies within REACH trunk lengths.
    """
    out = np.full((len(stations), 2, 2), np.nan)
    hips = np.asarray(hips, np.float64)
    chord = np.asarray(shoulders, np.float64) - hips
    length = float(np.hypot(*chord))
    if not np.isfinite(length) or length <= 0:
        return out
    scale = logits.shape[0] / crop_size  # mask pixels per crop pixel
    normal = np.array([chord[1], -chord[0]]) / length
    t = np.asarray(stations, np.float64)
    starts = hips + t[:, None] * chord  # (S, 2)
    steps = np.arange(0.0, REACH * length, 1.0 / SAMPLES_PER_PX)  # crop px along each ray
    for side, sign in enumerate((1.0, -1.0)):
        points = starts[:, None, :] + sign * steps[None, :, None] * normal  # (S, R, 2)
        values = _bilinear(logits, points[..., 0] * scale, points[..., 1] * scale)
        outside = values <= 0
        first = np.argmax(outside, axis=1)  # first sample outside the person (0 if none)
        for k in range(len(stations)):
            j = int(first[k])
            if j == 0:  # the station is outside the silhouette, or the ray never leaves it
                continue
            inner, outer = values[k, j - 1], values[k, j]
            frac = inner / (inner - outer)  # the logit's zero crossing between the two samples
            out[k, side] = starts[k] + sign * (steps[j - 1] + frac * (steps[j] - steps[j - 1])) * normal
    return out
