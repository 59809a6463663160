"""`station synth`: the rendered-athlete bench (models/synth), offline tooling.

`render` poses anny's body in every drill and fault of a set and writes clips, truth files and a
labels.csv (needs the [synth] extra: anny and torch, imported only inside models/synth). `report`
runs the station's own pose engine and analysis on them, through `station evaluate`'s pose cache,
and prints detection curves, false alarms, counts and angle errors against the truth.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from device.analysis.scoring import LabelsError, drill_profiles, read_labels
from device.commands.evaluate import LazyEngine, PoseCache, engine_poses, model_key
from device.commands.tables import print_table, write_json
from device.config import Settings
from device.errors import StationError


class SynthError(StationError):
    """The bench cannot run: the extra is missing, or the folder holds no rendered clips."""


def default_out(set_name: str) -> Path:
    """Rendered clips live in the user's cache, never in the repository."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "hinge-station" / "synth" / set_name


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def render(args: argparse.Namespace, settings: Settings) -> int:
    from device.commands.perturb import decimate
    from models.synth.report import select_specs
    from models.synth.sets import SETS, labels_row, write_labels

    try:
        from models.synth.body import BodyModel
        from models.synth.render import render_clip
        model = BodyModel()
    except ImportError as err:
        raise SynthError(str(err)) from None
    specs = select_specs(SETS[args.set](), args.only)
    if not specs:
        raise SynthError(f"no clip of the {args.set} set matches {args.only!r}")
    out = Path(args.out) if args.out else default_out(args.set)
    rows, files = [], []
    started = time.perf_counter()
    frames = 0
    for n, spec in enumerate(specs, start=1):
        t0 = time.perf_counter()
        stats = render_clip(spec, model, out, labels_row, decimate)
        seconds = time.perf_counter() - t0
        frames += stats.frames
        write_labels(out / "labels.csv", [f.row for f in stats.files])  # after each clip: a stopped run keeps what it made
        row = {"clip": spec.name, "drill": spec.drill, "swept": spec.swept or "-", "reps": len(spec.reps),
               "frames": stats.frames, "files": len(stats.files), "seconds": round(seconds, 1),
               "body_ms_per_frame": round(1000 * stats.body_s / stats.frames, 1),
               "raster_ms_per_frame": round(1000 * stats.raster_s / stats.frames, 1),
               "write_ms_per_frame": round(1000 * stats.write_s / stats.frames, 1)}
        rows.append(row)
        files += [{"clip": f.path.name, "fps": f.fps, "frames": f.frames} for f in stats.files]
        elapsed = time.perf_counter() - started
        _progress(f"[{n}/{len(specs)}] {spec.name}: {stats.frames} frames in {seconds:.1f} s "
                  f"(elapsed {elapsed / 60:.1f} min, about {elapsed / n * (len(specs) - n) / 60:.1f} min to go)")
    total = {"set": args.set, "out": str(out), "clips": len(specs), "files": len(files), "frames_rendered": frames,
             "seconds": round(time.perf_counter() - started, 1),
             "ms_per_frame": round(1000 * (time.perf_counter() - started) / frames, 1) if frames else None}
    print_table(rows, title=f"rendered ({out})")
    print()
    print_table([total], title="total")
    if args.json:
        write_json(args.json, {"clips": rows, "files": files, "total": total})
    return 0


def report(args: argparse.Namespace, settings: Settings) -> int:
    from models.synth import report as bench

    folder = Path(args.dir)
    labels = folder / "labels.csv"
    if not labels.is_file():
        raise SynthError(f"{folder} has no labels.csv: render a set into it first (station synth render --out {folder})")
    try:
        judge = drill_profiles(read_labels(labels), settings.analysis.profile, settings.analysis.profiles_dir)
    except LabelsError as err:
        raise SynthError(f"{labels}: {err}") from None
    cache = None if args.no_cache else PoseCache(settings.data_dir / "cache" / "poses", model_key(settings))
    poses_of = engine_poses(settings, cache, None, LazyEngine(settings))
    started = time.perf_counter()
    run = bench.run_bench(labels, poses_of, judge, args.only, _progress)
    if not run.clips:
        raise SynthError(f"no clip in {labels} matches {args.only!r}")
    tables = {
        **({"reps": bench.rep_rows(run)} if args.reps else {}),
        "by_drill": bench.by_drill(run), "by_view_fps": bench.by_view_fps(run), "false_alarms": bench.false_alarms(run),
        "counts": bench.counts(run), "angle_errors": bench.angle_errors(run), "definitions": bench.fault_definitions(),
    }
    total = {"clips": run.clips, "reps": len(run.reps), "frames": run.frames,
             "pose_ms_per_frame": round(1000 * run.pose_s / run.frames, 2) if run.frames else None,
             "analysis_ms_per_frame": round(1000 * run.analysis_s / run.frames, 3) if run.frames else None,
             "seconds": round(time.perf_counter() - started, 1), "faults_not_swept": ", ".join(bench.missed_faults())}
    titles = {
        "reps": "every true rep: faults present by definition, raised (buzzed) and borderline, counted",
        "by_drill": "detection per drill (side views, yaw <= 20, 30 fps): the severity from which the fault is raised "
                    "on 50% / 90% of reps; recall on reps past the definition; raised below it; clean reps alarmed",
        "by_view_fps": "detection per view (yaw bucket) and frame rate, all drills (curve: severity: raised/reps)",
        "false_alarms": "clean renders: reps with any fault buzzed",
        "counts": "rep counts (matched: a counted rep's deepest point inside a true rep)",
        "angle_errors": "measured minus truth (analysis Angles vs the station-defined truth; degrees or leg lengths)",
        "definitions": "fault definitions of the truth (the labels' faults column)",
    }
    for name, rows in tables.items():
        print_table(rows, title=titles[name])
        print()
    print_table([total], title="total (pose_ms_per_frame: pose engine, or reading the pose cache)")
    if args.json:
        write_json(args.json, {"labels": str(labels), "total": total, **tables})
    return 0
