"""Another model's COCO-17 keypoints (../shared/clips/keypoints) as Poses, to test the analysis on
real motion without running our pose model."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from device.pose.landmarks import LANDMARK_INDEX, NUM_LANDMARKS, Pose

# COCO-17 keypoints (YOLO-pose) in BlazePose's names, for ../shared/clips/keypoints.
COCO17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)


def coco17_poses(path: Path, fps: float, image_size: tuple[int, int] = (1280, 720)) -> list[Pose]:
    """Another model's COCO-17 keypoints CSV as Poses: found points fully visible, the rest (and
    the 16 BlazePose points COCO lacks: heels, toes, hands, inner eyes, mouth) NaN."""
    poses = []
    with Path(path).open(newline="") as fh:
        for row in csv.DictReader(fh):
            lm = np.full((NUM_LANDMARKS, 5), np.nan)
            for name in COCO17:
                x, y = (row.get(f"{name}_x") or "").strip(), (row.get(f"{name}_y") or "").strip()
                if x and y:
                    lm[LANDMARK_INDEX[name]] = (float(x), float(y), 0.0, 1.0, 1.0)
            found = bool(np.isfinite(lm[:, 0]).any())
            poses.append(Pose(int(row["frame_id"]) / fps, lm, 1.0 if found else 0.0, False, image_size))
    return poses
