"""Does a landmark variant change what the athlete is told? Reps and hinge/squat verdicts per clip.

The stricter check behind the angle gate: the whole station pipeline runs with the variant (its own
landmarks steer the tracked crop, as on the station) over the labelled clips, through `station
evaluate`'s own code, and every clip's rep count and per-rep verdicts are compared with float16's.
A variant that changes any of them is not selected, whatever its angle errors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from device.evaluate import Evaluation, LabelledClip, evaluate, read_labels
from device.pose import LandmarkModel, PoseDetector, PoseEngine, Pose
from device.profiles import Profile
from device.runtime import TFLiteModel


def engine_for(settings, detector_path: Path, landmark_path: Path) -> PoseEngine:
    """The station's pose engine with this landmark file, as PoseEngine.from_settings builds it."""
    threads, runtime = settings.models.threads, settings.models.runtime
    engine = PoseEngine(
        PoseDetector(TFLiteModel(Path(detector_path), threads, runtime), settings.pose.min_detection_score),
        LandmarkModel(TFLiteModel(Path(landmark_path), threads, runtime), settings.pose.refine_with_heatmap),
        settings.pose.min_tracking_presence,
    )
    engine.landmark_variant = Path(landmark_path).stem
    return engine


def coach_outcomes(settings, detector_path: Path, landmark_path: Path, labels: list[LabelledClip], profile: Profile,
                   progress: Optional[Callable[[str], None]] = None) -> Evaluation:
    """`station evaluate` on the labelled clips with this landmark file."""
    from device.replay import iter_poses
    from device.sources import VideoFileSource

    engine = engine_for(settings, detector_path, landmark_path)

    def poses(clip: Path) -> list[Pose]:
        with VideoFileSource(clip) as source:
            return [pose for _, pose in iter_poses(engine, source)]

    return evaluate(labels, poses, profile, progress)


def clip_verdicts(evaluation: Evaluation) -> dict[str, list[str]]:
    """Per clip, the verdict of every counted rep in order: the rep count and the verdicts in one."""
    return {r.label.clip: [rep.movement for rep in r.reps] for r in evaluation.results}


def changes(reference: Evaluation, candidate: Evaluation) -> list[dict[str, Any]]:
    """Clips where the candidate counts a different number of reps or gives a rep another verdict."""
    ref, new = clip_verdicts(reference), clip_verdicts(candidate)
    return [{"clip": clip, "float16": ref[clip], "variant": new.get(clip, [])}
            for clip in ref if new.get(clip) != ref[clip]]


def summary(evaluation: Evaluation) -> dict[str, Any]:
    """What the report and the selection need: totals, per-fault precision/recall, per-clip verdicts."""
    totals = {k: v for k, v in evaluation.totals().items() if k != "analysis_ms_per_frame"}
    faults = [{k: row[k] for k in ("fault", "labelled", "raised", "tp", "fp", "fn", "precision", "recall")}
              for row in evaluation.fault_rows() if row["labelled"] or row["raised"]]
    return {"totals": totals, "faults": faults, "clips": clip_verdicts(evaluation)}


def compare_outcomes(reference: Evaluation, candidate: Evaluation) -> dict[str, Any]:
    changed = changes(reference, candidate)
    return {"same_as_float16": not changed, "changed": changed, **summary(candidate)}


def labelled_clips(clips_dir: Path) -> Optional[list[LabelledClip]]:
    """The clips' labels (clips_dir/labels.csv), or None when there is no labels file."""
    path = Path(clips_dir) / "labels.csv"
    return read_labels(path) if path.is_file() else None
