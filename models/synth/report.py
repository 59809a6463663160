"""The bench's report: the station's own pose engine and analysis on rendered clips, against the truth.

Everything the station decides comes from `station evaluate`'s machinery: its labels reader, its
pose source (the pose engine through the same pose cache, handed in by the command), each clip
judged under its drill profile by device.analysis.scoring, and scoring's per-rep matching
(`rep_verdicts`). So a change to the pose engine, the kinematics or a fault rule shows up here on the
next run, and only the poses of clips not yet seen (or of a changed model) are computed again.

What it adds is the truth: each rep's severities (the truth file's header) and each frame's angles.
- Detection curves, per fault quantity: at each severity level, the share of reps on which the
  fault the quantity grades was raised (buzzed). The 50% (90%) severity is the least level from
  which every graver level is raised on at least 50% (90%) of its reps; "never" when the gravest
  level is not. Per drill on the side views (yaw <= 20) at 30 fps, and per view and frame rate
  over all drills.
- False alarms: the share of clean reps (of clips rendered clean, and with no fault by the truth's
  definitions: a squat done at the hinge station is a clip rendered clean with the fault
  squatting_the_hinge) on which any fault buzzed.
- Counts: true reps against reps the station counted in each rep's window.
- Angle errors: the analysis' per-frame Angles minus the station-defined truth (median of the
  signed error, 95th percentile of its size).
"""
from __future__ import annotations

import csv
import fnmatch
import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from device.analysis.scoring import LabelledClip, PoseSource, ProfileChooser, evaluate_clip, read_labels, rep_verdicts
from device.analysis.vocabulary import Fault
from device.stats import percentile
from models.synth.truth import FAULT_DEFINITIONS

# Which true reps a quantity's curve is drawn from: the reps of clips that sweep it (and clean
# clips, its zero), where the rep's other faults are absent.
SWEPT_BY = {
    "spine_flexion": ("spine",), "lumbar_flexion": ("spine",), "thoracic_flexion": ("spine",),
    "knee_share": ("knee_share",), "neck_flexion": ("neck",), "neck_extension": ("neck",),
    "lockout_short": ("lockout",), "lockout_over": ("lockout",), "load_forward": ("load",), "lowering_s": ("tempo",),
}
# Measured Angles field -> the truth file's station-defined truth of the same quantity.
ANGLE_TRUTH = {
    "hip_flexion_deg": "station_hip_flexion_deg", "knee_flexion_deg": "station_knee_flexion_deg",
    "trunk_deg": "station_trunk_deg", "thigh_deg": "station_thigh_deg", "shin_deg": "station_shin_deg",
    "head_offset_deg": "station_head_offset_deg", "hip_shift": "station_hip_shift", "load_forward": "station_load_forward",
}
YAW_BUCKETS = ((5.0, "0"), (15.0, "10"), (25.0, "20"), (37.5, "30"), (52.5, "45"), (math.inf, "60"))
SIDE_MAX_YAW = 20.0


def yaw_bucket(yaw: float) -> str:
    return next(name for edge, name in YAW_BUCKETS if yaw < edge)


@dataclass
class RepRecord:
    """One true rep of one clip file, with what the station said."""

    clip: str
    drill: str
    swept: str
    yaw: float
    fps: int
    severity: dict[str, Any]  # quantity -> value (None where it does not apply, e.g. no load)
    present: frozenset[str]
    counted: bool
    movement: str
    raised: frozenset[str]
    borderline: frozenset[str]

    @property
    def view(self) -> str:
        return yaw_bucket(self.yaw)

    @property
    def clean(self) -> bool:
        """A rep of a clip rendered clean, with no fault by the truth's definitions."""
        return not self.swept and not self.present


@dataclass
class BenchRun:
    reps: list[RepRecord] = field(default_factory=list)
    # quantity -> view -> signed errors
    errors: dict[str, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    clips: int = 0
    frames: int = 0
    pose_s: float = 0.0
    analysis_s: float = 0.0
    counts: list[dict] = field(default_factory=list)


def read_truth(path: Path) -> tuple[dict, list[dict]]:
    with path.open() as fh:
        lines = [json.loads(line) for line in fh if line.strip()]
    if not lines or "clip" not in lines[0]:
        raise ValueError(f"{path}: not a bench truth file (no header line)")
    return lines[0], lines[1:]


def matches(name: str, only: Optional[str]) -> bool:
    """Whether a clip name matches `--only`: a glob, or a plain word found anywhere in the name."""
    if not only:
        return True
    return fnmatch.fnmatch(name, only if any(c in only for c in "*?[") else f"*{only}*")


def select(labels: list[LabelledClip], only: Optional[str]) -> list[LabelledClip]:
    """The labelled clips whose file name matches `only`."""
    return [label for label in labels if matches(label.clip, only)]


def run_bench(labels_path: Path, poses_of: PoseSource, judge: ProfileChooser, only: Optional[str] = None,
              progress: Optional[Callable[[str], None]] = None) -> BenchRun:
    """Every selected clip through the pose source and its drill's analysis, matched to its truth."""
    labels = select(read_labels(labels_path), only)
    extra = _extra_columns(labels_path)
    run = BenchRun()
    for n, label in enumerate(labels, start=1):
        if progress:
            progress(f"[{n}/{len(labels)}] {label.clip}")
        header, frames = read_truth(label.path.parent / (Path(label.clip).stem + ".truth.jsonl"))
        started = time.perf_counter()
        poses = poses_of(label.path)
        run.pose_s += time.perf_counter() - started
        result = evaluate_clip(label, poses, judge(label), keep_angles=True)
        run.clips += 1
        run.frames += result.frames
        run.analysis_s += result.analysis_s
        windows = [(r["start"], r["end"]) for r in header["reps"]]
        verdicts = rep_verdicts(result, windows)
        row = extra.get(label.clip, {})
        fps = int(float(row.get("fps") or header.get("fps") or 30))
        yaw = float(header["camera"]["yaw_deg"])
        for meta, verdict in zip(header["reps"], verdicts):
            run.reps.append(RepRecord(label.clip, label.drill or header["profile"], header.get("swept", ""), yaw, fps,
                                      meta["severity"], frozenset(meta["faults"]), verdict.counted, verdict.movement,
                                      frozenset(f.value for f in verdict.raised), frozenset(f.value for f in verdict.borderline)))
        run.counts.append({"clip": label.clip, "drill": label.drill, "fps": fps, "view": yaw_bucket(yaw),
                           "reps_true": label.reps, "reps_counted": len(result.reps),
                           "reps_matched": sum(v.counted for v in verdicts)})
        _angle_errors(run, result.angles, frames, fps, yaw_bucket(yaw))
    return run


def _extra_columns(labels_path: Path) -> dict[str, dict]:
    with Path(labels_path).open(newline="", encoding="utf-8-sig") as fh:
        return {row["clip"]: row for row in csv.DictReader(fh)}


def _angle_errors(run: BenchRun, angles, frames: list[dict], fps: int, view: str) -> None:
    if not frames:
        return
    times = np.array([f["time"] for f in frames])
    for a in angles:
        if not a.reliable:
            continue
        k = int(np.argmin(np.abs(times - a.time)))
        if abs(times[k] - a.time) > 0.5 / fps:
            continue
        truth = frames[k]["truth"]
        for name, key in ANGLE_TRUTH.items():
            measured, true = getattr(a, name), truth.get(key)
            if true is not None and math.isfinite(measured):
                run.errors[name][view].append(measured - true)
        hip = truth.get("hip_flexion_anatomical_deg")
        if hip is not None and math.isfinite(a.hip_flexion_deg):
            run.errors["hip_flexion_deg vs anatomical"][view].append(a.hip_flexion_deg - hip)


# --- tables ------------------------------------------------------------------------------------


def _fault_of(quantity: str) -> str:
    return FAULT_DEFINITIONS[quantity].fault


def curve_reps(reps: list[RepRecord], quantity: str) -> list[RepRecord]:
    """The reps a quantity's curve is drawn from (see SWEPT_BY): its sweeps' reps whose only
    graded parameter is this one, and clean clips' reps."""
    out = []
    for r in reps:
        if r.swept and r.swept not in SWEPT_BY[quantity]:
            continue
        value = r.severity.get(quantity)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if quantity == "lumbar_flexion" and (r.severity.get("thoracic_flexion") or 0) > 0:
            continue
        if quantity == "thoracic_flexion" and (r.severity.get("lumbar_flexion") or 0) > 0:
            continue
        if quantity in ("neck_flexion", "neck_extension", "lockout_short", "lockout_over"):
            other = {"neck_flexion": "neck_extension", "neck_extension": "neck_flexion",
                     "lockout_short": "lockout_over", "lockout_over": "lockout_short"}[quantity]
            if (r.severity.get(other) or 0) > 0:
                continue
        out.append(r)
    return out


def detection(reps: list[RepRecord], quantity: str) -> dict:
    """The detection curve's summary for one quantity over some reps."""
    definition = FAULT_DEFINITIONS[quantity]
    fault = definition.fault
    levels: dict[float, list[bool]] = defaultdict(list)
    for r in reps:
        levels[round(float(r.severity[quantity]), 3) + 0.0].append(fault in r.raised)  # + 0.0: no "-0" level
    order = sorted(levels, reverse=definition.worse < 0)  # mildest first

    def threshold(share: float) -> Optional[float]:
        found = None
        for level in reversed(order):  # gravest first
            if sum(levels[level]) / len(levels[level]) >= share:
                found = level
            else:
                break
        return found

    present = [r for r in reps if fault in r.present]
    below = [r for r in reps if fault not in r.present]
    return {
        "fault": fault, "quantity": quantity, "unit": definition.unit, "limit": definition.limit if quantity != "lowering_s" else None,
        "reps": len(reps), "levels": len(order),
        "raised_50": _level(threshold(0.5)), "raised_90": _level(threshold(0.9)),
        "recall_present": _share(sum(fault in r.raised for r in present), len(present)),
        "raised_below_limit": _share(sum(fault in r.raised for r in below), len(below)),
        "curve": {f"{level:g}": f"{sum(levels[level])}/{len(levels[level])}" for level in order},
    }


def _level(value: Optional[float]) -> str:
    return "never" if value is None else f"{value:g}"


def _share(k: int, n: int) -> Optional[str]:
    return f"{k}/{n}" if n else None


QUANTITIES = ("spine_flexion", "lumbar_flexion", "thoracic_flexion", "knee_share", "neck_flexion", "neck_extension",
              "lockout_short", "lockout_over", "load_forward", "lowering_s")


def by_drill(run: BenchRun) -> list[dict]:
    """Per drill (side views, 30 fps): each quantity's detection, and the drill's clean false alarms."""
    rows = []
    side = [r for r in run.reps if r.yaw <= SIDE_MAX_YAW and r.fps == 30]
    for drill in sorted({r.drill for r in side}):
        mine = [r for r in side if r.drill == drill]
        clean = [r for r in mine if r.clean]
        for quantity in QUANTITIES:
            reps = curve_reps(mine, quantity)
            if not any(r.swept for r in reps):
                continue
            rows.append({"drill": drill, **{k: v for k, v in detection(reps, quantity).items() if k != "curve"},
                         "clean_false_alarm": _share(sum(bool(r.raised) for r in clean), len(clean))})
    return rows


def by_view_fps(run: BenchRun) -> list[dict]:
    """Per quantity, view and frame rate, over all drills."""
    rows = []
    for quantity in QUANTITIES:
        reps = curve_reps(run.reps, quantity)
        for view in sorted({r.view for r in reps}, key=float):
            for fps in sorted({r.fps for r in reps}, reverse=True):
                group = [r for r in reps if r.view == view and r.fps == fps]
                if any(r.swept for r in group):
                    row = detection(group, quantity)
                    rows.append({"quantity": quantity, "view": view, "fps": fps,
                                 **{k: v for k, v in row.items() if k not in ("quantity", "curve", "unit", "limit")},
                                 "curve": " ".join(f"{k}:{v}" for k, v in row["curve"].items())})
    return rows


def false_alarms(run: BenchRun) -> list[dict]:
    """Clean reps with any fault buzzed, per drill / view / frame rate, and which faults."""
    rows = []
    clean = [r for r in run.reps if r.clean]
    groups: dict[tuple[str, str, int], list[RepRecord]] = defaultdict(list)
    for r in clean:
        groups[(r.drill, r.view, r.fps)].append(r)
    for (drill, view, fps), reps in sorted(groups.items(), key=lambda kv: (kv[0][0], float(kv[0][1]), -kv[0][2])):
        raised: dict[str, int] = defaultdict(int)
        for r in reps:
            for f in r.raised:
                raised[f] += 1
        rows.append({"drill": drill, "view": view, "fps": fps, "reps": len(reps),
                     "false_alarm_reps": sum(bool(r.raised) for r in reps),
                     "counted": sum(r.counted for r in reps),
                     "faults": ", ".join(f"{k} {v}" for k, v in sorted(raised.items())) or "-"})
    return rows


def counts(run: BenchRun) -> list[dict]:
    """True reps against counted ones, per drill and frame rate (side and oblique views)."""
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for c in run.counts:
        groups[(c["drill"], c["fps"])].append(c)
    return [{"drill": drill, "fps": fps, "clips": len(cs), "reps_true": sum(c["reps_true"] for c in cs),
             "reps_counted": sum(c["reps_counted"] for c in cs), "reps_matched": sum(c["reps_matched"] for c in cs),
             "clips_exact": sum(c["reps_counted"] == c["reps_true"] for c in cs)}
            for (drill, fps), cs in sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[0][1]))]


def angle_errors(run: BenchRun) -> list[dict]:
    """Measured minus truth per quantity and view: median (signed) and 95th percentile of the size."""
    rows = []
    for name, per_view in run.errors.items():
        for view in sorted(per_view, key=float):
            values = per_view[view]
            if not values:
                continue
            rows.append({"quantity": name, "view": view, "frames": len(values),
                         "median": percentile(values, 50, 3), "p95_abs": percentile([abs(v) for v in values], 95, 3)})
    return rows


def fault_definitions() -> list[dict]:
    return [{"quantity": q, "fault": d.fault, "limit": d.limit if q != "lowering_s" else "drill tempo", "unit": d.unit,
             "source": d.source} for q, d in FAULT_DEFINITIONS.items()]


def missed_faults() -> list[str]:
    """Fault names no sweep grades (the report says so rather than leaving them out silently)."""
    graded = {d.fault for d in FAULT_DEFINITIONS.values()}
    return sorted(f.value for f in Fault if f.value not in graded)


def select_specs(specs: list, only: Optional[str]) -> list:
    """The clip specs whose name matches `only`, as `select` does for labelled clips."""
    return [s for s in specs if matches(s.name, only)]


def rep_rows(run: BenchRun) -> list[dict]:
    """Every true rep: what the truth says is present and what the station raised."""
    return [{"clip": r.clip, "drill": r.drill, "view": r.view, "fps": r.fps, "swept": r.swept or "-",
             "present": ";".join(sorted(r.present)) or "-", "raised": ";".join(sorted(r.raised)) or "-",
             "borderline": ";".join(sorted(r.borderline)) or "-", "counted": r.counted, "movement": r.movement or "-"}
            for r in run.reps]
