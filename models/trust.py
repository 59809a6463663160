"""The hip and knee angles the hinge analysis would act on, frame by frame, from a landmark sequence.

The station never uses a landmark below the profile's visibility threshold, rejects a thigh or shin
much shorter than its recent length, and only counts reps and raises faults on frames whose framing
is OK (device/kinematics.py, device/framing.py, ANALYSIS.md). To judge a landmark model variant on
the angles that reach a rep or a verdict, the analysis' own code runs here on each crop sequence
(one clip, one facing, in frame order, with the frames' own timestamps) for every model alike:

- `AngleTracker` with the profile's kinematics table: visibility, camera side, facing, the bone
  check over its time window, each segment from the side whose bone fits best;
- `classify` with the profile's framing table: feet or head outside the image, turned to the
  camera, unreliable angles;
- the analyzer's rule that an athlete unseen for longer than `reps.max_gap_s` is forgotten.

Only the One Euro smoothing is opened fully (cutoff infinite, so each frame's angle is its own):
the gate is per frame, as before, and a crop sequence that skips frames would smooth differently
from the station anyway. No trust threshold is changed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from device.analysis.vocabulary import Framing
from device.analysis.framing import classify
from device.analysis.kinematics import AngleTracker
from device.pose.landmarks import Pose
from device.analysis.profiles import Profile
from models.crops import CropSet
from models.accuracy import GatedErrors

# A frame float16 trusts and the variant does not counts as this error: the station would read an
# angle there with float16 and none with the variant, as far apart as two readings of a joint can be.
DISAGREEMENT_DEG = 180.0


@dataclass(frozen=True)
class AnalysisAngles:
    """Per frame: hip and knee flexion as the analysis reads them, NaN where it would not use them
    (framing not OK, or the landmarks the angle needs not trusted)."""

    hip: np.ndarray
    knee: np.ndarray

    @property
    def hip_trusted(self) -> np.ndarray:
        return np.isfinite(self.hip)

    @property
    def knee_trusted(self) -> np.ndarray:
        return np.isfinite(self.knee)


def unsmoothed(profile: Profile) -> Profile:
    """The profile with the One Euro filter passing every value through; all trust rules as they are."""
    kinematics = profile.kinematics.model_copy(update={"min_cutoff_hz": math.inf})
    return profile.model_copy(update={"kinematics": kinematics})


def analysis_angles(landmarks: np.ndarray, crops: CropSet, profile: Profile) -> AnalysisAngles:
    """Run the analysis' trust rules over `landmarks` ((N, 33, 5) in image pixels, one per crop).
    Each segment of the crop set (one clip, one facing) is one sequence, in frame order."""
    raw = unsmoothed(profile)
    segments = crops.segments()
    hip, knee = np.full(len(landmarks), np.nan), np.full(len(landmarks), np.nan)
    for key in dict.fromkeys(segments.tolist()):
        tracker = AngleTracker(raw.kinematics)
        last_seen = None
        for i in np.flatnonzero(segments == key):
            t = float(crops.times[i])
            if last_seen is not None and t - last_seen > raw.reps.max_gap_s:
                tracker.reset()
            last_seen = t
            width, height = (int(v) for v in crops.image_sizes[i])
            pose = Pose(t, landmarks[i], 1.0, False, (width, height))
            angles = tracker.update(pose)
            if classify(pose, angles, raw.framing).framing is Framing.OK:
                hip[i], knee[i] = angles.hip_flexion_deg, angles.knee_flexion_deg
    return AnalysisAngles(hip, knee)


@dataclass(frozen=True)
class TrustedErrors(GatedErrors):
    """A variant against float16 on the frames the analysis trusts.

    frames: all frames compared; hip/knee_trusted_share: the share float16 trusts, variant_*_share the
    share the variant trusts; *_lost: frames float16 trusts and the variant does not; *_gained: the
    reverse. The median and p95 are over the frames float16 trusts, a lost frame counting as
    DISAGREEMENT_DEG, so a variant cannot pass by hiding joints; the max is over frames both trust."""

    frames: int
    hip_trusted_share: float
    knee_trusted_share: float
    variant_hip_trusted_share: float
    variant_knee_trusted_share: float
    hip_lost: int
    hip_gained: int
    knee_lost: int
    knee_gained: int
    hip_err_median: float
    hip_err_p95: float
    hip_err_max: float
    knee_err_median: float
    knee_err_p95: float
    knee_err_max: float

    def row(self) -> dict:
        return {k: (round(v, 3 if k.endswith("share") else 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _errors(reference: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, int, int, float]:
    """Errors over the frames the reference trusts (lost ones as DISAGREEMENT_DEG), lost and gained
    counts, and the largest error where both trust the frame."""
    ref_ok, new_ok = np.isfinite(reference), np.isfinite(candidate)
    both = ref_ok & new_ok
    lost, gained = int(np.sum(ref_ok & ~new_ok)), int(np.sum(~ref_ok & new_ok))
    agreed = np.abs(reference[both] - candidate[both])
    errors = np.concatenate([agreed, np.full(lost, DISAGREEMENT_DEG)])
    return errors, lost, gained, float(agreed.max()) if agreed.size else 0.0


def compare_trusted(reference: AnalysisAngles, candidate: AnalysisAngles, frames: Optional[np.ndarray] = None) -> TrustedErrors:
    """The errors over all frames, or over the frames selected by the boolean mask `frames`."""
    if frames is not None:
        reference = AnalysisAngles(reference.hip[frames], reference.knee[frames])
        candidate = AnalysisAngles(candidate.hip[frames], candidate.knee[frames])
    hip, hip_lost, hip_gained, hip_max = _errors(reference.hip, candidate.hip)
    knee, knee_lost, knee_gained, knee_max = _errors(reference.knee, candidate.knee)

    def stats(e: np.ndarray) -> tuple[float, float]:
        return (float(np.median(e)), float(np.percentile(e, 95))) if e.size else (0.0, 0.0)

    n = len(reference.hip)

    def share(trusted: np.ndarray) -> float:
        return float(trusted.mean()) if n else 0.0

    return TrustedErrors(
        frames=n,
        hip_trusted_share=share(reference.hip_trusted), knee_trusted_share=share(reference.knee_trusted),
        variant_hip_trusted_share=share(candidate.hip_trusted), variant_knee_trusted_share=share(candidate.knee_trusted),
        hip_lost=hip_lost, hip_gained=hip_gained, knee_lost=knee_lost, knee_gained=knee_gained,
        hip_err_median=stats(hip)[0], hip_err_p95=stats(hip)[1], hip_err_max=hip_max,
        knee_err_median=stats(knee)[0], knee_err_p95=stats(knee)[1], knee_err_max=knee_max,
    )


@dataclass(frozen=True)
class TrustedReference:
    """float16's landmarks on a crop set and the angles the analysis reads from them, kept so that
    every variant is judged against the same reading."""

    crops: CropSet
    landmarks: np.ndarray
    profile: Profile
    angles: AnalysisAngles

    @classmethod
    def of(cls, landmarks: np.ndarray, crops: CropSet, profile: Profile) -> "TrustedReference":
        return cls(crops, landmarks, profile, analysis_angles(landmarks, crops, profile))

    def take(self, index: np.ndarray) -> "TrustedReference":
        """The reference on a subset of crops, re-read in sequence (the bone check sees only those)."""
        return TrustedReference.of(self.landmarks[index], self.crops.take(index), self.profile)

    def judge(self, candidate: np.ndarray) -> TrustedErrors:
        return compare_trusted(self.angles, analysis_angles(candidate, self.crops, self.profile))

    def judge_by_clip(self, candidate: np.ndarray) -> dict[str, TrustedErrors]:
        """The same judgement per clip (both facings), each clip read in full sequence."""
        angles = analysis_angles(candidate, self.crops, self.profile)
        return {clip: compare_trusted(self.angles, angles, self.crops.clips == clip) for clip in self.crops.clip_names()}
