"""The pose record everything downstream sees: 33 named BlazePose landmarks in image pixels.

Kept apart from the engine so the analysis, the store and the tests can use poses without loading
OpenCV or a TFLite interpreter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

LANDMARK_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)
LANDMARK_INDEX = {name: i for i, name in enumerate(LANDMARK_NAMES)}
NUM_LANDMARKS = len(LANDMARK_NAMES)

# Columns of Pose.landmarks.
X, Y, Z, VISIBILITY, PRESENCE = range(5)

# Where along the trunk the silhouette's outline is read: fractions of the way from the hips' centre
# to the shoulders' centre (see Pose.torso_outline). Every 5%, about 3 px apart on the ~60-px trunk
# of the model's 256-px crop: closer stations would read the same mask pixels.
TORSO_STATIONS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(21))


@dataclass(frozen=True)
class Roi:
    """A square, rotated region of interest in image pixels; rotation in radians, clockwise positive."""

    cx: float
    cy: float
    size: float
    rotation: float


@dataclass
class Pose:
    """One frame's body landmarks as plain data.

    landmarks: (33, 5) float array of x, y (image pixels), z (pixels, relative to the hips; smaller is
    nearer the camera), visibility and presence (0..1). All NaN when nobody was found.
    """

    timestamp: float
    landmarks: np.ndarray
    presence: float
    detector_ran: bool
    image_size: tuple[int, int]  # (width, height)
    roi: Optional[Roi] = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    # The body's silhouette across the trunk, from the landmark model's segmentation: at each of
    # TORSO_STATIONS along the line from the hips' centre to the shoulders' centre, where the
    # silhouette ends on either side of that line, in image pixels: shape (stations, 2, 2), side 0
    # along the line's left normal (dx, dy) -> (dy, -dx) in image axes (y down), side 1 the other way.
    # NaN where the silhouette does not end within reach (or the line leaves it); None when the model
    # has no segmentation output. Which side is the back depends on the way the athlete faces.
    torso_outline: Optional[np.ndarray] = None
    # The model's world landmarks: (33, 3) metres from the hips' centre, turned into the image's axes
    # (x right, y down, z away from the camera), so angles between bones are the body's own, whatever
    # the camera's yaw: what lets a front- or rear-oblique view be judged at all (see kinematics).
    # None when nobody was found, or the model has no such output (or in an old record).
    world: Optional[np.ndarray] = None

    @property
    def found(self) -> bool:
        return bool(np.isfinite(self.landmarks[0, X]))

    def xy(self, name: str) -> np.ndarray:
        return self.landmarks[LANDMARK_INDEX[name], :2]

    def visibility(self, name: str) -> float:
        return float(self.landmarks[LANDMARK_INDEX[name], VISIBILITY])

    def to_dict(self) -> dict[str, Any]:
        def num(v: float, nd: int) -> Optional[float]:
            return round(float(v), nd) if math.isfinite(v) else None

        return {
            "timestamp": round(self.timestamp, 4),
            "presence": round(self.presence, 4),
            "detector_ran": self.detector_ran,
            "image_size": list(self.image_size),
            "landmarks": {
                name: {
                    "x": num(row[X], 2),
                    "y": num(row[Y], 2),
                    "z": num(row[Z], 2),
                    "visibility": num(row[VISIBILITY], 4),
                    "presence": num(row[PRESENCE], 4),
                }
                for name, row in zip(LANDMARK_NAMES, self.landmarks)
            },
            "torso_outline": None if self.torso_outline is None else [
                [num(float(v), 2) for v in station.ravel()] for station in self.torso_outline],
            # millimetres: finer than the model resolves, coarse enough to keep the record small
            "world": None if self.world is None else [[num(float(v), 4) for v in row] for row in self.world],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Pose":
        lm = np.full((NUM_LANDMARKS, 5), np.nan)
        for i, name in enumerate(LANDMARK_NAMES):
            point = data["landmarks"].get(name) or {}
            for col, key in enumerate(("x", "y", "z", "visibility", "presence")):
                value = point.get(key)
                if value is not None:
                    lm[i, col] = value
        width, height = data.get("image_size", (0, 0))
        outline = data.get("torso_outline")
        world = data.get("world")
        return cls(
            timestamp=float(data["timestamp"]),
            landmarks=lm,
            presence=float(data["presence"]),
            detector_ran=bool(data.get("detector_ran", False)),
            image_size=(int(width), int(height)),
            torso_outline=None if outline is None else np.array(
                [[math.nan if v is None else float(v) for v in station] for station in outline],
                dtype=np.float64).reshape(-1, 2, 2),
            world=None if world is None else np.array(
                [[math.nan if v is None else float(v) for v in row] for row in world], dtype=np.float64).reshape(-1, 3),
        )


def empty_landmarks() -> np.ndarray:
    return np.full((NUM_LANDMARKS, 5), np.nan)
