"""Can the athlete be analysed at all? Nobody in view, facing the camera, feet or head cut off, or
landmarks too faint to trust.

Two answers per frame: `classify` says what this one frame shows (the analysis only uses frames
that are OK), and `FramingMonitor` turns that into a steady state for the athlete, announced with
a cue only once it has lasted `hold_s`, so a flicker does not make the station talk.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from device.analysis.vocabulary import FRAMING_CUES, Framing, FramingChanged
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
