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
from device.analysis.profiles import FaultsTable, MovementTable, Profile
from device.analysis.reps import BottomShape, movement_verdict

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
    """A rule's verdict on one frame: `quantity` (an Angles field, or "hinge_ratio") read `value`,
    past `threshold` in the direction `sense` (+1: over a maximum, -1: under a minimum)."""

    value: float
    threshold: float
    quantity: str
    sense: int = 1
    cue: Optional[str] = None  # a more specific cue than the fault's own

    @property
    def margin(self) -> float:
        """How far past the limit, in the rule's unit (positive = past)."""
        return self.sense * (self.value - self.threshold)


Check = Callable[[Moment], Optional[Finding]]
Decide = Callable[[Angles], Optional[tuple[Finding, float]]]


def _hip(m: Moment) -> float:
    return m.angles.hip_flexion_deg


def frame_checks(profile: Profile) -> dict[Fault, Check]:
    """The enabled frame rules of a profile. NaN measurements never satisfy a comparison, so a
    quantity whose landmarks were hidden can never raise a fault."""
    f: FaultsTable = profile.faults
    reps = profile.reps
    checks: dict[Fault, Check] = {}

    floor_pulls: set[int] = set()  # rep attempts where the hands have been at or below the knees

    def squatting(m: Moment) -> Optional[Finding]:
        r = f.squatting_the_hinge
        a = m.angles
        if m.phase not in MOVING:
            return None
        if a.hands_below_knee >= r.floor_hands_below_knee:
            floor_pulls.add(m.attempt)
        if not _hip(m) >= r.check_from_hip_deg:
            return None
        shown = []
        if a.thigh_deg >= r.max_thigh_deg:
            shown.append(Finding(a.thigh_deg, r.max_thigh_deg, "thigh_deg"))
        if m.attempt not in floor_pulls:
            # (On a load taken from the floor bent knees down there are the lift, not a squat: only
            # hips at knee height, above, make it one. Shins "far forward" cannot be told apart:
            # the model reads 45-54 degrees of shin on good floor pulls, as much as on squats.)
            if (r.max_knee_deg is not None and a.knee_flexion_deg > r.max_knee_deg
                    and a.hands_below_knee < r.floor_hands_below_knee):
                # Only with the hands seen above the knees: hidden hands (behind plates, the body)
                # may be holding a load at the floor, where bent knees are the lift.
                shown.append(Finding(a.knee_flexion_deg, r.max_knee_deg, "knee_flexion_deg"))
            if (a.hinge_ratio < r.min_hinge_ratio and a.trunk_deg <= r.ratio_max_trunk_deg
                    and a.knee_flexion_deg >= r.ratio_min_knee_deg):
                shown.append(Finding(a.hinge_ratio, r.min_hinge_ratio, "hinge_ratio", sense=-1))
        # Any sign shows the squat; its evidence is the sign clearest against its own noise.
        return max(shown, key=lambda f: f.margin / max(a.noise_of(f.quantity), 1e-9), default=None)

    def head(m: Moment) -> Optional[Finding]:
        r = f.head_not_neutral
        a = m.angles
        if m.phase not in MOVING or not a.trunk_deg >= r.min_trunk_deg:
            return None
        if a.head_offset_deg > r.max_dropped_deg:
            return Finding(a.head_offset_deg, r.max_dropped_deg, "head_offset_deg", cue=r.cue_dropped)
        if a.head_offset_deg < -r.max_cranked_deg:
            return Finding(-a.head_offset_deg, r.max_cranked_deg, "head_offset_deg")
        return None

    def rounded(m: Moment) -> Optional[Finding]:
        r = f.rounded_back
        a = m.angles
        if m.phase not in MOVING:
            return None
        if a.trunk_deg > r.max_trunk_deg:
            return Finding(a.trunk_deg, r.max_trunk_deg, "trunk_deg")
        if a.trunk_deg >= r.min_trunk_deg and a.head_offset_deg > r.max_upper_back_sag_deg:
            return Finding(a.head_offset_deg, r.max_upper_back_sag_deg, "head_offset_deg")
        return None

    def overextended(m: Moment) -> Optional[Finding]:
        r = f.overextended_lockout
        at_top = m.phase is Phase.LOCKOUT or (m.phase is Phase.RISING and _hip(m) <= reps.top_deg)
        extension = -_hip(m)
        if at_top and extension > r.max_extension_deg:
            return Finding(extension, r.max_extension_deg, "hip_flexion_deg")
        return None

    def load_away(m: Moment) -> Optional[Finding]:
        r = f.load_away_from_body
        a = m.angles
        if m.phase not in MOVING or not _hip(m) >= r.check_from_hip_deg:
            return None
        if not a.hands_below_shoulder >= r.min_hands_below_shoulder:
            return None
        return Finding(a.load_forward, r.max_forward, "load_forward") if a.load_forward > r.max_forward else None

    for fault, check in (
        (Fault.SQUATTING_THE_HINGE, squatting),
        (Fault.HEAD_NOT_NEUTRAL, head), (Fault.ROUNDED_BACK, rounded),
        (Fault.OVEREXTENDED_LOCKOUT, overextended), (Fault.LOAD_AWAY_FROM_BODY, load_away),
    ):
        if f.enabled(fault):
            checks[fault] = check
    return checks


def bottom_squat_finding(shape: BottomShape, movement: MovementTable) -> Optional[Finding]:
    """A rep whose bottom looked like a squat (the per-rep movement verdict, from medians over the
    deepest frames) squats the hinge. The evidence is the hips at knee height where they are, else
    the squat pattern's hinge ratio (the verdict decides; this only names what decided it)."""
    if movement_verdict(shape, movement) != "squat":
        return None
    if shape.thigh >= movement.hips_at_knee_thigh_deg:
        return Finding(shape.thigh, movement.hips_at_knee_thigh_deg, "thigh_deg")
    return Finding(shape.hinge_ratio, movement.squat_max_hinge_ratio, "hinge_ratio", sense=-1)


class FaultJudge:
    """Raises each fault once per rep, after it has held for its hold time, and only when its
    evidence is clear: the deciding value past the limit by more than its noise band (the
    profile's `clear_margin_sigmas` times the value's own measured noise) on every frame of the
    hold. A fault that held but never clearly is kept as borderline for the rep: logged with its
    value, limit and margin, never buzzed. Prefer silence to a wrong buzz.

    Until a quantity's noise has been measured (the first frames of a clip, fewer at a Pi's
    10 fps) its band is the model's typical wander, a cautious stand-in. A fault that held only
    under that stand-in is judged again, within the same rep, as soon as the noise is measured on
    frames that include the hold: some hold-long stretch of it must clear the measured band on
    every frame. So a lift that starts at its bottom is judged the same at 10 fps as at 30, a
    little later.

    Likewise while the camera's view is not yet known (`view_known` False: a clip that starts
    with the athlete bent over, before any upright frame has shown whether the camera is side-on)
    nothing buzzes: what held is judged again once the view is known side-on, and let go if the
    rep closes first. The analyzer never calls the judge on an oblique view."""

    def __init__(self, profile: Profile):
        self.profile = profile
        self.reset()

    def reset(self) -> None:
        self.checks = frame_checks(self.profile)  # fresh: the squatting rule remembers floor pulls per attempt
        self._clear_since: dict[Fault, float] = {}
        self._raised: set[tuple[int, Fault]] = set()
        self._borderline: dict[tuple[int, Fault], FaultEvent] = {}
        self._held: dict[Fault, list[tuple[float, Finding]]] = {}  # per fault, its current hold's frames (from its start)
        self._assumed: set[Fault] = set()  # faults whose current hold was judged on assumed noise
        # Held faults waiting for measured noise or a known view: (the hold's frames, decide, rep index),
        # where decide(angles) gives the clear (finding, band) on the angles of a later frame, or None.
        # The frames are the hold's own list, so a hold that goes on is judged on all of it.
        self._pending: dict[tuple[int, Fault], tuple[list[tuple[float, Finding]], Decide, int]] = {}
        self.view_known = True  # the analyzer's ViewMeter has said the camera is side-on
        self._last_time: Optional[float] = None
        self.frame_s = math.nan  # the usual time between frames, for the timing faults' resolution

    def _band(self, noise_rms: float) -> float:
        return self.profile.faults.clear_margin_sigmas * noise_rms

    def _event(self, fault: Fault, finding: Finding, time: float, rep_index: int, band: float,
               borderline: bool) -> FaultEvent:
        cue = finding.cue or self.profile.faults.cue(fault)
        return FaultEvent(fault, cue, time, round(finding.value, 3), finding.threshold, rep_index,
                          margin=round(finding.margin, 3), noise=round(band, 3), borderline=borderline)

    def _keep_borderline(self, key: tuple[int, Fault], event: FaultEvent) -> None:
        kept = self._borderline.get(key)
        if kept is None or event.margin > kept.margin:
            self._borderline[key] = event

    def take_borderline(self, attempt: int) -> list[FaultEvent]:
        """The faults of a closing rep attempt that held but never clearly (and were not raised
        later); handed over once, so what is kept does not grow over a long session."""
        for key in [k for k in self._pending if k[0] == attempt]:
            del self._pending[key]
        keys = [key for key in self._borderline if key[0] == attempt]
        events = [self._borderline.pop(key) for key in keys]
        return sorted((e for key, e in zip(keys, events) if key not in self._raised), key=lambda e: e.time)

    def _tick(self, time: float) -> None:
        if self._last_time is not None and time > self._last_time:
            dt = time - self._last_time
            self.frame_s = dt if math.isnan(self.frame_s) else 0.9 * self.frame_s + 0.1 * dt
        self._last_time = time

    @staticmethod
    def _clear_stretch(held: list[tuple[float, Finding]], band_of: Callable[[str], float],
                       hold: float) -> Optional[tuple[Finding, float]]:
        """The weakest frame of the first hold-long stretch of `held` that is past its limit by
        more than its quantity's band on every frame, with that band; None when there is none.
        (One rule may decide on different quantities from frame to frame: the squat's thigh, knee
        or hinge ratio.)"""
        start: Optional[int] = None
        for i, (time, finding) in enumerate(held):
            if finding.margin <= band_of(finding.quantity):
                start = None
                continue
            start = i if start is None else start
            if time - held[start][0] >= hold:
                weakest = min((f for _, f in held[start:i + 1]), key=lambda f: f.margin / band_of(f.quantity))
                return weakest, band_of(weakest.quantity)
        return None

    def _hold_decider(self, held: list[tuple[float, Finding]], hold: float) -> Decide:
        def decide(angles: Angles) -> Optional[tuple[Finding, float]]:
            return self._clear_stretch(held, lambda quantity: self._band(angles.noise_of(quantity)), hold)
        return decide

    def _judge_pending(self, m: Moment) -> list[FaultEvent]:
        """Faults held on assumed noise or an unknown view, judged again once the noise is measured
        and the view is known."""
        out = []
        for key in [k for k in self._pending if k[0] == m.attempt]:
            held, decide, rep_index = self._pending[key]
            if key in self._raised:
                del self._pending[key]
            elif self.view_known and all(m.angles.noise_measured(f.quantity) for _, f in held):
                del self._pending[key]
                clear = decide(m.angles)
                if clear is not None:
                    self._raised.add(key)
                    out.append(self._event(key[1], clear[0], m.angles.time, rep_index, clear[1], borderline=False))
        return out

    def _end_hold(self, fault: Fault) -> None:
        self._clear_since.pop(fault, None)
        self._held.pop(fault, None)
        self._assumed.discard(fault)

    def observe(self, m: Moment) -> list[FaultEvent]:
        """Judge one usable frame."""
        self._tick(m.angles.time)
        out = self._judge_pending(m)
        for fault, check in self.checks.items():
            if m.rep_index is None or (finding := check(m)) is None:  # between reps nothing is judged
                self._end_hold(fault)
                continue
            now = m.angles.time
            band = self._band(m.angles.noise_of(finding.quantity))
            held = self._held.setdefault(fault, [])
            held.append((now, finding))
            since = held[0][0]
            if not (self.view_known and m.angles.noise_measured(finding.quantity)):
                self._assumed.add(fault)
            if finding.margin > band and self.view_known:
                clear_since = self._clear_since.setdefault(fault, now)
            else:
                self._clear_since.pop(fault, None)
                clear_since = None
            key = (m.attempt, fault)
            if key in self._raised:
                continue
            hold = self.profile.faults.hold(fault) - 1e-9
            if clear_since is not None and now - clear_since >= hold:
                self._raised.add(key)
                out.append(self._event(fault, finding, now, m.rep_index, band, borderline=False))
            elif now - since >= hold:
                self._keep_borderline(key, self._event(fault, finding, now, m.rep_index, band, borderline=True))
                if fault in self._assumed and (key not in self._pending or self._pending[key][0] is not held):
                    self._pending[key] = (held, self._hold_decider(held, hold), m.rep_index)
        return out

    def interrupt(self) -> None:
        """A frame that could not be judged breaks every fault's hold."""
        for fault in list(self._held):
            self._end_hold(fault)

    def _once(self, fault: Fault, finding: Finding, band: float, time: float, rep_index: int, attempt: int) -> list[FaultEvent]:
        key = (attempt, fault)
        if not self.profile.faults.enabled(fault) or key in self._raised:
            return []
        if finding.margin > band and self.view_known:
            self._raised.add(key)
            return [self._event(fault, finding, time, rep_index, band, borderline=False)]
        self._keep_borderline(key, self._event(fault, finding, time, rep_index, band, borderline=True))
        if not self.view_known and finding.margin > band:
            # Clear, but on a view not yet known to be side-on: raised once it is (same evidence).
            self._pending[key] = ([], lambda angles: (finding, band), rep_index)
        return []

    def at_bottom(self, lowering_s: float, shape: BottomShape, angles: Angles, time: float, rep_index: int,
                  attempt: int) -> list[FaultEvent]:
        """The faults judged once per rep at its bottom: the lowering's tempo, locked knees over the
        deepest part, and a bottom that looked like a squat (which a frame rule can miss where
        plates hide the knees for most frames)."""
        out = []
        knee_at_bottom = shape.knee
        squat = bottom_squat_finding(shape, self.profile.movement)
        if squat is not None:
            band = self._band(angles.noise_of(squat.quantity)) * shape.noise_factor  # a median over the bottom
            out += self._once(Fault.SQUATTING_THE_HINGE, squat, band, time, rep_index, attempt)
        fast = self.profile.faults.too_fast
        if math.isfinite(lowering_s) and lowering_s < fast.min_lowering_s:
            # The lowering's start and its bottom are each placed to within a frame.
            band = 2 * self.frame_s if math.isfinite(self.frame_s) else math.inf
            finding = Finding(lowering_s, fast.min_lowering_s, "lowering_s", sense=-1)
            out += self._once(Fault.TOO_FAST, finding, band, time, rep_index, attempt)
        knees = self.profile.faults.locked_knees
        if knee_at_bottom < knees.min_knee_deg:  # NaN (shins hidden) never compares true
            finding = Finding(knee_at_bottom, knees.min_knee_deg, "knee_flexion_deg", sense=-1)
            band = self._band(angles.noise_of("knee_flexion_deg"))
            out += self._once(Fault.LOCKED_KNEES, finding, band, time, rep_index, attempt)
        return out

    def at_close(self, lockout_reached: bool, top_min_hip: float, hip_noise: float, time: float, rep_index: int,
                 attempt: int) -> list[FaultEvent]:
        if lockout_reached:
            return []
        finding = Finding(top_min_hip, self.profile.reps.lockout_hip_deg, "hip_flexion_deg")
        return self._once(Fault.INCOMPLETE_LOCKOUT, finding, self._band(hip_noise), time, rep_index, attempt)
