"""Judge a landmark model variant against the shipped float16 model in the coach's units.

Both models see the same real crops; their landmarks are projected to image pixels the way the
engine does it. The hip angle (shoulder-hip-knee) and knee angle (hip-knee-ankle) are taken on the
side nearer the camera, chosen by the float16 model's visibility, and compared frame by frame;
the pixel error is the distance between the two models' near-side shoulder, hip, knee and ankle.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from device.analysis.geometry import joint_angle_deg
from device.pose.landmarks import LANDMARK_INDEX, NUM_LANDMARKS, VISIBILITY, Roi
from device.pose.engine import LANDMARK_SIZE, LandmarkModel, project
from device.pose.tflite import TFLiteModel
from models.crops import CropSet

ANGLE_JOINTS = ("shoulder", "hip", "knee", "ankle")


class CropShiftedLandmarkModel(LandmarkModel):
    """The landmark model reading its crop moved `shift` crop pixels right and down (the uncovered
    edge black, as outside the image), its points mapped back. The tracked crop moves about this much
    between frames anyway, so what this changes is the model's own noise floor: the yardstick a
    quantized variant is judged against (models/noise_floor.py), on crops and in the whole pipeline."""

    def __init__(self, model: TFLiteModel, refine_with_heatmap: bool = True, shift: int = 1):
        super().__init__(model, refine_with_heatmap)
        if shift < 1:
            raise ValueError(f"a crop shift is at least 1 px (got {shift})")
        self.shift = shift

    def load(self, rgb: np.ndarray, roi: Roi) -> None:
        self.load_crop(self.crop(rgb, roi))

    def load_crop(self, crop: np.ndarray) -> None:
        moved = np.zeros_like(crop)
        moved[self.shift:, self.shift:] = crop[:-self.shift, :-self.shift]
        super().load_crop(moved)

    def read(self) -> tuple[np.ndarray, float]:
        points, presence = super().read()
        points[:, :2] -= self.shift
        return points, presence

    def torso_outline(self, points: np.ndarray, mask: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        """The outline read on the moved crop, mapped back like the points."""
        moved = points.copy()
        moved[:, :2] += self.shift
        outline = super().torso_outline(moved, mask)
        return None if outline is None else outline - self.shift


def run_landmarks(model_path: Path, crops: CropSet, threads: int = 2, runtime: str = "auto",
                  progress: Optional[Callable[[int, int], None]] = None, crop_shift: int = 0) -> np.ndarray:
    """(N, 33, 5) landmarks in image pixels, as the engine computes them (heatmap refinement on).
    Landmarks of a mirrored crop are mirrored back, so they compare with the same ROI. `crop_shift`:
    the model reads each crop moved by that many pixels (CropShiftedLandmarkModel)."""
    tflite = TFLiteModel(Path(model_path), threads, runtime)
    model = CropShiftedLandmarkModel(tflite, shift=crop_shift) if crop_shift else LandmarkModel(tflite)
    out = np.empty((len(crops), NUM_LANDMARKS, 5))
    for i in range(len(crops)):
        points, _ = model.infer(crops.model_input(i))
        if crops.mirrored[i]:
            points[:, 0] = LANDMARK_SIZE - points[:, 0]
        out[i] = project(points, crops.roi(i))[:NUM_LANDMARKS]
        if progress and (i + 1) % 200 == 0:
            progress(i + 1, len(crops))
    return out


def near_side(reference: np.ndarray) -> np.ndarray:
    """True where the left side is nearer the camera (higher summed visibility), per frame."""
    def visibility(side: str) -> np.ndarray:
        return np.sum([reference[:, LANDMARK_INDEX[f"{side}_{j}"], VISIBILITY] for j in ANGLE_JOINTS], axis=0)

    return visibility("left") >= visibility("right")


def _joint(points: np.ndarray, left: np.ndarray, joint: str) -> np.ndarray:
    index = np.where(left, LANDMARK_INDEX[f"left_{joint}"], LANDMARK_INDEX[f"right_{joint}"])
    return points[np.arange(len(points)), index, :2]


def hip_knee_angles(points: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, h, k, a = (_joint(points, left, j) for j in ANGLE_JOINTS)
    return joint_angle_deg(s, h, k), joint_angle_deg(h, k, a)


class GatedErrors:
    """Hip and knee angle errors (all frames, or trusted frames); the gate compares them with
    float16's own noise floor (models/noise_floor.py)."""

    hip_err_p95: float
    knee_err_p95: float

    @property
    def worst_p95(self) -> float:
        return max(self.hip_err_p95, self.knee_err_p95)


@dataclass(frozen=True)
class AngleErrors(GatedErrors):
    """A variant's disagreement with float16 on the same frames."""

    frames: int
    hip_err_median: float
    hip_err_p95: float
    hip_err_max: float
    knee_err_median: float
    knee_err_p95: float
    knee_err_max: float
    px_err_median: float
    px_err_p95: float

    def row(self) -> dict:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def compare(reference: np.ndarray, candidate: np.ndarray) -> AngleErrors:
    left = near_side(reference)
    hip_ref, knee_ref = hip_knee_angles(reference, left)
    hip_new, knee_new = hip_knee_angles(candidate, left)
    hip, knee = np.abs(hip_ref - hip_new), np.abs(knee_ref - knee_new)
    px = np.concatenate([np.linalg.norm(_joint(reference, left, j) - _joint(candidate, left, j), axis=1) for j in ANGLE_JOINTS])
    return AngleErrors(
        frames=len(reference),
        hip_err_median=float(np.median(hip)), hip_err_p95=float(np.percentile(hip, 95)), hip_err_max=float(hip.max()),
        knee_err_median=float(np.median(knee)), knee_err_p95=float(np.percentile(knee, 95)), knee_err_max=float(knee.max()),
        px_err_median=float(np.median(px)), px_err_p95=float(np.percentile(px, 95)),
    )


def running_median(series: np.ndarray, window: int) -> np.ndarray:
    """Centred running median; the ends use the edge values."""
    half = window // 2
    padded = np.pad(series, half, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)


def smoothed_errors(reference: np.ndarray, candidate: np.ndarray, segments: np.ndarray, window: int = 5) -> dict[str, float]:
    """Hip and knee angle error p95 after the same centred running median over `window` consecutive
    frames of each segment (one clip, one facing), on the segment's nearer side. Closer to what a
    rep verdict sees than a single frame; informational, not the gate."""
    hip_errors, knee_errors = [], []
    for key in np.unique(segments):
        index = np.flatnonzero(segments == key)
        left = np.full(len(index), near_side(reference[index]).mean() >= 0.5)
        ref_angles = hip_knee_angles(reference[index], left)
        new_angles = hip_knee_angles(candidate[index], left)
        hip_errors.append(np.abs(running_median(ref_angles[0], window) - running_median(new_angles[0], window)))
        knee_errors.append(np.abs(running_median(ref_angles[1], window) - running_median(new_angles[1], window)))
    hip, knee = np.concatenate(hip_errors), np.concatenate(knee_errors)
    return {"window": window, "hip_err_p95": round(float(np.percentile(hip, 95)), 2),
            "knee_err_p95": round(float(np.percentile(knee, 95)), 2)}


def identical_outputs(reference: Path, candidate: Path, threads: int = 2, runtime: str = "auto") -> bool:
    """True when every output the candidate has equals the reference's bit for bit on a fixed
    input: how an exact rewrite proves itself on the machine that built it."""
    x = np.random.default_rng(0).random((256, 256, 3), dtype=np.float32)[None]
    ref_model, new_model = TFLiteModel(Path(reference), threads, runtime), TFLiteModel(Path(candidate), threads, runtime)
    ref = dict(zip(ref_model.output_shapes, ref_model.run(x)))
    new = dict(zip(new_model.output_shapes, new_model.run(x)))
    return all(shape in ref and np.array_equal(ref[shape], out) for shape, out in new.items())
