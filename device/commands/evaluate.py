"""`station evaluate`: replay labelled clips through the pose engine and score the analysis.

Poses are the slow part, so they are cached per clip as JSON lines keyed by the clip's and the
landmark model's content and the pose settings; the analysis always runs fresh (the scoring itself
lives in device.analysis.scoring, which works on any poses).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

from device.analysis.profiles import load_profile
from device.analysis.scoring import LabelsError, PoseSource, evaluate, read_labels
from device.capture import VideoFileSource
from device.commands.tables import print_table, write_json
from device.config import Settings
from device.fileio import sha256_of
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
    """Poses per clip as JSON lines, named by clip content + model + pose settings."""

    def __init__(self, directory: Path, model_key: str):
        self.directory = Path(directory)
        self.model_key = model_key

    def path(self, clip: Path) -> Path:
        return self.directory / f"{Path(clip).stem}-{sha256_of(clip)[:16]}-{self.model_key}.jsonl"

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
    resolved = resolve_models(settings.models_dir, settings.models.landmark_variant)
    digest = hashlib.sha256(sha256_of(resolved.landmark).encode())
    digest.update(sha256_of(resolved.detector).encode())
    digest.update(settings.pose.model_dump_json().encode())
    return f"{resolved.landmark_variant}-{digest.hexdigest()[:12]}"


def engine_poses(settings, cache: Optional[PoseCache]) -> PoseSource:
    """Poses of a clip from the pose engine, through the cache when there is one."""
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


def command(args: argparse.Namespace, settings: Settings) -> int:
    labels_path = args.labels or default_labels_path()
    if labels_path is None:
        raise LabelsError("no labels file given and ../shared/clips/labels.csv is not present: pass LABELS")
    labels = read_labels(labels_path)
    profile = load_profile(args.profile or settings.analysis.profile, settings.analysis.profiles_dir)
    cache = None if args.no_cache else PoseCache(settings.data_dir / "cache" / "poses", model_key(settings))
    progress = (lambda clip: print(f"evaluating {clip}", file=sys.stderr)) if sys.stderr.isatty() else None
    result = evaluate(labels, engine_poses(settings, cache), profile, progress)
    clips, faults, totals = result.clip_rows(), result.fault_rows(), result.totals()
    print_table(clips, title=f"clips ({labels_path}, drill profile {profile.name})")
    print()
    print_table([{k: v for k, v in totals.items() if k != "verdicts"}], title="total")
    print("verdicts (label->said): " + ", ".join(f"{k} {v}" for k, v in totals["verdicts"].items()))
    print()
    print_table(faults, title="faults (per clip: a label says the fault is somewhere in the clip)")
    print(f"\nanalysis_ms_per_frame: {totals['analysis_ms_per_frame']}")
    if args.json:
        write_json(args.json, {"labels": str(labels_path), "clips": clips, "total": totals, "faults": faults})
    return 0
