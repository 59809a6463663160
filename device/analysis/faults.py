"""Hinge fault rules over the per-frame angles and the rep's phase; the profile chooses and tunes them.

Frame rules look at each usable frame while a rep is open and say whether the fault shows, with the
measured value and the limit it crossed. `FaultJudge` raises a fault the moment it has held for the
profile's hold time (so a buzzer can fire mid-rep, and one noisy frame cannot), and only once per
rep. Three faults are judged at a moment rather than over frames: `too_fast` and `locked_knees` when
the bottom is reached (the lowering's duration; the knees over the deepest part, since a deadlift
lowering rightly keeps the knees nearly straight until the bar passes them), and
`incomplete_lockout` when the rep closes without a lockout.

What 2D landmarks can see is limited; `rounded_back` especially is a proxy (see ANALYSIS.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

from device.analysis.vocabulary import Fault, FaultEvent, Phase
from device.analysis.kinematics import Angles
from device.analysis.profiles import FaultsTable, Profile

MOVING = (Phase.LOWERING, Phase.BOTTOM, Phase.RISING)


@dataclass(frozen=True)
class Moment:
    """One usable frame, with what the rep counter knows about it."""

    angles: Angles
    phase: Phase
    rep_index: Optional[int]  # the open rep, None between reps
    attempt: int  # changes with every opened rep, also ones later dropped


@dataclass(frozen=True)
class Finding:
    value: float
    threshold: float
    cue: Optional[str] = None  # a more specific cue than the fault's own


Check = Callable[[Moment], Optional[Finding]]


def _hip(m: Moment) -> float:
    return m.angles.hip_flexion_deg


def frame_checks(profile: Profile) -> dict[Fault, Check]:
    """The enabled frame rules of a profile. NaN measurements never satisfy a comparison, so a
    quantity whose landmarks were hidden can never raise a fault."""
    f: FaultsTable = profile.faults
    reps = profile.reps
    checks: dict[Fault, Check] = {}

    def squatting(m: Moment) -> Optional[Finding]:
        r = f.squatting_the_hinge
        a = m.angles
        if m.phase not in MOVING or not _hip(m) >= r.check_from_hip_deg:
            return None
        if a.thigh_deg >= r.max_thigh_deg:
            return Finding(a.thigh_deg, r.max_thigh_deg)
        if r.max_knee_deg is not None and a.knee_flexion_deg > r.max_knee_deg:
            return Finding(a.knee_flexion_deg, r.max_knee_deg)
        if (a.hinge_ratio < r.min_hinge_ratio and a.trunk_deg <= r.ratio_max_trunk_deg
                and a.knee_flexion_deg >= r.ratio_min_knee_deg):
            return Finding(a.hinge_ratio, r.min_hinge_ratio)
        return None

    def head(m: Moment) -> Optional[Finding]:
        r = f.head_not_neutral
        a = m.angles
        if m.phase not in MOVING or not a.trunk_deg >= r.min_trunk_deg:
            return None
        if a.head_offset_deg > r.max_dropped_deg:
            return Finding(a.head_offset_deg, r.max_dropped_deg, r.cue_dropped)
        if a.head_offset_deg < -r.max_cranked_deg:
            return Finding(-a.head_offset_deg, r.max_cranked_deg)
        return None

    def rounded(m: Moment) -> Optional[Finding]:
        r = f.rounded_back
        a = m.angles
        if m.phase not in MOVING:
            return None
        if a.trunk_deg > r.max_trunk_deg:
            return Finding(a.trunk_deg, r.max_trunk_deg)
        if a.trunk_deg >= r.min_trunk_deg and a.head_offset_deg > r.max_upper_back_sag_deg:
            return Finding(a.head_offset_deg, r.max_upper_back_sag_deg)
        return None

    def overextended(m: Moment) -> Optional[Finding]:
        r = f.overextended_lockout
        at_top = m.phase is Phase.LOCKOUT or (m.phase is Phase.RISING and _hip(m) <= reps.top_deg)
        extension = -_hip(m)
        return Finding(extension, r.max_extension_deg) if at_top and extension > r.max_extension_deg else None

    def load_away(m: Moment) -> Optional[Finding]:
        r = f.load_away_from_body
        a = m.angles
        if m.phase not in MOVING or not _hip(m) >= r.check_from_hip_deg:
            return None
        if not a.hands_below_shoulder >= r.min_hands_below_shoulder:
            return None
        return Finding(a.load_forward, r.max_forward) if a.load_forward > r.max_forward else None

    for fault, check in (
        (Fault.SQUATTING_THE_HINGE, squatting),
        (Fault.HEAD_NOT_NEUTRAL, head), (Fault.ROUNDED_BACK, rounded),
        (Fault.OVEREXTENDED_LOCKOUT, overextended), (Fault.LOAD_AWAY_FROM_BODY, load_away),
    ):
        if f.enabled(fault):
            checks[fault] = check
    return checks


class FaultJudge:
    """Raises each fault once per rep, after it has held for its hold time."""

    def __init__(self, profile: Profile):
        self.profile = profile
        self.checks = frame_checks(profile)
        self._since: dict[Fault, float] = {}
        self._raised: set[tuple[int, Fault]] = set()

    def reset(self) -> None:
        self._since.clear()
        self._raised.clear()

    def _event(self, fault: Fault, finding: Finding, time: float, rep_index: int) -> FaultEvent:
        cue = finding.cue or self.profile.faults.cue(fault)
        return FaultEvent(fault, cue, time, round(finding.value, 3), finding.threshold, rep_index)

    def observe(self, m: Moment) -> list[FaultEvent]:
        """Judge one usable frame."""
        out = []
        for fault, check in self.checks.items():
            finding = check(m) if m.rep_index is not None else None
            if finding is None:
                self._since.pop(fault, None)
                continue
            since = self._since.setdefault(fault, m.angles.time)
            key = (m.attempt, fault)
            if key not in self._raised and m.angles.time - since >= self.profile.faults.hold(fault) - 1e-9:
                self._raised.add(key)
                out.append(self._event(fault, finding, m.angles.time, m.rep_index))
        return out

    def interrupt(self) -> None:
        """A frame that could not be judged breaks every fault's hold."""
        self._since.clear()

    def _once(self, fault: Fault, finding: Finding, time: float, rep_index: int, attempt: int) -> list[FaultEvent]:
        key = (attempt, fault)
        if not self.profile.faults.enabled(fault) or key in self._raised:
            return []
        self._raised.add(key)
        return [self._event(fault, finding, time, rep_index)]

    def at_bottom(self, lowering_s: float, knee_at_bottom: float, time: float, rep_index: int, attempt: int) -> list[FaultEvent]:
        out = []
        fast = self.profile.faults.too_fast
        if math.isfinite(lowering_s) and lowering_s < fast.min_lowering_s:
            out += self._once(Fault.TOO_FAST, Finding(lowering_s, fast.min_lowering_s), time, rep_index, attempt)
        knees = self.profile.faults.locked_knees
        if knee_at_bottom < knees.min_knee_deg:  # NaN (shins hidden) never compares true
            out += self._once(Fault.LOCKED_KNEES, Finding(knee_at_bottom, knees.min_knee_deg), time, rep_index, attempt)
        return out

    def at_close(self, lockout_reached: bool, top_min_hip: float, time: float, rep_index: int, attempt: int) -> list[FaultEvent]:
        if lockout_reached:
            return []
        finding = Finding(top_min_hip, self.profile.reps.lockout_hip_deg)
        return self._once(Fault.INCOMPLETE_LOCKOUT, finding, time, rep_index, attempt)
