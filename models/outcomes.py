"""Does a landmark variant change what the athlete is told? Reps, verdicts and faults per clip.

The stricter check behind the angle reading: the whole station pipeline runs with the variant (its own
landmarks steer the tracked crop, as on the station) over the labelled clips, through `station
evaluate`'s own code, and every clip's rep count, per-rep hinge/squat verdicts and the faults the
athlete heard are compared with float16's. A variant that changes any of them is not selected,
whatever its angle errors: a fault raised or missed is a buzz the athlete hears or does not.
The same comparison over the clips' perturbations, for the variant and for float16 with its crop
moved 1 px, is the verdicts reading of the noise-floor gate (models/noise_floor.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from device.analysis.scoring import Evaluation, LabelledClip, evaluate, read_labels
from device.pose.engine import LandmarkModel, PoseDetector, PoseEngine
from device.pose.landmarks import Pose
from device.analysis.profiles import Profile
from device.pose.model_files import SHIPPED_VARIANT
from device.pose.tflite import TFLiteModel
from models.accuracy import CropShiftedLandmarkModel
from models.noise_floor import CROP_SHIFT_PX, VERDICT_PERTURBATIONS, verdict_judgement


AS_FILMED = "as filmed"  # the clips unperturbed; the other runs are named by their perturbation


class PoseRuns(Protocol):
    """Poses of the labelled clips from a given engine, as filmed or perturbed, through the pose
    cache: device.commands.evaluate.PoseRuns, handed in by the command (this package may not import it)."""

    perturbations: tuple[str, ...]

    def source(self, build: Callable[[], PoseEngine], name: str, landmark: Path, detector: Path,
               perturbed: Optional[str] = None) -> Callable[[Path], list[Pose]]: ...


def engine_for(settings, detector_path: Path, landmark_path: Path, crop_shift: int = 0) -> PoseEngine:
    """The station's pose engine with this landmark file, as PoseEngine.from_settings builds it;
    `crop_shift` > 0: the landmark model reads its crop moved by that many pixels (the noise floor)."""
    threads, runtime = settings.models.threads, settings.models.runtime
    tflite = TFLiteModel(Path(landmark_path), threads, runtime)
    refine = settings.pose.refine_with_heatmap
    landmarks = CropShiftedLandmarkModel(tflite, refine, crop_shift) if crop_shift else LandmarkModel(tflite, refine)
    engine = PoseEngine(
        PoseDetector(TFLiteModel(Path(detector_path), threads, runtime), settings.pose.min_detection_score),
        landmarks,
        settings.pose.min_tracking_presence,
    )
    engine.landmark_variant = Path(landmark_path).stem
    return engine


def coach_outcomes(settings, detector_path: Path, landmark_path: Path, labels: list[LabelledClip], profile: Profile,
                   progress: Optional[Callable[[str], None]] = None, pose_runs: Optional[PoseRuns] = None,
                   name: Optional[str] = None, run: str = AS_FILMED, crop_shift: int = 0) -> Evaluation:
    """`station evaluate` on the labelled clips with this landmark file: as filmed, or (given the
    command's pose runs, whose cache it shares under `name`) under the perturbation `run`."""
    from device.pose.engine import iter_poses
    from device.capture.file import VideoFileSource

    def build() -> PoseEngine:
        return engine_for(settings, detector_path, landmark_path, crop_shift)

    if pose_runs is not None:
        key = (name or Path(landmark_path).stem) + (f"+crop_shift_{crop_shift}px" if crop_shift else "")
        poses = pose_runs.source(build, key, Path(landmark_path), Path(detector_path), None if run == AS_FILMED else run)
        return evaluate(labels, poses, profile, progress)
    if run != AS_FILMED:
        raise ValueError(f"the {run} run needs the pose runs of `station evaluate` (device.commands.evaluate.PoseRuns)")
    engine = build()

    def direct(clip: Path) -> list[Pose]:
        with VideoFileSource(clip) as source:
            return [pose for _, pose in iter_poses(engine, source)]

    return evaluate(labels, direct, profile, progress)


class CoachingCheck:
    """float16, float16 with its crop moved 1 px (its noise floor) and any variant through the whole
    pipeline on the labelled clips as filmed and, given the pose runs, under the verdicts reading's
    perturbations (VERDICT_PERTURBATIONS).
    Each (model, run) is evaluated once; float16's runs and the floor's only when first asked for."""

    def __init__(self, settings, detector: Path, shipped: Path, labels: list[LabelledClip], profile: Profile,
                 pose_runs: Optional[PoseRuns] = None, say: Callable[[str], None] = lambda line: None):
        self.settings, self.detector, self.shipped, self.labels, self.profile = settings, detector, shipped, labels, profile
        self.pose_runs, self.say = pose_runs, say
        self.runs = [AS_FILMED] + [p for p in (pose_runs.perturbations if pose_runs else ()) if p in VERDICT_PERTURBATIONS]
        self._done: dict[tuple[str, str], Evaluation] = {}

    def _run(self, path: Path, name: str, run: str, crop_shift: int = 0) -> Evaluation:
        key = (name + (f"+{crop_shift}px" if crop_shift else ""), run)
        if key not in self._done:
            self.say(f"coaching check on {len(self.labels)} labelled clips ({run}): {key[0]}")
            self._done[key] = coach_outcomes(self.settings, self.detector, path, self.labels, self.profile,
                                             pose_runs=self.pose_runs, name=name, run=run, crop_shift=crop_shift)
        return self._done[key]

    def reference(self, run: str = AS_FILMED) -> Evaluation:
        return self._run(self.shipped, SHIPPED_VARIANT, run)

    def outcomes(self, path: Path, name: str) -> dict[str, Any]:
        """The kept rule's reading: the variant against float16 on the clips as filmed."""
        return compare_outcomes(self.reference(), self._run(path, name, AS_FILMED))

    def floor_changed_clips(self) -> dict[str, list[dict[str, Any]]]:
        """Per run, the clips whose outcome float16 changes when its crop moves 1 px."""
        return {run: changes(self.reference(run), self._run(self.shipped, SHIPPED_VARIANT, run, CROP_SHIFT_PX))
                for run in self.runs}

    def floor_changes(self) -> dict[str, int]:
        return {run: len(changed) for run, changed in self.floor_changed_clips().items()}

    def verdicts(self, path: Path, name: str) -> dict[str, Any]:
        """The verdicts reading: the variant's changed clip outcomes per run against the floor's."""
        mine = {run: len(changes(self.reference(run), self._run(path, name, run))) for run in self.runs}
        return verdict_judgement(mine, self.floor_changes(), len(self.labels) * len(self.runs))


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
