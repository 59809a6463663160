"""The drill ladder and mastery: which step an athlete is on, and when they are ready for the next.

The ladder is data (`ladder.toml` beside the profiles folder): the drills in coaching order and a
mastery rule per step. Mastery is judged on plain rep-log rows (sessions and reps as the store
returns them) with the trainer's corrections applied, so it is testable without a database and
the page, the API and the export all read the same verdict.
"""
from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from device.analysis.profiles import list_profiles
from device.analysis.vocabulary import Fault
from device.errors import ConfigError, format_validation_errors

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

LADDER_FILE = Path(__file__).resolve().parent / "ladder.toml"

# Leg length as the pose measures it (hip joint to ankle: thigh + shank) per unit of standing
# height: 0.245 H (greater trochanter to knee) + 0.246 H (knee to lateral malleolus) = 0.491 H, from
# Drillis & Contini's segment lengths as tabled in Winter, Biomechanics and Motor Control of Human
# Movement (4th ed., 2009), Fig. 4.1. (The often-quoted 0.53 H is floor to trochanter: it includes
# the foot's 0.039 H below the ankle, which the pose's leg does not.)
LEG_LENGTH_PER_HEIGHT = 0.491


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MasteryRule(_Table):
    min_clean_reps: int = Field(ge=1, le=10_000)
    min_days: int = Field(ge=1, le=365)
    min_clean_share: float = Field(ge=0, le=1)
    recent_sessions: int = Field(ge=1, le=1000)
    none_in_last_session: tuple[str, ...] = ()

    @field_validator("none_in_last_session")
    @classmethod
    def _known_faults(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        known = {f.value for f in Fault}
        wrong = [n for n in names if n not in known]
        if wrong:
            raise ValueError(f"unknown fault(s) {wrong}; known: {sorted(known)}")
        return names

    @model_validator(mode="after")
    def _days_fit(self) -> "MasteryRule":
        if self.min_days > self.recent_sessions:
            raise ValueError(f"min_days ({self.min_days}) cannot exceed recent_sessions ({self.recent_sessions})")
        return self


class Step(_Table):
    drill: str
    why: str = ""
    # Other drills whose sessions count as this step: the station's default drill (`hinge`, what a
    # station runs when nobody chose one) is the plain bodyweight hinge the first step teaches, so a
    # new station's sessions count toward it instead of for nothing.
    also: tuple[str, ...] = ()
    mastery: MasteryRule

    @property
    def drills(self) -> tuple[str, ...]:
        return (self.drill, *self.also)


class Ladder(_Table):
    steps: tuple[Step, ...] = Field(min_length=1)

    @property
    def drills(self) -> list[str]:
        return [s.drill for s in self.steps]

    def index(self, drill: str) -> Optional[int]:
        """The step a drill's sessions count for (its own, or the one it is `also` of); None off the ladder."""
        return next((i for i, s in enumerate(self.steps) if drill in s.drills), None)


def load_ladder(path: Optional[Path] = None, profiles_dir: Optional[Path] = None) -> Ladder:
    """Read and check the ladder: every step a known drill profile, each once, every rule complete.

    Without `path`: a `ladder.toml` in the station's own profiles_dir (a coach's ladder, beside
    their drills) wins over the shipped one."""
    own = Path(profiles_dir) / LADDER_FILE.name if profiles_dir else None
    path = Path(path) if path else own if own is not None and own.is_file() else LADDER_FILE
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except OSError as err:
        raise ConfigError(f"cannot read the drill ladder {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"cannot read the drill ladder {path}: {err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read the drill ladder {path}: it is not UTF-8 text; save it as UTF-8") from None
    defaults = raw.pop("mastery", {})
    steps = raw.pop("step", [])
    if raw:
        raise ConfigError(f"drill ladder {path}: unknown key(s) {sorted(raw)} (expected [mastery] and [[step]])")
    try:
        ladder = Ladder(steps=[{**s, "mastery": {**defaults, **s.get("mastery", {})}} if isinstance(s, dict) else s
                               for s in steps])
    except ValidationError as err:
        raise ConfigError(format_validation_errors(err, f"drill ladder {path}:")) from None
    known = set(list_profiles(profiles_dir))
    every = [d for s in ladder.steps for d in s.drills]
    unknown = [d for d in every if d not in known]
    if unknown:
        raise ConfigError(f"drill ladder {path}: no drill profile named {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    twice = [d for d, n in Counter(every).items() if n > 1]
    if twice:
        raise ConfigError(f"drill ladder {path}: {', '.join(twice)} appear(s) twice; each drill is one step")
    return ladder


def coaching_order(drills: Iterable[str], ladder: Optional[Ladder]) -> list[str]:
    """`drills` in the order a coach takes an athlete through them: each ladder step's drill, then
    the drills that count as it, then the drills off the ladder by name (no ladder: all by name)."""
    have = set(drills)
    on = [d for step in (ladder.steps if ladder is not None else ()) for d in step.drills if d in have]
    return on + sorted(have - set(on))


# --- a rep as the trainer corrected it -----------------------------------------------------------


def corrected_faults(rep: dict[str, Any]) -> list[str]:
    """The station's faults less those a trainer called false alarms, plus the ones it missed."""
    names = [f["name"] for f in rep["faults"]]
    dropped = {c["fault"] for c in rep["corrections"] if c["kind"] == "false_alarm"}
    added = [c["fault"] for c in rep["corrections"] if c["kind"] == "missed_fault"]
    result: list[str] = []
    for name in names + added:
        if name not in dropped and name not in result:
            result.append(name)
    return result


def clean_after_corrections(rep: dict[str, Any]) -> bool:
    """A rep the trainer's corrections leave without a fault, on a view where faults were judged: a
    rep filmed off side-on was never judged, so it is no evidence of a clean rep (a stored rep from
    before `judged` existed was judged)."""
    return bool(rep.get("judged", True)) and not corrected_faults(rep)


def is_counted(rep: dict[str, Any]) -> bool:
    return not any(c["kind"] == "not_a_rep" for c in rep["corrections"])


# --- mastery -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionTally:
    """One session of one drill, as mastery reads it (counted reps, clean reps, faults)."""

    id: int
    started_at: float
    drill: str
    day: date
    reps: int
    clean: int
    faults: dict[str, int]


@dataclass(frozen=True)
class Mastery:
    drill: str
    met: bool
    evidence: tuple[int, ...]  # the sessions judged (the drill's most recent ones), oldest first
    clean_reps: int
    reps: int
    clean_share: Optional[float]
    days: int
    missing: tuple[str, ...]  # what is not met yet, in the coach's words


def tally_sessions(sessions: Sequence[dict[str, Any]], reps: Sequence[dict[str, Any]]) -> list[SessionTally]:
    """Per session (oldest first): counted reps, clean reps and faults after corrections."""
    by_session: dict[int, list[dict[str, Any]]] = {}
    for rep in reps:
        by_session.setdefault(rep["session_id"], []).append(rep)
    tallies = []
    for s in sorted(sessions, key=lambda s: (s["started_at"], s["id"])):
        counted = [r for r in by_session.get(s["id"], []) if is_counted(r)]
        faults = [corrected_faults(r) for r in counted]
        tallies.append(SessionTally(
            id=s["id"], started_at=s["started_at"], drill=s["profile"],
            day=datetime.fromtimestamp(s["started_at"]).date(), reps=len(counted),
            clean=sum(1 for r in counted if clean_after_corrections(r)), faults=dict(Counter(n for names in faults for n in names))))
    return tallies


def judge(drill: str, rule: MasteryRule, tallies: Sequence[SessionTally], also: Sequence[str] = ()) -> Mastery:
    """Mastery of `drill` (with the drills that count as it, `also`) over its `rule.recent_sessions`
    most recent sessions that have counted reps."""
    drills = {drill, *also}
    recent = [t for t in tallies if t.drill in drills and t.reps > 0][-rule.recent_sessions:]
    clean, reps = sum(t.clean for t in recent), sum(t.reps for t in recent)
    share = clean / reps if reps else None
    days = len({t.day for t in recent})
    missing = []
    if clean < rule.min_clean_reps:
        short = rule.min_clean_reps - clean
        missing.append(f"{short} more clean rep{'s' if short != 1 else ''} (has {clean} of {rule.min_clean_reps})")
    if days < rule.min_days:
        missing.append(f"sessions on {rule.min_days} different days (has {days})")
    if share is None or share < rule.min_clean_share:
        shown = "no reps" if share is None else f"{math.floor(share * 1000) / 10:g}%"
        missing.append(f"clean share of {rule.min_clean_share:.0%} (has {shown})")
    if recent:
        seen = [n for n in rule.none_in_last_session if recent[-1].faults.get(n)]
        missing += [f"no {n.replace('_', ' ')} rep in the latest session (had {recent[-1].faults[n]})" for n in seen]
    return Mastery(drill=drill, met=not missing, evidence=tuple(t.id for t in recent), clean_reps=clean, reps=reps,
                   clean_share=share, days=days, missing=tuple(missing))


@dataclass(frozen=True)
class StepStatus:
    step: Step
    index: int
    tried: bool
    mastery: Mastery


@dataclass(frozen=True)
class Suggestion:
    drill: str  # the step mastered
    next_drill: str
    evidence: tuple[int, ...]


@dataclass(frozen=True)
class Progression:
    steps: tuple[StepStatus, ...]
    current: int  # index into the ladder
    suggestion: Optional[Suggestion]
    decisions: tuple[dict[str, Any], ...] = field(default=())

    @property
    def current_drill(self) -> str:
        return self.steps[self.current].step.drill

    def ahead(self, drill: str, ladder: Ladder) -> bool:
        """A session on a drill beyond the current step: trained ahead of the ladder."""
        index = ladder.index(drill)
        return index is not None and index > self.current


def _answered(decisions: Sequence[dict[str, Any]], drill: str, next_drill: str, since: float, kind: Optional[str] = None) -> bool:
    return any(d["drill"] == drill and d["next_drill"] == next_drill and d["decided_at"] >= since
               and (kind is None or d["decision"] == kind) for d in decisions)


def progression(ladder: Ladder, tallies: Sequence[SessionTally], decisions: Sequence[dict[str, Any]]) -> Progression:
    """Where the athlete stands on the ladder.

    The current step is the first one not yet passed. A step is passed when the trainer moved the
    athlete beyond it (an accepted step), or when its mastery rule is met on the athlete's own
    sessions, unless the trainer held them there (dismissed the suggestion after those sessions: a
    dismissal holds until a newer session meets the rule again). Training a later drill passes
    nothing: one deadlift session is "ahead of the ladder", not the top of it. When mastery alone
    moved the athlete on, "ready for" the new step is suggested until the trainer answers.
    """
    steps = tuple(StepStatus(s, i, any(t.drill in s.drills and t.reps for t in tallies),
                             judge(s.drill, s.mastery, tallies, s.also))
                  for i, s in enumerate(ladder.steps))
    accepted = [i for d in decisions if d["decision"] == "accepted" and (i := ladder.index(d["next_drill"])) is not None]
    moved_to = max(accepted, default=0)

    def latest(status: StepStatus) -> float:
        return max(t.started_at for t in tallies if t.id in status.mastery.evidence)

    def passed(i: int) -> bool:
        if i < moved_to:
            return True
        status = steps[i]
        if not status.mastery.met or i + 1 >= len(steps):
            return False
        return not _answered(decisions, status.step.drill, steps[i + 1].step.drill, latest(status), "dismissed")

    current = next((i for i in range(len(steps)) if not passed(i)), len(steps) - 1)
    suggestion = None
    if current > moved_to:  # reached by mastery, not by the trainer's move
        mastered = steps[current - 1]
        if mastered.mastery.met and not _answered(decisions, mastered.step.drill, steps[current].step.drill, latest(mastered)):
            suggestion = Suggestion(mastered.step.drill, steps[current].step.drill, mastered.mastery.evidence)
    return Progression(steps, current, suggestion, tuple(decisions))


def leg_lengths_to_cm(value: Optional[float], height_cm: Optional[float]) -> Optional[float]:
    """A distance in the pose's leg lengths as centimetres, for an athlete of known height."""
    if value is None or height_cm is None or not math.isfinite(value):
        return None
    return value * LEG_LENGTH_PER_HEIGHT * height_cm
