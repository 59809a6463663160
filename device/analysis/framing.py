"""Can the athlete be analysed at all? Nobody in view, facing the camera, feet or head cut off, or
landmarks too faint to trust.

Two answers per frame: `classify` says what this one frame shows (the analysis only uses frames
that are OK), and `FramingMonitor` turns that into a steady state for the athlete, announced with
a cue only once it has lasted `hold_s`, so a flicker does not make the station talk.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np

from device.analysis.vocabulary import FRAMING_CUES, Framing, FramingChanged, View
from device.analysis.kinematics import Angles
from device.pose.landmarks import LANDMARK_INDEX, X, Y, Pose
from device.analysis.profiles import FramingTable

FEET = ("left_ankle", "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index")
HEAD = ("nose", "left_ear", "right_ear")
HEAD_CUT_CUE = "step back so your head is in view"


@dataclass(frozen=True)
class FrameView:
    framing: Framing
    cue: str


def _outside(pose: Pose, names: tuple[str, ...]) -> bool:
    w, h = pose.image_size
    if w <= 0 or h <= 0:  # image size unknown (an old landmark record): cannot tell
        return False
    for name in names:
        x, y = pose.landmarks[LANDMARK_INDEX[name], X], pose.landmarks[LANDMARK_INDEX[name], Y]
        if math.isfinite(x) and math.isfinite(y) and not (0 <= x < w and 0 <= y < h):
            return True
    return False


def turned_to_camera(pose: Pose, config: FramingTable) -> bool:
    """Shoulders and hips both look wide for the trunk's length: turned toward the camera.

    Both pairs must agree so that one misplaced shoulder (a bar across it) is not read as a turn.
    """
    lm = pose.landmarks

    def xy(name: str) -> np.ndarray:
        return lm[LANDMARK_INDEX[name], :2]

    ls, rs, lh, rh = xy("left_shoulder"), xy("right_shoulder"), xy("left_hip"), xy("right_hip")
    if not np.all(np.isfinite([ls, rs, lh, rh])):
        return False
    # Face-on and bent over, the trunk foreshortens to nothing: that only makes it look wider.
    trunk = max(float(np.hypot(*((ls + rs) / 2 - (lh + rh) / 2))), 1.0)
    shoulders = float(np.hypot(*(ls - rs))) / trunk
    hips = float(np.hypot(*(lh - rh))) / trunk
    return shoulders >= config.facing_shoulder_ratio and hips >= config.facing_hip_ratio


def upright_hip_width(pose: Pose) -> Optional[float]:
    """Hip width over trunk length, on a frame where the trunk is within ~27 degrees of vertical
    (standing between reps); None on other frames. Side-on the hips overlap (under 0.2); turned by
    an angle t toward or away from the camera they spread to about 0.57 sin t."""
    lm = pose.landmarks
    points = [lm[LANDMARK_INDEX[n], :2] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
    if not np.all(np.isfinite(points)):
        return None
    ls, rs, lh, rh = points
    shoulders, hips = (ls + rs) / 2, (lh + rh) / 2
    dx, dy = abs(float(shoulders[0] - hips[0])), abs(float(shoulders[1] - hips[1]))
    if dy <= 0 or dx > 0.5 * dy:
        return None
    return float(np.hypot(*(lh - rh))) / max(float(np.hypot(dx, dy)), 1.0)


class ViewMeter:
    """Is the camera side-on, or oblique (front- or rear-), for this athlete? Read from the hip width
    on upright frames only, as a median over `view_window_s`, so it is settled between reps and
    holds through a rep (bent over, the trunk foreshortens and the hips look wider). Hysteresis
    keeps it from flickering near the limit: oblique from `oblique_hip_ratio`, side-on again below
    `side_hip_ratio` (a first reading between the two is side-on)."""

    def __init__(self, config: FramingTable):
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._widths: deque[tuple[float, float]] = deque()
        self.view = View.UNKNOWN  # until upright frames have shown it

    def update(self, pose: Pose) -> View:
        width = upright_hip_width(pose) if pose.found else None
        if width is not None:
            self._widths.append((pose.timestamp, width))
        while self._widths and pose.timestamp - self._widths[0][0] > self.config.view_window_s:
            self._widths.popleft()
        if len(self._widths) >= 3:
            level = float(np.median([w for _, w in self._widths]))
            if level >= self.config.oblique_hip_ratio:
                self.view = View.OBLIQUE
            elif level < self.config.side_hip_ratio or self.view is View.UNKNOWN:
                self.view = View.SIDE_ON
        return self.view


def classify(pose: Pose, angles: Angles, config: FramingTable) -> FrameView:
    """What one frame shows, most basic problem first."""
    if not pose.found:
        return FrameView(Framing.NOBODY, FRAMING_CUES[Framing.NOBODY])
    if _outside(pose, FEET):
        return FrameView(Framing.OUT_OF_FRAME, FRAMING_CUES[Framing.OUT_OF_FRAME])
    if _outside(pose, HEAD):
        return FrameView(Framing.OUT_OF_FRAME, HEAD_CUT_CUE)
    if turned_to_camera(pose, config):
        return FrameView(Framing.FACING_CAMERA, FRAMING_CUES[Framing.FACING_CAMERA])
    if not angles.reliable:
        return FrameView(Framing.UNRELIABLE, FRAMING_CUES[Framing.UNRELIABLE])
    return FrameView(Framing.OK, FRAMING_CUES[Framing.OK])


class FramingMonitor:
    """The athlete's framing state: the first frame sets it, later changes must last `hold_s`."""

    def __init__(self, config: FramingTable):
        self.config = config
        self.state: Optional[FrameView] = None
        self._candidate: Optional[FrameView] = None
        self._since = 0.0

    @property
    def framing(self) -> Framing:
        return self.state.framing if self.state else Framing.NOBODY

    def reset(self) -> None:
        self.state, self._candidate = None, None

    def update(self, view: FrameView, time: float) -> Optional[FramingChanged]:
        if self.state is None:
            self.state, self._candidate = view, None
            return FramingChanged(time, view.framing, view.cue)
        if view == self.state:
            self._candidate = None
            return None
        if self._candidate != view:
            self._candidate, self._since = view, time
        if time - self._since >= self.config.hold_s:
            self.state, self._candidate = view, None
            return FramingChanged(time, view.framing, view.cue)
        return None
