"""The clip sets: `small` (a handful, rendered in CI and checked verdict by verdict) and `full` (the sweep).

The full sweep is sized for a 2-core machine (render and report in well under 90 minutes): each clip
has 3 reps (4 where two faults share a sweep), each rep its own severity, so one clip is three points
of a detection curve; every drill gets a clean clip (the false-alarm side) and a clip per fault
sweep that applies to it; views, bodies, clothes, camera heights and distances vary across clips
from a fixed seed; every clip is also written at 15 and 10 fps (frames dropped by timestamp).

A labels row per file follows ../shared/README.md's format (clip, movement, view, reps, faults,
source_labels, notes, drill) plus: source ("synth"), swept, severity (the clip's gravest, in its
unit), severity_unit, rep_severity (each rep's, `;`-separated), yaw_deg, camera_height_m,
distance_m, fps, body, mirrored.
"""
from __future__ import annotations

import csv
import math
import random
from pathlib import Path
from typing import Any, Iterable

from models.synth.camera import Placement
from models.synth.motion import DRILLS, RepPlan
from models.synth.render import BODIES, ClipSpec

LABEL_COLUMNS = ("clip", "movement", "view", "reps", "faults", "source_labels", "notes", "drill", "source", "swept",
                 "severity", "severity_unit", "rep_severity", "yaw_deg", "camera_height_m", "distance_m", "fps", "body",
                 "mirrored")

# Each sweep: its signed per-rep parameter as the labels show it, and its unit.
SWEEPS = {
    "spine": ("spine flexion (lumbar + thoracic) at the bottom", "deg"),
    "knee_share": ("knee flexion / (hip + knee flexion) at the bottom", "share"),
    "neck": ("neck flexion (+) or extension (-)", "deg"),
    "lockout": ("hip extension at the top: - hips left bent, + leaning back", "deg"),
    "load": ("load ahead of mid-foot at its furthest", "leg lengths"),
    "tempo": ("lowering time", "s"),
}

# The drills whose profile prescribes a tempo get the tempo sweep; the loaded ones the load sweep.
TEMPO_DRILLS = ("wall_tap_hinge", "dowel_hinge", "cable_pulled_hinge", "sternum_loaded_hinge", "hands_behind_head_hinge",
                "band_resisted_hinge", "pull_through", "romanian_deadlift", "kettlebell_deadlift")
PROFILE_DRILLS = ("hinge", "wall_tap_hinge", "dowel_hinge", "cable_pulled_hinge", "sternum_loaded_hinge",
                  "hands_behind_head_hinge", "band_resisted_hinge", "pull_through", "romanian_deadlift",
                  "kettlebell_deadlift", "deadlift")


def rep_parameter(sweep: str, rep: RepPlan, severity: dict) -> float:
    """The signed per-rep value a labels row shows for its sweep."""
    if sweep == "spine":
        return severity["spine_flexion"]
    if sweep == "knee_share":
        return severity["knee_share"]
    if sweep == "neck":
        return rep.neck
    if sweep == "lockout":
        return rep.lockout
    if sweep == "load":
        return severity["load_forward"]
    if sweep == "tempo":
        return severity["lowering_s"]
    return math.nan


def labels_row(spec: ClipSpec, fps: int, header: dict) -> dict:
    """The labels row of one rendered file (see the module docstring)."""
    drill = DRILLS[spec.drill]
    reps = header["reps"]
    faults = sorted({f for r in reps for f in r["faults"]})
    values = [rep_parameter(spec.swept, RepPlan(**r["plan"]), r["severity"]) for r in reps] if spec.swept else []
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if spec.swept in ("neck", "lockout"):
        gravest = max(finite, key=abs) if finite else math.nan
    elif spec.swept == "tempo":
        gravest = min(finite) if finite else math.nan
    else:
        gravest = max(finite) if finite else math.nan
    yaw = spec.placement.yaw_deg
    per_rep = "; ".join(f"rep {r['rep']}: {', '.join(r['faults']) or 'clean'}" for r in reps)
    return {
        "clip": spec.file_name(fps), "movement": drill.movement, "view": "side" if yaw < 30 else "oblique",
        "reps": len(reps), "faults": ";".join(faults),
        "source_labels": f"rendered {drill.name}, {SWEEPS[spec.swept][0] + ' swept' if spec.swept else 'clean'}",
        "notes": f"{per_rep}{'; ' + spec.notes if spec.notes else ''}", "drill": drill.profile, "source": "synth",
        "swept": spec.swept, "severity": _fmt(gravest), "severity_unit": SWEEPS[spec.swept][1] if spec.swept else "",
        "rep_severity": ";".join(_fmt(v) for v in values), "yaw_deg": _fmt(yaw),
        "camera_height_m": _fmt(spec.placement.height_m), "distance_m": _fmt(spec.placement.distance_m), "fps": fps,
        "body": spec.body, "mirrored": "yes" if spec.mirrored else "no",
    }


def _fmt(value: float) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.3g}"


def write_labels(path: Path, rows: Iterable[dict]) -> None:
    """Write (or rewrite) the labels file; rows of clips rendered earlier into the same folder and
    not rendered again are kept, so a subset can be re-rendered."""
    rows = list(rows)
    kept: dict[str, dict] = {}
    if path.is_file():
        with path.open(newline="") as fh:
            kept = {r["clip"]: r for r in csv.DictReader(fh)}
    for row in rows:
        kept[row["clip"]] = row
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LABEL_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for clip in sorted(kept):
            writer.writerow(kept[clip])


# --- the small set -------------------------------------------------------------------------------

def small_set() -> list[ClipSpec]:
    """Seven clips, two reps each, every verdict checked in CI (tests/test_synth_small.py)."""
    side = Placement(0.0, 1.0, 3.0)
    clean = (RepPlan(), RepPlan())
    return [
        ClipSpec("small_hinge_clean", "hinge", clean, body="m_average", clothes=0, placement=side, fps=(30, 10),
                 notes="also written at 10 fps"),
        ClipSpec("small_deep_hinge_clean", "hinge", (RepPlan(hip=115), RepPlan(hip=120)), body="f_average", clothes=1,
                 placement=side, notes="neutral spine at 115 and 120 degrees of hip flexion"),
        ClipSpec("small_rounding_gross", "hinge", (RepPlan(lumbar=30, thoracic=30),) * 2, swept="spine", body="m_average",
                 clothes=2, placement=side),
        ClipSpec("small_squatting_gross", "hinge", (RepPlan(knee_share=0.6),) * 2, swept="knee_share", body="f_average",
                 clothes=3, placement=side),
        ClipSpec("small_lean_back", "hinge", (RepPlan(lockout=30),) * 2, swept="lockout", body="m_average", clothes=4,
                 placement=side),
        ClipSpec("small_short_lockout", "hinge", (RepPlan(lockout=-25),) * 2, swept="lockout", body="f_average",
                 clothes=5, placement=side),
        ClipSpec("small_hinge_clean_yaw20", "hinge", clean, body="m_tall_heavy", clothes=6,
                 placement=Placement(20.0, 1.0, 3.4)),
    ]


# --- the full sweep ------------------------------------------------------------------------------

SIDE_YAWS = (0.0, 10.0, 20.0)
OBLIQUE_YAWS = (30.0, 45.0, 60.0)


def _levels(sweep: str, drill: str, tempo_s: float) -> list[RepPlan]:
    """The reps of one drill's sweep: from just clean to gross, across the fault's definition."""
    if sweep == "spine":  # lumbar alone, thoracic alone, both
        return [RepPlan(lumbar=20), RepPlan(thoracic=35), RepPlan(lumbar=25, thoracic=25)]
    if sweep == "knee_share":
        if DRILLS[drill].start == "floor":  # a floor pull's own share is ~0.35-0.4 (truth.py)
            return [RepPlan(knee_share=0.42), RepPlan(knee_share=0.52), RepPlan(knee_share=0.6)]
        return [RepPlan(knee_share=0.3), RepPlan(knee_share=0.42), RepPlan(knee_share=0.55)]
    if sweep == "neck":
        return [RepPlan(neck=20), RepPlan(neck=40), RepPlan(neck=-40)]
    if sweep == "lockout":
        return [RepPlan(lockout=-25), RepPlan(lockout=12), RepPlan(lockout=28)]
    if sweep == "load":
        return [RepPlan(load_forward=0.06), RepPlan(load_forward=0.12), RepPlan(load_forward=0.2)]
    if sweep == "tempo":
        return [RepPlan(lowering_s=round(tempo_s * f, 2)) for f in (0.35, 0.65, 0.9)]
    raise KeyError(sweep)


def full_set(seed: int = 21) -> list[ClipSpec]:
    """The sweep: per drill a clean clip and each applicable fault sweep, plus a dense spine and
    lockout sweep on the plain hinge, a deep neutral hinge, squats, and oblique views (squats judged there in 3D)."""
    from models.synth.render import tempo_of

    rng = random.Random(seed)
    bodies = list(BODIES)
    specs: list[ClipSpec] = []
    counter = [0]

    def place(yaws: tuple[float, ...]) -> Placement:
        return Placement(rng.choice(yaws), round(rng.uniform(0.5, 1.8), 2), round(rng.uniform(2.8, 4.0), 2))

    def add(name: str, drill: str, reps: list[RepPlan], swept: str = "", yaws: tuple[float, ...] = SIDE_YAWS,
            **kwargs: Any) -> None:
        counter[0] += 1
        specs.append(ClipSpec(name, drill, tuple(reps), swept=swept, body=bodies[counter[0] % len(bodies)],
                              clothes=counter[0], placement=kwargs.pop("placement", None) or place(yaws),
                              mirrored=counter[0] % 4 == 0, fps=(30, 15, 10), **kwargs))

    for drill in PROFILE_DRILLS:
        tempo = tempo_of(drill)
        clean_tempo = tempo or DRILLS[drill].lowering_s
        extra: dict[str, Any] = {"wall_m": 0.10} if drill == "wall_tap_hinge" else {}
        if drill == "band_resisted_hinge":
            extra = {"band_side": "front"}
        add(f"{drill}_clean", drill, [RepPlan()] * 3, **extra)
        for sweep in ("spine", "knee_share", "neck", "lockout"):
            add(f"{drill}_{sweep}", drill, _levels(sweep, drill, clean_tempo), sweep, **extra)
        if DRILLS[drill].load:
            add(f"{drill}_load", drill, _levels("load", drill, clean_tempo), "load", **extra)
        if tempo is not None:
            add(f"{drill}_tempo", drill, _levels("tempo", drill, tempo), "tempo", **extra)
    # the wall tap at other distances, and the band from behind
    add("wall_tap_hinge_clean_far", "wall_tap_hinge", [RepPlan()] * 3, wall_m=0.18)
    add("band_resisted_hinge_clean_behind", "band_resisted_hinge", [RepPlan()] * 3, band_side="behind")
    # the plain hinge swept finely: both parts of the spine at each side view, each part alone side-on,
    # the lockout both ways
    for yaw in SIDE_YAWS:
        placement = Placement(yaw, round(rng.uniform(0.8, 1.2), 2), 3.2)
        add(f"hinge_spine_fine_yaw{int(yaw)}", "hinge", [RepPlan(lumbar=s / 2, thoracic=s / 2) for s in (20, 30, 45)], "spine",
            placement=placement)
        add(f"hinge_lockout_fine_yaw{int(yaw)}", "hinge", [RepPlan(lockout=e) for e in (-30, -18, -10, 18, 30)], "lockout",
            placement=placement)
    add("hinge_lumbar_fine", "hinge", [RepPlan(lumbar=s) for s in (15, 30, 45)], "spine", placement=Placement(0.0, 1.0, 3.2))
    add("hinge_thoracic_fine", "hinge", [RepPlan(thoracic=s) for s in (15, 30, 45)], "spine", placement=Placement(0.0, 1.0, 3.2))
    add("hinge_neck_fine", "hinge", [RepPlan(neck=n) for n in (15, 30, -15, -30)], "neck", placement=Placement(0.0, 1.0, 3.2))
    # a deep hinge with a neutral spine: never a rounded back
    add("hinge_deep_clean", "hinge", [RepPlan(hip=h) for h in (100, 115, 120)])
    add("hinge_deep_clean_yaw20", "hinge", [RepPlan(hip=h) for h in (110, 120, 120)], placement=Placement(20.0, 1.0, 3.4))
    # squats for contrast, side-on and 20 degrees off
    add("squat_side", "squat", [RepPlan()] * 3, placement=Placement(0.0, 1.0, 3.2))
    add("squat_yaw20", "squat", [RepPlan()] * 3, placement=Placement(20.0, 0.9, 3.4))
    # oblique views: counted, and judged for no fault but a squat (a clean and a faulty clip each way)
    for drill in ("hinge", "romanian_deadlift"):
        add(f"{drill}_clean_oblique", drill, [RepPlan()] * 3, yaws=OBLIQUE_YAWS)
        add(f"{drill}_spine_oblique", drill, _levels("spine", drill, 1.2), "spine", yaws=OBLIQUE_YAWS)
    # ...but for a squat, judged in 3D there (rules.SquatSeenObliquely): 40 degrees off side-on, past the
    # view meter's oblique limit and short of face-on; a floor pull and a hinge, clean and squatted
    placement = Placement(40.0, 1.0, 3.4)
    add("squat_oblique40", "squat", [RepPlan()] * 3, placement=placement)
    for drill in ("hinge", "kettlebell_deadlift"):
        tempo = tempo_of(drill) or DRILLS[drill].lowering_s
        add(f"{drill}_clean_oblique40", drill, [RepPlan()] * 3, placement=placement)
        add(f"{drill}_knee_share_oblique40", drill, _levels("knee_share", drill, tempo), "knee_share", placement=placement)
    return specs


SETS = {"small": small_set, "full": full_set}
