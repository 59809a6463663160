"""`station evaluate`: replay labelled clips through pose + analysis and score the analysis.

Per clip: true vs counted reps, the hinge-vs-squat verdict vs the label, faults labelled vs raised;
in total: clips counted exactly, verdicts right, and per fault precision and recall over clips (a
label says a fault is present somewhere in a clip, so a clip is the unit). A clip's raised faults
are every fault the athlete would have heard, including during a lowering that did not become a
counted rep.

The labels file is the CSV described in ../shared/README.md. Poses are the slow part, so they are
cached per clip as JSON lines keyed by the clip's and the landmark model's content and the pose
settings; the analysis always runs fresh and its cost per frame is measured.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from device.analysis import HingeAnalyzer
from device.errors import StationError
from device.events import Fault, Rep, fault_from_name
from device.pose import LANDMARK_INDEX, NUM_LANDMARKS, Pose
from device.profiles import Profile

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
MOVEMENTS = ("hinge", "squat")


class LabelsError(StationError):
    """The labels file is missing or malformed."""


@dataclass(frozen=True)
class LabelledClip:
    clip: str
    path: Path
    movement: str
    reps: int
    faults: frozenset[Fault]
    notes: str = ""


def default_labels_path() -> Optional[Path]:
    """../shared/clips/labels.csv beside the checkout (or under $HINGE_SHARED_DIR), if present."""
    candidates = []
    if os.environ.get("HINGE_SHARED_DIR"):
        candidates.append(Path(os.environ["HINGE_SHARED_DIR"]) / "clips" / "labels.csv")
    candidates += [REPO.parent / "shared" / "clips" / "labels.csv", Path.cwd().parent / "shared" / "clips" / "labels.csv"]
    return next((p for p in candidates if p.is_file()), None)


def read_labels(path: Path) -> list[LabelledClip]:
    """Parse the labels CSV; every problem names the row and the column."""
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"labels file {path} does not exist (pass the path to a labels.csv, see ../shared/README.md)")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"clip", "movement", "reps", "faults"} - set(reader.fieldnames or [])
        if missing:
            raise LabelsError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        out = []
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            clip = (row["clip"] or "").strip()
            if not clip:
                raise LabelsError(f"{where}: clip: empty")
            movement = (row["movement"] or "").strip()
            if movement not in MOVEMENTS:
                raise LabelsError(f"{where}: movement: must be hinge or squat (got {movement!r})")
            try:
                reps = int(row["reps"])
            except (TypeError, ValueError):
                raise LabelsError(f"{where}: reps: not a whole number (got {row['reps']!r})") from None
            faults = set()
            for name in filter(None, (n.strip() for n in (row["faults"] or "").split(";"))):
                fault = fault_from_name(name)
                if fault is None:
                    raise LabelsError(f"{where}: faults: unknown fault {name!r} (known: {', '.join(f.value for f in Fault)})")
                faults.add(fault)
            clip_path = path.parent / clip
            if not clip_path.is_file():
                raise LabelsError(f"{where}: clip: {clip_path} does not exist")
            out.append(LabelledClip(clip, clip_path, movement, reps, frozenset(faults), (row.get("notes") or "").strip()))
    if not out:
        raise LabelsError(f"{path}: no clips listed")
    return out


# --- poses --------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PoseCache:
    """Poses per clip as JSON lines, named by clip content + model + pose settings."""

    def __init__(self, directory: Path, model_key: str):
        self.directory = Path(directory)
        self.model_key = model_key

    def path(self, clip: Path) -> Path:
        return self.directory / f"{Path(clip).stem}-{file_sha256(clip)[:16]}-{self.model_key}.jsonl"

    def load(self, clip: Path) -> Optional[list[Pose]]:
        path = self.path(clip)
        if not path.is_file():
            return None
        try:
            with path.open() as fh:
                return [Pose.from_dict(json.loads(line)) for line in fh if line.strip()]
        except (ValueError, KeyError) as err:
            log.warning("ignoring unreadable pose cache %s: %s", path, err)
            return None

    def save(self, clip: Path, poses: list[Pose]) -> None:
        path = self.path(clip)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            for pose in poses:
                fh.write(json.dumps(pose.to_dict(), separators=(",", ":")) + "\n")
        tmp.replace(path)


def model_key(settings) -> str:
    """What the poses depend on: the landmark model's bytes and the pose settings."""
    from models.manifest import resolve_models

    resolved = resolve_models(settings.models_dir, settings.models.landmark_variant)
    digest = hashlib.sha256(file_sha256(resolved.landmark).encode())
    digest.update(file_sha256(resolved.detector).encode())
    digest.update(settings.pose.model_dump_json().encode())
    return f"{resolved.landmark_variant}-{digest.hexdigest()[:12]}"


PoseSource = Callable[[Path], list[Pose]]


def engine_poses(settings, cache: Optional[PoseCache]) -> PoseSource:
    """Poses of a clip from the pose engine, through the cache when there is one."""
    from device.pose import PoseEngine
    from device.replay import iter_poses
    from device.sources import VideoFileSource

    engine: Optional[PoseEngine] = None

    def poses(clip: Path) -> list[Pose]:
        nonlocal engine
        if cache is not None and (cached := cache.load(clip)) is not None:
            return cached
        if engine is None:
            engine = PoseEngine.from_settings(settings)
        with VideoFileSource(clip) as source:
            found = [pose for _, pose in iter_poses(engine, source)]
        if cache is not None:
            cache.save(clip, found)
        return found

    return poses


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


# --- analysis and scores ------------------------------------------------------------------------


@dataclass
class ClipResult:
    label: LabelledClip
    frames: int
    reps: list[Rep]
    faults: frozenset[Fault]
    analysis_s: float

    @property
    def movement(self) -> str:
        verdicts = {r.movement for r in self.reps}
        return verdicts.pop() if len(verdicts) == 1 else ("mixed" if verdicts else "-")

    @property
    def reps_exact(self) -> bool:
        return len(self.reps) == self.label.reps

    @property
    def movement_right(self) -> bool:
        return bool(self.reps) and all(r.movement == self.label.movement for r in self.reps)

    def row(self) -> dict:
        names = lambda fs: ";".join(sorted(f.value for f in fs)) or "-"  # noqa: E731
        return {
            "clip": self.label.clip, "frames": self.frames, "reps_true": self.label.reps, "reps_counted": len(self.reps),
            "reps_exact": self.reps_exact, "movement_true": self.label.movement, "movement": self.movement,
            "movement_right": self.movement_right, "faults_true": names(self.label.faults),
            "faults_found": names(self.faults), "missed": names(self.label.faults - self.faults),
            "extra": names(self.faults - self.label.faults),
        }


def analyse(poses: Iterable[Pose], profile: Profile) -> tuple[HingeAnalyzer, int]:
    """Run the analyzer over a stream of poses, to the end. Returns it and the frame count."""
    analyzer = HingeAnalyzer(profile)
    analyzer.run(poses)
    return analyzer, analyzer.frames


def evaluate_clip(label: LabelledClip, poses: list[Pose], profile: Profile) -> ClipResult:
    analyzer, frames = analyse(poses, profile)
    return ClipResult(label, frames, list(analyzer.reps), frozenset(f.fault for f in analyzer.faults), analyzer.busy_s)


@dataclass
class Evaluation:
    profile: str
    results: list[ClipResult] = field(default_factory=list)

    def clip_rows(self) -> list[dict]:
        return [r.row() for r in self.results]

    def fault_rows(self) -> list[dict]:
        rows = []
        for fault in Fault:
            tp = sum(fault in r.faults and fault in r.label.faults for r in self.results)
            fp = sum(fault in r.faults and fault not in r.label.faults for r in self.results)
            fn = sum(fault not in r.faults and fault in r.label.faults for r in self.results)
            rows.append({
                "fault": fault.value, "labelled": tp + fn, "raised": tp + fp, "tp": tp, "fp": fp, "fn": fn,
                "precision": round(tp / (tp + fp), 3) if tp + fp else None,
                "recall": round(tp / (tp + fn), 3) if tp + fn else None,
            })
        return rows

    def totals(self) -> dict:
        frames = sum(r.frames for r in self.results)
        busy = sum(r.analysis_s for r in self.results)
        verdicts = Counter((r.label.movement, r.movement) for r in self.results)
        return {
            "profile": self.profile,
            "clips": len(self.results),
            "reps_true": sum(r.label.reps for r in self.results),
            "reps_counted": sum(len(r.reps) for r in self.results),
            "clips_reps_exact": sum(r.reps_exact for r in self.results),
            "clips_movement_right": sum(r.movement_right for r in self.results),
            "verdicts": {f"{truth}->{said}": n for (truth, said), n in sorted(verdicts.items())},
            "frames": frames,
            "analysis_ms_per_frame": round(1000 * busy / frames, 4) if frames else None,
        }


def evaluate(labels: list[LabelledClip], poses_of: PoseSource, profile: Profile,
             progress: Optional[Callable[[str], None]] = None) -> Evaluation:
    evaluation = Evaluation(profile.name)
    for label in labels:
        if progress:
            progress(label.clip)
        evaluation.results.append(evaluate_clip(label, poses_of(label.path), profile))
    return evaluation
