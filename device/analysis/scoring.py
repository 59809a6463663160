"""Scoring the analysis against labelled clips (the work behind `station evaluate`).

Per clip: true vs counted reps, the hinge-vs-squat verdict vs the label, faults labelled vs raised;
in total: clips counted exactly, verdicts right, and per fault precision and recall over clips (a
label says a fault is present somewhere in a clip, so a clip is the unit). Each clip is judged under
one drill profile: one for all clips, or each clip's own `drill` (see `drill_profiles`). The same
numbers can be grouped by the clips' source (`by_source`), and two runs over the same clips (a clip
and a perturbed copy of it) compared clip by clip (`compare_runs`). A clip's raised faults
are every fault the athlete would have heard, including during a lowering that did not become a
counted rep.

The labels file is the CSV described in ../shared/README.md. Poses come from a PoseSource (the pose
engine through a cache in device.commands.evaluate, or another model's keypoints in the tests); the
analysis always runs fresh and its cost per frame is measured.
"""
from __future__ import annotations

import csv
import io
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union


from device.analysis.analyzer import HingeAnalyzer
from device.analysis.kinematics import Angles
from device.errors import StationError
from device.analysis.vocabulary import Fault, FaultEvent, Rep, fault_from_name
from device.pose.landmarks import Pose
from device.analysis.profiles import Profile, load_profile

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
    source: str = ""  # where the clip came from (the `source` column); empty: see clip_source()
    # False for a clip whose form is not good although no station fault names what is wrong with it
    # (the shared set's "hips rise first" kettlebell pulls): its faults count neither as false alarms
    # nor as misses. Reps and verdicts are still scored.
    faults_scored: bool = True


# How the shared labels mark such a clip in its notes, when there is no `faults_scored` column.
UNSCORED_NOTE = "not a good-form clip"


def faults_scored(row: dict) -> bool:
    """A labels row's `faults_scored` column ("no" excludes the clip's faults from scoring), else
    whether its notes say the clip is not a good-form clip (../shared/README.md)."""
    column = (row.get("faults_scored") or "").strip().lower()
    if column:
        return column not in ("no", "false", "0")
    return UNSCORED_NOTE not in (row.get("notes") or "").lower()


def clip_source(label: LabelledClip) -> str:
    """The labels' `source` column when given, else the clip file name's first `_`-separated token
    (`jeffchen_deadlift_side_good_1rep.mp4` -> `jeffchen`)."""
    return label.source or Path(label.clip).stem.split("_")[0]


def read_labels(path: Path) -> list[LabelledClip]:
    """Parse the labels CSV; every problem names the row and the column."""
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"labels file {path} does not exist (pass the path to a labels.csv, see ../shared/README.md)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise LabelsError(f"{path} is not a text CSV file (it does not read as UTF-8); "
                          "pass a labels.csv as in ../shared/README.md") from None
    except OSError as err:
        raise LabelsError(f"cannot read labels file {path}: {err.strerror}") from None
    with io.StringIO(text, newline="") as fh:
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
                                    view, (row.get("drill") or "").strip(), (row.get("source") or "").strip(),
                                    faults_scored(row)))
    if not out:
        raise LabelsError(f"{path}: no clips listed")
    return out


# --- which profile judges a clip -----------------------------------------------------------------

# a clip's label -> the drill profile it is judged under
ProfileChooser = Callable[[LabelledClip], Profile]


def drill_profiles(labels: list[LabelledClip], default: str, profiles_dir: Optional[Path] = None) -> ProfileChooser:
    """Each clip judged under its own `drill` (the default profile where a row names none). Every
    drill named is loaded up front, so a drill with no profile is an error naming the clip."""
    loaded: dict[str, Profile] = {}
    for label in labels:
        name = label.drill or default
        if name not in loaded:
            try:
                loaded[name] = load_profile(name, profiles_dir)
            except StationError as err:
                raise LabelsError(f"clip {label.clip}: drill: {err}") from None
    return lambda label: loaded[label.drill or default]


# --- analysis and scores ------------------------------------------------------------------------


def fault_names(faults: Iterable[Fault]) -> str:
    """Faults as the tables show them: sorted names joined by `;`, `-` for none."""
    return ";".join(sorted(f.value for f in faults)) or "-"


@dataclass
class ClipResult:
    label: LabelledClip
    frames: int
    reps: list[Rep]
    faults: frozenset[Fault]
    analysis_s: float
    profile: str = ""  # the drill profile that judged the clip
    # Every fault that buzzed and every borderline one (crossed its limit within its noise), with
    # its evidence: value, limit, margin, noise.
    evidence: tuple[FaultEvent, ...] = ()
    # The analysis' Angles after each frame (only when asked for: a bench compares them with truth).
    angles: tuple[Angles, ...] = ()

    @property
    def borderline(self) -> frozenset[Fault]:
        return frozenset(e.fault for e in self.evidence if e.borderline)

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
        names = fault_names
        return {
            "clip": self.label.clip, "profile": self.profile, "frames": self.frames, "reps_true": self.label.reps,
            "reps_counted": len(self.reps),
            "reps_exact": self.reps_exact, "movement_true": self.label.movement, "movement": self.movement,
            "movement_right": self.movement_right, "faults_true": names(self.label.faults),
            "faults_found": names(self.faults), "missed": names(self.label.faults - self.faults),
            "extra": names(self.faults - self.label.faults), "borderline": names(self.borderline - self.faults),
        }

    def evidence_rows(self) -> list[dict]:
        return [{"clip": self.label.clip, "fault": e.fault.value, "status": "borderline" if e.borderline else "buzzed",
                 "labelled": e.fault in self.label.faults, "time_s": round(e.time, 2), "value": e.value,
                 "threshold": e.threshold, "margin": e.margin, "noise": e.noise} for e in self.evidence]


def analyse(poses: Iterable[Pose], profile: Profile, angles: Optional[list[Angles]] = None) -> tuple[HingeAnalyzer, int]:
    """Run the analyzer over a stream of poses, to the end. Returns it and the frame count; with
    `angles`, also appends the analysis' Angles after each frame to it."""
    analyzer = HingeAnalyzer(profile)
    analyzer.run(poses if angles is None else _recording(poses, analyzer, angles))
    return analyzer, analyzer.frames


def _recording(poses: Iterable[Pose], analyzer: HingeAnalyzer, angles: list[Angles]) -> Iterator[Pose]:
    """The poses, noting the analyzer's Angles once it has taken each one."""
    for pose in poses:
        yield pose
        if analyzer.angles is not None:
            angles.append(analyzer.angles)


def evaluate_clip(label: LabelledClip, poses: list[Pose], profile: Profile, keep_angles: bool = False) -> ClipResult:
    angles: Optional[list[Angles]] = [] if keep_angles else None
    analyzer, frames = analyse(poses, profile, angles)
    evidence = tuple(sorted([*analyzer.faults, *(b for rep in analyzer.reps for b in rep.borderline)], key=lambda e: e.time))
    return ClipResult(label, frames, list(analyzer.reps), frozenset(f.fault for f in analyzer.faults), analyzer.busy_s,
                      profile.name, evidence, tuple(angles or ()))


# --- per rep: a clip whose reps each have their own truth ------------------------------------------


@dataclass(frozen=True)
class RepVerdict:
    """What the station said about one true rep: counted (a rep of the analysis has its deepest
    point inside the rep's window), the movement it was called, and the faults that buzzed and
    those only borderline while the rep's window lasted (a fault judged at the bottom, the lockout
    or during a dropped attempt is heard at that time, so time is the one place they all meet)."""

    rep: int  # 1-based, the truth's numbering
    counted: bool
    movement: str  # "hinge", "squat", or "" when not counted
    raised: frozenset[Fault]
    borderline: frozenset[Fault]


def rep_verdicts(result: ClipResult, windows: Sequence[tuple[float, float]]) -> list[RepVerdict]:
    """Per true rep, given each rep's (start, end) time on the clip's clock (the reps in order, each
    window ending where the next begins; the last one is taken to run to the end of the clip).

    A fault that belongs to a counted rep goes with that rep, matched as the count is, by its
    deepest point: a lockout is judged as its rep closes, which may be after the true rep's window
    (a short lockout is known only once the hips bend again, in the next rep's window). A fault
    heard outside any counted rep (an attempt later dropped) goes by when it was heard."""
    on_reps = {id(e) for r in result.reps for e in (*r.faults, *r.borderline)}
    loose = [e for e in result.evidence if id(e) not in on_reps]
    verdicts = []
    for i, (start, end) in enumerate(windows):
        stop = end if i + 1 < len(windows) else math.inf
        reps = [r for r in result.reps if start <= r.bottom_time < stop]
        events = [e for r in reps for e in (*r.faults, *r.borderline)] + [e for e in loose if start <= e.time < stop]
        raised = frozenset(e.fault for e in events if not e.borderline)
        verdicts.append(RepVerdict(i + 1, bool(reps), reps[0].movement if reps else "", raised,
                                   frozenset(e.fault for e in events if e.borderline) - raised))
    return verdicts


def fault_counts(results: list[ClipResult], fault: Fault) -> tuple[int, int, int]:
    """(tp, fp, fn) of one fault over the clips whose faults are scored."""
    results = [r for r in results if r.label.faults_scored]
    tp = sum(fault in r.faults and fault in r.label.faults for r in results)
    fp = sum(fault in r.faults and fault not in r.label.faults for r in results)
    fn = sum(fault not in r.faults and fault in r.label.faults for r in results)
    return tp, fp, fn


@dataclass
class Evaluation:
    profile: str
    results: list[ClipResult] = field(default_factory=list)

    def clip_rows(self) -> list[dict]:
        return [r.row() for r in self.results]

    def evidence_rows(self) -> list[dict]:
        return [row for r in self.results for row in r.evidence_rows()]

    def fault_rows(self) -> list[dict]:
        rows = []
        for fault in Fault:
            tp, fp, fn = fault_counts(self.results, fault)
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
            "profiles": dict(sorted(Counter(r.profile for r in self.results).items())),
            "clips": len(self.results),
            "reps_true": sum(r.label.reps for r in self.results),
            "reps_counted": sum(len(r.reps) for r in self.results),
            "clips_reps_exact": sum(r.reps_exact for r in self.results),
            "clips_movement_right": sum(r.movement_right for r in self.results),
            "verdicts": {f"{truth}->{said}": n for (truth, said), n in sorted(verdicts.items())},
            "frames": frames,
            "analysis_ms_per_frame": round(1000 * busy / frames, 4) if frames else None,
        }


    def by_source(self) -> list[dict]:
        """Per source (clip_source): clips, clips counted exactly, verdicts right, good-labelled clips
        and those of them with any fault raised (false alarms), tp/fp/fn summed over faults, and
        the faults with any tp/fp/fn as {fault: {tp, fp, fn}}."""
        groups: dict[str, list[ClipResult]] = {}
        for result in self.results:
            groups.setdefault(clip_source(result.label), []).append(result)
        rows = []
        for source, results in sorted(groups.items()):
            per_fault = {fault.value: dict(zip(("tp", "fp", "fn"), fault_counts(results, fault))) for fault in Fault}
            good = [r for r in results if not r.label.faults and r.label.faults_scored]
            rows.append({
                "source": source, "clips": len(results),
                "clips_reps_exact": sum(r.reps_exact for r in results),
                "clips_movement_right": sum(r.movement_right for r in results),
                "good_clips": len(good), "false_alarm_clips": sum(bool(r.faults) for r in good),
                "tp": sum(c["tp"] for c in per_fault.values()), "fp": sum(c["fp"] for c in per_fault.values()),
                "fn": sum(c["fn"] for c in per_fault.values()),
                "faults": {name: c for name, c in per_fault.items() if any(c.values())},
            })
        return rows


def evaluate(labels: list[LabelledClip], poses_of: PoseSource, profile: Union[Profile, ProfileChooser],
             progress: Optional[Callable[[str], None]] = None) -> Evaluation:
    """Score every clip. `profile` is one drill profile for all clips, or a chooser (drill_profiles)
    that names each clip's own."""
    choose: ProfileChooser = (lambda _: profile) if isinstance(profile, Profile) else profile
    chosen = [(label, choose(label)) for label in labels]
    names = sorted({p.name for _, p in chosen})
    evaluation = Evaluation(names[0] if len(names) == 1 else "per drill")
    for label, clip_profile in chosen:
        if progress:
            progress(label.clip)
        evaluation.results.append(evaluate_clip(label, poses_of(label.path), clip_profile))
    return evaluation


# --- the same clips, another way ------------------------------------------------------------------


def compare_runs(name: str, base: Evaluation, other: Evaluation) -> dict:
    """How many clips of `other` (the same clips perturbed) keep `base`'s rep count and its set of
    raised faults, and the clips that changed (count and faults before/after)."""
    before = {r.label.clip: r for r in base.results}
    changed = []
    same_reps = same_faults = 0
    for after in other.results:
        was = before[after.label.clip]
        reps_same, faults_same = len(after.reps) == len(was.reps), after.faults == was.faults
        same_reps += reps_same
        same_faults += faults_same
        if not (reps_same and faults_same):
            changed.append({
                "clip": after.label.clip, "profile": after.profile, "frames_before": was.frames,
                "frames_after": after.frames, "reps_true": after.label.reps, "reps_before": len(was.reps),
                "reps_after": len(after.reps), "faults_before": fault_names(was.faults),
                "faults_after": fault_names(after.faults),
            })
    return {
        "perturbation": name, "clips": len(other.results), "same_reps": same_reps, "same_faults": same_faults,
        "unchanged": len(other.results) - len(changed),
        "clips_reps_exact": sum(r.reps_exact for r in other.results),
        "frames": sum(r.frames for r in other.results), "changed": changed,
    }
