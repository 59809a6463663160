"""Skeleton drawing for annotated replays and the live preview."""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from device.pose.landmarks import LANDMARK_INDEX, VISIBILITY, Pose

BONES = [
    ("left_ear", "left_shoulder"), ("right_ear", "right_shoulder"),
    ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"), ("left_hip", "right_hip"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("left_ankle", "left_heel"),
    ("left_heel", "left_foot_index"), ("left_ankle", "left_foot_index"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("right_ankle", "right_heel"),
    ("right_heel", "right_foot_index"), ("right_ankle", "right_foot_index"),
]
LEFT, RIGHT, CENTRE = (255, 160, 0), (0, 160, 255), (230, 230, 230)  # BGR


def _colour(name: str) -> tuple[int, int, int]:
    return LEFT if name.startswith("left") else RIGHT if name.startswith("right") else CENTRE


def draw_pose(bgr: np.ndarray, pose: Pose, min_visibility: float = 0.5, caption: Optional[str] = None) -> np.ndarray:
    """Draw the skeleton on a BGR image in place; faint lines where a joint is barely visible."""
    scale = max(1, round(max(bgr.shape[:2]) / 480))
    if pose.found:
        lm = pose.landmarks
        for a, b in BONES:
            pa, pb = lm[LANDMARK_INDEX[a]], lm[LANDMARK_INDEX[b]]
            seen = min(pa[VISIBILITY], pb[VISIBILITY]) >= min_visibility
            colour = _colour(b) if seen else (90, 90, 90)
            cv2.line(bgr, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), colour, 2 * scale if seen else scale, cv2.LINE_AA)
        for name, i in LANDMARK_INDEX.items():
            if lm[i, VISIBILITY] >= min_visibility:
                cv2.circle(bgr, (int(lm[i, 0]), int(lm[i, 1])), 2 * scale + 1, _colour(name), -1, cv2.LINE_AA)
    if caption:
        cv2.putText(bgr, caption, (8, 24 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), 4 * scale, cv2.LINE_AA)
        cv2.putText(bgr, caption, (8, 24 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255), scale, cv2.LINE_AA)
    return bgr
