"""`station evaluate`: replay labelled clips through the pose engine and score the analysis.

Poses are the slow part, so they are cached per clip as JSON lines keyed by the clip's and the
landmark model's content, the pose settings and the perturbation (if any); the analysis always runs
fresh (the scoring itself lives in device.analysis.scoring, which works on any poses).

Each clip is judged under its labels' `drill` profile unless `--profile` forces one. `--by-source`
groups the numbers by where the clips came from; `--perturb` runs every clip again as a slightly
different camera would see it (device.commands.perturb) and reports which clips change.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from device.analysis.profiles import Profile, load_profile
from device.analysis.scoring import (Evaluation, LabelsError, PoseSource, ProfileChooser, compare_runs, drill_profiles,
                                     evaluate, read_labels)
from device.capture import VideoFileSource
from device.capture.base import Frame, FrameSource
from device.commands.perturb import PERTURBATIONS, Perturbation
from device.commands.perturb import perturbation as named_perturbation
from device.commands.tables import print_table, write_json
from device.config import Settings
from device.fileio import json_line, sha256_of
from device.pose.engine import PoseEngine, iter_poses
from device.pose.landmarks import Pose
from device.pose.model_files import resolve_models

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


def default_labels_path() -> Optional[Path]:
    """../shared/clips/labels.csv beside the checkout (or under $HINGE_SHARED_DIR), if present."""
    candidates = []
    if os.environ.get("HINGE_SHARED_DIR"):
        candidates.append(Path(os.environ["HINGE_SHARED_DIR"]) / "clips" / "labels.csv")
    candidates += [REPO.parent / "shared" / "clips" / "labels.csv", Path.cwd().parent / "shared" / "clips" / "labels.csv"]
    return next((p for p in candidates if p.is_file()), None)



# --- poses --------------------------------------------------------------------------------------


class PoseCache:
    """Poses per clip as JSON lines, named by clip content + model + pose settings (+ perturbation)."""

    def __init__(self, directory: Path, model_key: str):
        self.directory = Path(directory)
        self.model_key = model_key

    def path(self, clip: Path, perturbation: Optional[str] = None) -> Path:
        suffix = f"-{perturbation}" if perturbation else ""
        return self.directory / f"{Path(clip).stem}-{sha256_of(clip)[:16]}-{self.model_key}{suffix}.jsonl"

    def load(self, clip: Path, perturbation: Optional[str] = None) -> Optional[list[Pose]]:
        path = self.path(clip, perturbation)
        if not path.is_file():
            return None
        try:
            with path.open() as fh:
                return [Pose.from_dict(json.loads(line)) for line in fh if line.strip()]
        except (ValueError, KeyError) as err:
            log.warning("ignoring unreadable pose cache %s: %s", path, err)
            return None

    def save(self, clip: Path, poses: list[Pose], perturbation: Optional[str] = None) -> None:
        path = self.path(clip, perturbation)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            for pose in poses:
                fh.write(json_line(pose.to_dict()) + "\n")
        tmp.replace(path)


def model_key(settings) -> str:
    """What the poses depend on: the landmark model's bytes and the pose settings."""
    resolved = resolve_models(settings.models_dir, settings.models.landmark_variant)
    return files_key(settings, resolved.landmark_variant, resolved.landmark, resolved.detector)


# Bump when the pose engine's output changes for the same model files (the torso outline: 2, the
# world landmarks: 3).
POSE_FORMAT = 3


def files_key(settings, name: str, landmark: Path, detector: Path) -> str:
    """model_key for model files given by path (a variant being judged need not be installed)."""
    digest = hashlib.sha256(f"pose-format-{POSE_FORMAT}".encode())
    digest.update(sha256_of(landmark).encode())
    digest.update(sha256_of(detector).encode())
    digest.update(settings.pose.model_dump_json().encode())
    return f"{name}-{digest.hexdigest()[:12]}"


class LazyEngine:
    """One pose engine, built on first use and shared by every pose source of a run. `build` makes
    another engine than the settings name (the model tooling judges variants and altered models)."""

    def __init__(self, settings, build: Optional[Callable[[], PoseEngine]] = None):
        self.settings = settings
        self._build = build or (lambda: PoseEngine.from_settings(settings))
        self._engine: Optional[PoseEngine] = None

    def __call__(self) -> PoseEngine:
        if self._engine is None:
            self._engine = self._build()
        return self._engine


def perturbed_frames(source: FrameSource, perturbation: Perturbation) -> Iterator[Frame]:
    """The frames of a decoded clip as the perturbed camera would deliver them (timestamps kept)."""
    stamped = perturbation.apply((frame.timestamp, frame.image) for frame in source)
    for index, (timestamp, rgb) in enumerate(stamped):
        yield Frame(timestamp, rgb, f"{source.source_id}+{perturbation.name}", index)


def clip_poses(engine: PoseEngine, clip: Path, perturbation: Optional[Perturbation] = None) -> list[Pose]:
    """Decode the clip, perturb it (drop frames by timestamp, transform the pixels) and run the
    engine's normal tracking over what is left."""
    with VideoFileSource(clip) as source:
        frames = perturbed_frames(source, perturbation) if perturbation else source
        return [pose for _, pose in iter_poses(engine, frames)]


def engine_poses(settings, cache: Optional[PoseCache], perturbation: Optional[Perturbation] = None,
                 engine: Optional[LazyEngine] = None) -> PoseSource:
    """Poses of a clip (perturbed or not) from the pose engine, through the cache when there is one."""
    engine = engine or LazyEngine(settings)
    key = perturbation.name if perturbation else None

    def poses(clip: Path) -> list[Pose]:
        if cache is not None and (cached := cache.load(clip, key)) is not None:
            return cached
        log.info("pose engine on %s%s", Path(clip).name, f" ({key})" if key else "")
        found = clip_poses(engine(), clip, perturbation)
        if cache is not None:
            cache.save(clip, found, key)
        return found

    return poses


class PoseRuns:
    """Poses of the labelled clips, as filmed or perturbed, from any pose engine through the pose
    cache: what `station models quantize` hands the model tooling (models/ may not import this
    package) so its coaching checks run the clips exactly as `station evaluate --perturb` does and
    share its cached poses."""

    perturbations = tuple(p.name for p in PERTURBATIONS)

    def __init__(self, settings, use_cache: bool = True):
        self.settings = settings
        self.use_cache = use_cache

    def source(self, build: Callable[[], PoseEngine], name: str, landmark: Path, detector: Path,
               perturbed: Optional[str] = None) -> PoseSource:
        """Poses per clip from the engine `build` makes; `name` and the files' bytes key the cache
        (name anything that changes the poses besides the files, e.g. an altered crop)."""
        cache = (PoseCache(self.settings.data_dir / "cache" / "poses", files_key(self.settings, name, landmark, detector))
                 if self.use_cache else None)
        return engine_poses(self.settings, cache, named_perturbation(perturbed) if perturbed else None, LazyEngine(self.settings, build))


# --- report -------------------------------------------------------------------------------------


def _fault_cell(faults: dict[str, dict[str, int]]) -> str:
    return ", ".join(f"{name} {c['tp']}/{c['fp']}/{c['fn']}" for name, c in faults.items()) or "-"


def print_by_source(rows: list[dict]) -> None:
    print_table([{**row, "faults": _fault_cell(row["faults"])} for row in rows],
                title="by source (tp/fp/fn summed over faults; faults: name tp/fp/fn)")


def _tagged(progress: Optional[Callable[[str], None]], tag: str) -> Optional[Callable[[str], None]]:
    """`progress` with each clip's line tagged (the perturbation it was run under)."""
    if progress is None:
        return None
    return lambda clip: progress(f"{clip} ({tag})")


def run_perturbations(labels, judge, base: Evaluation, settings, cache: Optional[PoseCache], engine: LazyEngine,
                      progress: Optional[Callable[[str], None]] = None) -> list[dict]:
    rows = []
    for perturbation in PERTURBATIONS:
        poses_of = engine_poses(settings, cache, perturbation, engine)
        perturbed = evaluate(labels, poses_of, judge, _tagged(progress, perturbation.name))
        row = compare_runs(perturbation.name, base, perturbed)
        rows.append({"perturbation": row.pop("perturbation"), "description": perturbation.description, **row})
    return rows


def print_perturbations(rows: list[dict]) -> None:
    print_table([{k: v for k, v in row.items() if k != "changed"} for row in rows],
                title="perturbations (unchanged: same rep count and same raised faults as the unperturbed run)")
    changed = [{"perturbation": row["perturbation"], **clip} for row in rows for clip in row["changed"]]
    print()
    print_table(changed, title="changed clips (per perturbation)")


def command(args: argparse.Namespace, settings: Settings) -> int:
    labels_path = args.labels or default_labels_path()
    if labels_path is None:
        raise LabelsError("no labels file given and ../shared/clips/labels.csv is not present: pass LABELS")
    labels = read_labels(labels_path)
    profiles_dir = settings.analysis.profiles_dir
    judge: Union[Profile, ProfileChooser]
    if args.profile:  # one profile for every clip
        judge = load_profile(args.profile, profiles_dir)
    else:  # each clip under its drill column (analysis.profile where a row names none)
        judge = drill_profiles(labels, settings.analysis.profile, profiles_dir)
    cache = None if args.no_cache else PoseCache(settings.data_dir / "cache" / "poses", model_key(settings))
    engine = LazyEngine(settings)
    progress = (lambda clip: print(f"evaluating {clip}", file=sys.stderr)) if sys.stderr.isatty() else None
    result = evaluate(labels, engine_poses(settings, cache, None, engine), judge, progress)
    clips, faults, totals = result.clip_rows(), result.fault_rows(), result.totals()
    print_table(clips, title=f"clips ({labels_path}, drill profile {result.profile})")
    print()
    print_table([{k: v for k, v in totals.items() if k not in ("verdicts", "profiles")}], title="total")
    print("verdicts (label->said): " + ", ".join(f"{k} {v}" for k, v in totals["verdicts"].items()))
    print("profiles (clips judged): " + ", ".join(f"{k} {v}" for k, v in totals["profiles"].items()))
    print()
    print_table(faults, title="faults (per clip: a label says the fault is somewhere in the clip)")
    evidence = result.evidence_rows()
    print()
    print_table(evidence, title="fault evidence (buzzed: past the limit by more than the noise; borderline: logged only)")
    print(f"\nanalysis_ms_per_frame: {totals['analysis_ms_per_frame']}")
    report: dict[str, Any] = {"labels": str(labels_path), "clips": clips, "total": totals, "faults": faults, "evidence": evidence}
    if args.by_source:
        report["by_source"] = result.by_source()
        print()
        print_by_source(report["by_source"])
    if args.perturb:
        report["perturbations"] = run_perturbations(labels, judge, result, settings, cache, engine, progress)
        print()
        print_perturbations(report["perturbations"])
    if args.json:
        write_json(args.json, report)
    return 0
