"""The hinge fault rules, one small object per fault: what each one looks at and when it says the
fault shows. Whether a rule's finding buzzes (held long enough, clear of the measurement's noise, on
a side-on view) is the judge's business (device/analysis/faults.py), the same for every rule.

Two kinds of rule:

- a `FrameRule` looks at every usable frame of an open rep and says whether that frame shows the
  fault (squatting the hinge, the head, the load's path);
- a `MomentRule` is judged once per rep at a moment: the bottom (a bottom shaped like a squat, a back
  rounded through the deepest part, the lowering's tempo, knees locked over the deepest part) or the
  close (the finish, as held: no lockout, or a lean back).

A rule returns a `Finding`: the quantity that decided, its value, the limit it passed and which way.
NaN never satisfies a comparison, so a quantity whose landmarks were hidden can never raise a fault.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar, Optional

from device.analysis.kinematics import Angles, hinge_ratio_noise
from device.analysis.profiles import MovementTable, Profile, SquattingRule
from device.analysis.reps import BottomShape, FinishShape, movement_verdict
from device.analysis.vocabulary import Fault, Phase

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
    """A rule's verdict: `quantity` (an Angles field, or "hinge_ratio", "lowering_s") read `value`,
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


class FrameRule:
    """A fault judged frame by frame while a rep is open."""

    fault: ClassVar[Fault]

    def __init__(self, profile: Profile):
        self.profile = profile

    def check(self, m: Moment) -> Optional[Finding]:
        raise NotImplementedError


def holds_floor_load(hands_below_knee: float, rule: SquattingRule) -> bool:
    """Hands at or below the knees: a load taken from the floor (one definition for the frame rule
    and the bottom's verdict; hidden hands, NaN, are not)."""
    return hands_below_knee >= rule.floor_hands_below_knee


class SquattingTheHinge(FrameRule):
    """The knees took the athlete down, not the hips: hips at knee height, the squat pattern (knees
    bent about as much as the hips with the trunk upright), or knees past the drill's limit.

    Once the hands have been at or below the knees in a rep, a load is being taken from the floor
    and bent knees down there are the lift: only hips at knee height squat it, and that is judged at
    the bottom, where the pull starts (SquatBottom, on the bottom's medians), not frame by frame on
    the way down: bending to the floor without pulling (setting the weight down, crouching for
    something after the set) is no pull. The rule remembers those attempts, so it is made fresh for
    every session (attempt numbers start again)."""

    fault = Fault.SQUATTING_THE_HINGE

    def __init__(self, profile: Profile):
        super().__init__(profile)
        self.floor_pulls: set[int] = set()  # rep attempts where the hands have been at or below the knees

    def check(self, m: Moment) -> Optional[Finding]:
        r = self.profile.faults.squatting_the_hinge
        a = m.angles
        if m.phase not in MOVING:
            return None
        if holds_floor_load(a.hands_below_knee, r):
            self.floor_pulls.add(m.attempt)
        if not a.hip_flexion_deg >= r.check_from_hip_deg:
            return None
        if m.attempt in self.floor_pulls:
            return None  # a floor pull's squat is judged at its bottom (SquatBottom)
        shown = []
        if a.thigh_deg >= r.max_thigh_deg:
            shown.append(Finding(a.thigh_deg, r.max_thigh_deg, "thigh_deg"))
        # (Shins "far forward" cannot tell a floor pull from a squat: the model reads 45-54
        # degrees of shin on good floor pulls, as much as on squats.)
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


class HeadNotNeutral(FrameRule):
    """The head leaves the line of the back once the trunk leans: dropped toward the floor, or
    cranked up behind it. Measured from where the model puts the ear on a neutral head, not from the
    hip-shoulder line itself (the model's ear sits off that line on a neutral neck)."""

    fault = Fault.HEAD_NOT_NEUTRAL

    def check(self, m: Moment) -> Optional[Finding]:
        r = self.profile.faults.head_not_neutral
        a = m.angles
        if m.phase not in MOVING or not a.trunk_deg >= r.min_trunk_deg:
            return None
        off_neutral = a.head_offset_deg - r.neutral_offset_deg
        if off_neutral > r.max_dropped_deg:
            return Finding(off_neutral, r.max_dropped_deg, "head_offset_deg", cue=r.cue_dropped)
        if -off_neutral > r.max_cranked_deg:
            return Finding(-off_neutral, r.max_cranked_deg, "head_offset_deg")
        return None


class LoadAwayFromBody(FrameRule):
    """Hanging hands (a load) held ahead of mid-foot once the hips bend."""

    fault = Fault.LOAD_AWAY_FROM_BODY

    def check(self, m: Moment) -> Optional[Finding]:
        r = self.profile.faults.load_away_from_body
        a = m.angles
        if m.phase not in MOVING or not a.hip_flexion_deg >= r.check_from_hip_deg:
            return None
        if not a.hands_below_shoulder >= r.min_hands_below_shoulder:
            return None
        return Finding(a.load_forward, r.max_forward, "load_forward") if a.load_forward > r.max_forward else None


FRAME_RULES: tuple[type[FrameRule], ...] = (SquattingTheHinge, HeadNotNeutral, LoadAwayFromBody)


def frame_rules(profile: Profile) -> list[FrameRule]:
    """The profile's enabled frame rules, fresh (no memory of earlier attempts)."""
    return [rule(profile) for rule in FRAME_RULES if profile.faults.enabled(rule.fault)]


# --- judged once per rep ------------------------------------------------------------------------


@dataclass(frozen=True)
class AtBottom:
    """What is known when a rep's bottom is confirmed."""

    shape: BottomShape  # medians over the deepest frames
    lowering_s: float  # NaN when the lowering was not seen (a lift from the floor)
    angles: Angles  # the current frame, for its measured noise
    frame_s: float  # the usual time between frames (NaN until known)


@dataclass(frozen=True)
class AtClose:
    """What is known when a rep closes."""

    lockout_reached: bool
    finish: FinishShape  # the finish as held: from reaching standing to the close
    angles: Angles


class MomentRule:
    """A fault judged once per rep. `judge` gives the finding and its noise band (the clear margin
    it must pass, in the finding's unit), or None when the fault does not show. `oblique`: whether
    the rule judges a front- or rear-oblique view (from 3D) rather than a side-on one."""

    fault: ClassVar[Fault]
    oblique: ClassVar[bool] = False

    def __init__(self, profile: Profile):
        self.profile = profile

    def band(self, noise_rms: float) -> float:
        return self.profile.faults.clear_margin_sigmas * noise_rms


class BottomRule(MomentRule):
    def judge(self, bottom: AtBottom) -> Optional[tuple[Finding, float]]:
        raise NotImplementedError


class CloseRule(MomentRule):
    def judge(self, close: AtClose) -> Optional[tuple[Finding, float]]:
        raise NotImplementedError


@dataclass(frozen=True)
class Bends:
    """The quantities a bottom's bends are read under: side-on in the image, or in 3D."""

    thigh: str
    ratio: str
    hip: str
    knee: str


SIDE_ON = Bends("thigh_deg", "hinge_ratio", "hip_flexion_deg", "knee_flexion_deg")
IN_3D = Bends("thigh_3d_deg", "hinge_ratio_3d", "hip_flexion_3d_deg", "knee_flexion_3d_deg")


def ratio_noise(shape: BottomShape, angles: Angles, bends: Bends) -> float:
    """The hinge ratio's noise at the bottom's own hip and knee (this frame's knee may be hidden:
    plates hiding the shins on most frames are why the bottom is judged at all)."""
    return hinge_ratio_noise(shape.hip, shape.knee, angles.noise_of(bends.hip), angles.noise_of(bends.knee))


def squat_evidence(shape: BottomShape, angles: Angles, movement: MovementTable, bends: Bends) -> tuple[Finding, float]:
    """What showed a bottom the movement verdict calls a squat, with its noise: the hips at knee
    height where they are, else the squat pattern's hinge ratio (the verdict decides; this only
    names what decided it)."""
    if shape.thigh >= movement.hips_at_knee_thigh_deg:
        return Finding(shape.thigh, movement.hips_at_knee_thigh_deg, bends.thigh), angles.noise_of(bends.thigh)
    return Finding(shape.hinge_ratio, movement.squat_max_hinge_ratio, bends.ratio, sense=-1), ratio_noise(shape, angles, bends)


class SquatBottom(BottomRule):
    """A rep whose bottom looked like a squat (the per-rep movement verdict, from medians over the
    deepest frames) squats the hinge, also where plates hid the knees on most frames, with a
    median's smaller noise."""

    fault = Fault.SQUATTING_THE_HINGE

    def judge(self, bottom: AtBottom) -> Optional[tuple[Finding, float]]:
        shape, movement = bottom.shape, self.profile.movement
        angles = bottom.angles
        if movement_verdict(shape, movement) != "squat":
            # A floor pull stays a hinge in the movement verdict (bent knees reach the floor), but
            # one pulled with the hips down at knee height squats it: judged here, where the pull
            # starts, since SquattingTheHinge leaves floor pulls to the bottom.
            rule = self.profile.faults.squatting_the_hinge
            limit = rule.max_thigh_deg
            if not (holds_floor_load(shape.hands_below_knee, rule) and shape.thigh >= limit):
                return None
            return Finding(shape.thigh, limit, "thigh_deg"), self.band(angles.noise_of("thigh_deg")) * shape.noise_factor
        finding, noise = squat_evidence(shape, angles, movement, SIDE_ON)
        return finding, self.band(noise) * shape.noise_factor


class SquatSeenObliquely(BottomRule):
    """On a front- or rear-oblique view, where the side-on angles are foreshortened and no other
    rule judges, the bottom is judged for a squat in 3D (the medians of the world landmarks' bends):
    what SquatBottom judges side-on, hips down at knee height or the squat pattern, and a knee-led
    bottom, the knees bent more than the hips. A hinge bends the hips most, even in a pull from the
    floor where bent knees are the lift, so a knee-led bottom squats it whatever the hands hold.
    (The 3D thigh reads a few degrees under the side-on one on the same reps filmed by two cameras,
    so a floor pull with the hips just under knee height is found by the knees leading, not by the
    thigh.) Nothing else is judged on such a view: the back's outline and the head's line are
    side-on readings."""

    fault = Fault.SQUATTING_THE_HINGE
    oblique = True

    def judge(self, bottom: AtBottom) -> Optional[tuple[Finding, float]]:
        shape, angles, movement = bottom.shape, bottom.angles, self.profile.movement
        seen = replace(shape, hip=shape.hip_3d, knee=shape.knee_3d, thigh=shape.thigh_3d, trunk=shape.trunk_3d)
        knee_led = self.profile.faults.squatting_the_hinge.knee_led_hinge_ratio
        if seen.thigh >= movement.hips_at_knee_thigh_deg or movement_verdict(seen, movement) == "squat":
            finding, noise = squat_evidence(seen, angles, movement, IN_3D)
        elif seen.hinge_ratio < knee_led:
            finding, noise = Finding(seen.hinge_ratio, knee_led, IN_3D.ratio, sense=-1), ratio_noise(seen, angles, IN_3D)
        else:
            return None
        return finding, self.band(noise) * shape.noise_factor


class RoundedBack(BottomRule):
    """The back rounded through the deepest part of the rep: the median of the back's outline
    (kinematics.back_bend_deg, read from the model's person mask) over the frames within a few
    degrees of the deepest point, once the trunk leans far enough for the back's shape to show, with
    a median's smaller noise. A rounded back is a posture held at the bottom (the bar breaking from
    the floor, the end of the lowering), so it is judged there, as the squat's bottom is: the outline
    wanders frame to frame (a plate, a line drawn over the back, a poorly read mask), and a hold
    through every frame was fragile at a Pi's frame rates where a median over the bottom is not. It
    buzzes as the athlete starts up from the bottom."""

    fault = Fault.ROUNDED_BACK

    def judge(self, bottom: AtBottom) -> Optional[tuple[Finding, float]]:
        r, shape = self.profile.faults.rounded_back, bottom.shape
        if not (shape.trunk >= r.min_trunk_deg and shape.back > r.max_back_bend_deg):
            return None
        finding = Finding(shape.back, r.max_back_bend_deg, "back_bend_deg")
        return finding, self.band(bottom.angles.noise_of("back_bend_deg")) * shape.back_noise_factor


class TooFast(BottomRule):
    """The lowering took less than the drill's tempo asks (drills with a tempo only)."""

    fault = Fault.TOO_FAST

    def judge(self, bottom: AtBottom) -> Optional[tuple[Finding, float]]:
        limit = self.profile.faults.too_fast.min_lowering_s
        if not (math.isfinite(bottom.lowering_s) and bottom.lowering_s < limit):
            return None
        # The lowering's start and its bottom are each placed to within a frame.
        band = 2 * bottom.frame_s if math.isfinite(bottom.frame_s) else math.inf
        return Finding(bottom.lowering_s, limit, "lowering_s", sense=-1), band


class LockedKnees(BottomRule):
    """The knees stayed straight over the deepest part of the rep (a deadlift lowering rightly keeps
    them nearly straight until the bar passes them, so only the bottom is judged)."""

    fault = Fault.LOCKED_KNEES

    def judge(self, bottom: AtBottom) -> Optional[tuple[Finding, float]]:
        limit = self.profile.faults.locked_knees.min_knee_deg
        if not bottom.shape.knee < limit:  # NaN (shins hidden) never compares true
            return None
        return (Finding(bottom.shape.knee, limit, "knee_flexion_deg", sense=-1),
                self.band(bottom.angles.noise_of("knee_flexion_deg")))


class IncompleteLockout(CloseRule):
    """The rep closed without the hips locking out: over the whole finish, the hips as held (the
    median near their most extended reading) stayed bent past the lockout."""

    fault = Fault.INCOMPLETE_LOCKOUT

    def judge(self, close: AtClose) -> Optional[tuple[Finding, float]]:
        limit = self.profile.reps.lockout_hip_deg
        if close.lockout_reached or not close.finish.hip > limit:
            return None
        return (Finding(close.finish.hip, limit, "hip_flexion_deg"),
                self.band(close.angles.noise_of("hip_flexion_deg")) * close.finish.noise_factor)


class OverextendedLockout(CloseRule):
    """At the finish the shoulders went behind the hip-knee line: a lean back instead of standing
    tall. Judged over the whole finish, a lean back that comes after the hips stop included, as held
    (the median near the most extended reading), so the fast end of the rise does not inflate the
    noise it is judged against and one frame does not decide."""

    fault = Fault.OVEREXTENDED_LOCKOUT

    def judge(self, close: AtClose) -> Optional[tuple[Finding, float]]:
        limit = self.profile.faults.overextended_lockout.max_extension_deg
        extension = -close.finish.hip
        if not extension > limit:
            return None
        return (Finding(extension, limit, "hip_flexion_deg"),
                self.band(close.angles.noise_of("hip_flexion_deg")) * close.finish.noise_factor)


BOTTOM_RULES: tuple[type[BottomRule], ...] = (SquatBottom, SquatSeenObliquely, RoundedBack, TooFast, LockedKnees)
CLOSE_RULES: tuple[type[CloseRule], ...] = (IncompleteLockout, OverextendedLockout)
