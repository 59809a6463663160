"""Does a landmark variant change what the athlete is told? Reps, verdicts and faults per clip.

The stricter check behind the angle gate: the whole station pipeline runs with the variant (its own
landmarks steer the tracked crop, as on the station) over the labelled clips, through `station
evaluate`'s own code, and every clip's rep count, per-rep hinge/squat verdicts and the faults the
athlete heard are compared with float16's. A variant that changes any of them is not selected,
whatever its angle errors: a fault raised or missed is a buzz the athlete hears or does not.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from device.analysis.scoring import Evaluation, LabelledClip, evaluate, read_labels
from device.pose.engine import LandmarkModel, PoseDetector, PoseEngine
from device.pose.landmarks import Pose
from device.analysis.profiles import Profile
from device.pose.tflite import TFLiteModel


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
    from device.pose.engine import iter_poses
    from device.capture.file import VideoFileSource

    engine = engine_for(settings, detector_path, landmark_path)

    def poses(clip: Path) -> list[Pose]:
        with VideoFileSource(clip) as source:
            return [pose for _, pose in iter_poses(engine, source)]

    return evaluate(labels, poses, profile, progress)


def clip_outcomes(evaluation: Evaluation) -> dict[str, dict[str, list[str]]]:
    """Per clip: the verdict of every counted rep in order (the rep count and the verdicts in one)
    and the faults raised."""
    return {r.label.clip: {"reps": [rep.movement for rep in r.reps], "faults": sorted(f.value for f in r.faults)}
            for r in evaluation.results}


def changes(reference: Evaluation, candidate: Evaluation) -> list[dict[str, Any]]:
    """Clips where the candidate counts other reps, gives a rep another verdict or raises other faults."""
    ref, new = clip_outcomes(reference), clip_outcomes(candidate)
    out = []
    for clip, was in ref.items():
        now = new.get(clip, {"reps": [], "faults": []})
        if now == was:
            continue
        change: dict[str, Any] = {"clip": clip}
        if now["reps"] != was["reps"]:
            change["reps"] = {"float16": was["reps"], "variant": now["reps"]}
        added, missed = sorted(set(now["faults"]) - set(was["faults"])), sorted(set(was["faults"]) - set(now["faults"]))
        if added or missed:
            change["faults"] = {"added": added, "missed": missed}
        out.append(change)
    return out


def summary(evaluation: Evaluation) -> dict[str, Any]:
    """What the report and the selection need: totals, per-fault precision/recall, per-clip outcomes."""
    totals = {k: v for k, v in evaluation.totals().items() if k != "analysis_ms_per_frame"}
    faults = [{k: row[k] for k in ("fault", "labelled", "raised", "tp", "fp", "fn", "precision", "recall")}
              for row in evaluation.fault_rows() if row["labelled"] or row["raised"]]
    return {"totals": totals, "faults": faults, "clips": clip_outcomes(evaluation)}


def compare_outcomes(reference: Evaluation, candidate: Evaluation) -> dict[str, Any]:
    changed = changes(reference, candidate)
    return {"same_as_float16": not changed,
            "same_reps_and_verdicts": not any("reps" in c for c in changed),
            "same_faults": not any("faults" in c for c in changed),
            "changed": changed, **summary(candidate)}


def describe(changed: list[dict[str, Any]]) -> str:
    """The changes in a line of coach's words."""
    parts = []
    for c in changed:
        bits = []
        if "reps" in c:
            bits.append(f"reps {c['reps']['float16']} -> {c['reps']['variant']}")
        if "faults" in c:
            bits += [f"+{f}" for f in c["faults"]["added"]] + [f"-{f}" for f in c["faults"]["missed"]]
        parts.append(f"{c['clip']}: {' '.join(bits)}")
    return "; ".join(parts)


def labelled_clips(clips_dir: Path) -> Optional[list[LabelledClip]]:
    """The clips' labels (clips_dir/labels.csv), or None when there is no labels file."""
    path = Path(clips_dir) / "labels.csv"
    return read_labels(path) if path.is_file() else None
