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
        return cls(
            timestamp=float(data["timestamp"]),
            landmarks=lm,
            presence=float(data["presence"]),
            detector_ran=bool(data.get("detector_ran", False)),
            image_size=(int(width), int(height)),
        )


def empty_landmarks() -> np.ndarray:
    return np.full((NUM_LANDMARKS, 5), np.nan)
