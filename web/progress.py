"""An athlete's progress, read from the rep log: the ladder step they are on, mastery per step with
its evidence, sessions and reps over time (clean share, depth, tempo, wall-tap hip travel), their
most frequent faults, and the trainer's answers to past suggestions."""
from __future__ import annotations

from collections import Counter
from typing import Any, Literal, Mapping, Optional

from fastapi import HTTPException

from device.analysis.ladder import (Ladder, Mastery, clean_after_corrections, is_counted, leg_lengths_to_cm, progression,
                                    tally_sessions)
from device.analysis.cues import SETTING as CUES_SETTING, CueWords
from device.analysis.profiles import Profile, load_profile
from device.analysis.vocabulary import Fault, fault_from_name
from device.contract.records import SessionFilter
from device.errors import ConfigError
from device.stats import median
from web.context import WebContext
from web.schemas import (AthleteProgress, AthleteSummary, DrillSession, FaultTally, HipTravelTrend, LadderOut,
                         MasteryOut, MasteryRuleOut, RepPoint, StepDecisionOut, StepOut, SuggestionOut)
from web.views import _mean, _pct, default_cue

WALL_TAP = "wall_tap_hinge"
MAX_SESSIONS = 100_000


def load_athlete(ctx: WebContext, athlete_id: int) -> dict[str, Any]:
    athlete = ctx.require_log().get_athlete(athlete_id)
    if athlete is None:
        raise HTTPException(404, f"athlete {athlete_id} does not exist")
    return athlete


def mastery_out(m: Mastery) -> MasteryOut:
    return MasteryOut(met=m.met, evidence=list(m.evidence), clean_reps=m.clean_reps, reps=m.reps,
                      clean_share=m.clean_share, days=m.days, missing=list(m.missing))


def ladder_out(ladder: Ladder) -> LadderOut:
    return LadderOut(steps=_steps(ladder, None))


def _steps(ladder: Ladder, statuses: Optional[Any]) -> list[StepOut]:
    out = []
    for i, step in enumerate(ladder.steps):
        status = statuses[i] if statuses is not None else None
        empty = MasteryOut(met=False, evidence=[], clean_reps=0, reps=0, clean_share=None, days=0, missing=[])
        out.append(StepOut(index=i, drill=step.drill, also=list(step.also), why=step.why, tried=bool(status and status.tried),
                           rule=MasteryRuleOut(**step.mastery.model_dump()),
                           mastery=mastery_out(status.mastery) if status is not None else empty))
    return out


def _slope(values: list[float]) -> Optional[float]:
    """Least-squares change per step of a series (None under two points)."""
    if len(values) < 2:
        return None
    xs = range(len(values))
    mx, my = (len(values) - 1) / 2, sum(values) / len(values)
    return sum((x - mx) * (y - my) for x, y in zip(xs, values)) / sum((x - mx) ** 2 for x in xs)


def drill_cues(ctx: WebContext, drill: str) -> tuple[Profile, Mapping[Fault, str]]:
    """A drill's profile and the coach's own cue words for it (as the page set them): what the station
    says for each of its faults is the coach's words where set, else the profile's cue. ConfigError
    for a drill with no profile here."""
    profile = load_profile(drill, ctx.profiles_dir)
    return profile, CueWords(ctx.require_log().get_setting(CUES_SETTING)).for_drill(drill)


def said_cue(profile: Profile, own: Mapping[Fault, str], fault: Fault) -> str:
    """What the station says for `fault` on a drill: the coach's words where set, else the drill's own
    cue (device/analysis/faults.py says a rule's own finer cue, such as a dropped head's, before the
    drill's)."""
    return own.get(fault) or profile.faults.cue(fault)


def said_cues(ctx: WebContext, faults: Mapping[str, str]) -> dict[str, str]:
    """Fault name -> the cue the station says for it on the drill given (`faults`: fault -> drill): the
    coach's words where set, else the drill's own cue, else (a drill with no profile here) the usual one."""
    drills: dict[str, Optional[tuple[Profile, Mapping[Fault, str]]]] = {}
    out = {}
    for name, drill in faults.items():
        if drill not in drills:
            try:
                drills[drill] = drill_cues(ctx, drill)
            except ConfigError:
                drills[drill] = None
        fault, known = fault_from_name(name), drills[drill]
        out[name] = said_cue(known[0], known[1], fault) if fault and known else default_cue(name)
    return out


def athlete_progress(ctx: WebContext, athlete_id: int) -> AthleteProgress:
    athlete = load_athlete(ctx, athlete_id)
    height = athlete["height_cm"]
    sessions = ctx.store.list_sessions(SessionFilter(athlete_id=athlete_id), limit=MAX_SESSIONS)
    reps = ctx.require_log().athlete_reps(athlete_id)
    decisions = ctx.require_log().step_decisions(athlete_id)
    tallies = tally_sessions(sessions, reps)
    state = progression(ctx.ladder, tallies, decisions)

    by_session: dict[int, list[dict[str, Any]]] = {}
    points = []
    for rep in reps:
        if not is_counted(rep):
            continue
        by_session.setdefault(rep["session_id"], []).append(rep)
    drill_of = {s["id"]: s["profile"] for s in sessions}
    for rep in reps:
        if is_counted(rep):
            points.append(RepPoint(
                rep_id=rep["id"], session_id=rep["session_id"], started_at=rep["started_at"], drill=drill_of[rep["session_id"]],
                clean=clean_after_corrections(rep), depth_deg=rep["peak_hip_flexion_deg"], lowering_s=rep["lowering_s"],
                rep_s=rep["ended_at"] - rep["started_at"], hip_travel=rep["hip_shift_at_bottom"],
                hip_travel_cm=leg_lengths_to_cm(rep["hip_shift_at_bottom"], height)))
    drill_sessions = []
    for t in tallies:
        counted = by_session.get(t.id, [])
        travel = median([r["hip_shift_at_bottom"] for r in counted])
        drill_sessions.append(DrillSession(
            session_id=t.id, started_at=t.started_at, drill=t.drill, reps=t.reps, clean_reps=t.clean,
            clean_pct=_pct(t.clean, t.reps), mean_depth_deg=_mean(r["peak_hip_flexion_deg"] for r in counted),
            mean_lowering_s=_mean(r["lowering_s"] for r in counted),
            mean_rep_s=_mean(r["ended_at"] - r["started_at"] for r in counted),
            hip_travel=travel, hip_travel_cm=leg_lengths_to_cm(travel, height), ahead=state.ahead(t.drill, ctx.ladder)))

    faults = Counter(name for t in tallies for name, n in t.faults.items() for _ in range(n))
    latest = {name: t.drill for t in tallies for name in t.faults}  # the drill each fault came up on last
    cues = said_cues(ctx, latest)
    unit: Literal["leg lengths", "cm"] = "cm" if height is not None else "leg lengths"
    series = [v for s in drill_sessions
              if s.drill == WALL_TAP and (v := s.hip_travel_cm if height is not None else s.hip_travel) is not None]
    trend = None
    if series:
        trend = HipTravelTrend(unit=unit, first=series[0], last=series[-1], per_session=_slope(series), sessions=len(series))
    suggestion = state.suggestion
    return AthleteProgress(
        athlete=AthleteSummary(**athlete), current_step=state.current_drill, current_index=state.current,
        ready_for=suggestion.next_drill if suggestion else None,
        suggestion=SuggestionOut(drill=suggestion.drill, next_drill=suggestion.next_drill,
                                 evidence=list(suggestion.evidence)) if suggestion else None,
        steps=_steps(ctx.ladder, list(state.steps)),
        other_drills=sorted(d for d in {t.drill for t in tallies if t.reps} if ctx.ladder.index(d) is None),
        faults=[FaultTally(name=n, count=c, cue=cues[n]) for n, c in faults.most_common()],
        hip_travel=trend, sessions=drill_sessions,
        decisions=[StepDecisionOut(**d) for d in decisions], reps=points,
    )
