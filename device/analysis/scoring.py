"""Scoring the analysis against labelled clips (the work behind `station evaluate`).

Per clip: true vs counted reps, the hinge-vs-squat verdict vs the label, faults labelled vs raised;
in total: clips counted exactly, verdicts right, and per fault precision and recall over clips (a
label says a fault is present somewhere in a clip, so a clip is the unit). A clip's raised faults
are every fault the athlete would have heard, including during a lowering that did not become a
counted rep.

The labels file is the CSV described in ../shared/README.md. Poses come from a PoseSource (the pose
engine through a cache in device.commands.evaluate, or another model's keypoints in the tests); the
analysis always runs fresh and its cost per frame is measured.
"""
from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional


from device.analysis.analyzer import HingeAnalyzer
from device.errors import StationError
from device.analysis.vocabulary import Fault, Rep, fault_from_name
from device.pose.landmarks import Pose
from device.analysis.profiles import Profile

log = logging.getLogger(__name__)

# clip path -> that clip's poses (from the pose engine, a cache, or another model's keypoints)
PoseSource = Callable[[Path], list[Pose]]

MOVEMENTS = ("hinge", "squat")
VIEWS = ("side", "oblique", "front")


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
    view: str = "side"  # side, oblique or front: only a side view must be counted exactly
    drill: str = ""  # the drill profile a trainer would pick for the clip; empty when not labelled


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
            view = (row.get("view") or "side").strip()
            if view not in VIEWS:
                raise LabelsError(f"{where}: view: must be one of {', '.join(VIEWS)} (got {view!r})")
            out.append(LabelledClip(clip, clip_path, movement, reps, frozenset(faults), (row.get("notes") or "").strip(),
                                    view, (row.get("drill") or "").strip()))
    if not out:
        raise LabelsError(f"{path}: no clips listed")
    return out


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
