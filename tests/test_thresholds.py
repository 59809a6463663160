"""Every number of the drill profiles is pinned: for each threshold, one synthetic case just inside its
limit and one just outside (within a stated tolerance of it) give opposite outcomes, so moving the
threshold past its tolerance in device/analysis/profiles/*.toml fails a test here.

Renders are noise-free (noise_px=0), and the postures are held at the bottom long enough for the
One Euro smoothing to settle on the scripted value, so a fault's measured noise is ~0 and the
clear/borderline split (clear_margin_sigmas, pinned in tests/test_faults.py) does not interfere.
Where two thresholds share one number (faults.squatting_the_hinge.max_thigh_deg and
movement.hips_at_knee_thigh_deg are both 85), the other one is moved out of the way with a model
copy so that each is pinned on its own.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np
import pytest
from support.counter import ExactCounter
from support.synthetic import STANDING, Motion, Posture

from device.analysis.analyzer import HingeAnalyzer
from device.analysis.framing import upright_hip_width
from device.analysis.kinematics import Angles, AngleTracker
from device.analysis.profiles import Profile, load_profile
from device.analysis.vocabulary import (
    Fault,
    FaultRaised,
    Framing,
    FramingChanged,
    Phase,
    RepBottom,
    RepFinished,
    RepStarted,
    View,
)
from device.pose.landmarks import LANDMARK_INDEX, VISIBILITY, X, Y

FPS = 30


# --- helpers ------------------------------------------------------------------------------------


def threshold(profile: Profile, path: str) -> Any:
    value: Any = profile
    for part in path.split("."):
        value = getattr(value, part)
    return value


def tuned(name: str = "hinge", **changes: Any) -> Profile:
    """A profile with some thresholds changed; keys are dotted paths with "__" for ".", e.g.
    movement__hips_at_knee_thigh_deg=999."""
    def rebuild(model: Any, parts: list[str], value: Any) -> Any:
        if len(parts) == 1:
            return model.model_copy(update={parts[0]: value})
        return model.model_copy(update={parts[0]: rebuild(getattr(model, parts[0]), parts[1:], value)})

    profile = load_profile(name)
    for key, value in changes.items():
        profile = rebuild(profile, key.split("__"), value)
    return profile


def analyse(motion: Motion, profile: Profile | str = "hinge", fps: float = FPS, **render: Any):
    analyzer = HingeAnalyzer(load_profile(profile) if isinstance(profile, str) else profile)
    return analyzer, analyzer.run(motion.render(fps=fps, noise_px=0.0, **render))


def raised(events, fault: Fault) -> bool:
    return any(isinstance(e, FaultRaised) and e.event.fault is fault for e in events)


def reps(motion: Motion, profile: Profile | str = "hinge") -> int:
    analyzer, _ = analyse(motion, profile)
    return len(analyzer.reps)


def bottom(depth: float = 90, knee: float = 20, shin: float = 5, **changes: Any) -> Posture:
    return replace(STANDING, hip=depth, knee=knee, shin=shin, **changes)


def held_rep(low: Posture, *, via: Posture | None = None, top: Posture = STANDING, pause_s: float = 1.0,
             lower_s: float = 2.0, rise_s: float = 1.5, hands: str = "hang") -> Motion:
    """Stand, go down (through `via` if given) to `low`, hold it so the smoothing settles, come up
    (through `via` again) to `top`, stand."""
    motion = Motion().stand(1.0, hands=hands)
    if via is not None:
        motion.to(via, lower_s / 2).to(low, lower_s / 2)
    else:
        motion.to(low, lower_s)
    motion.hold(pause_s)
    if via is not None:  # back the same way
        motion.to(via, rise_s / 2).to(top, rise_s / 2)
    else:
        motion.to(top, rise_s)
    return motion.hold(1.5)


def fault_on(fault: Fault, low: Posture, profile: Profile | str = "hinge", **kw: Any) -> bool:
    _, events = analyse(held_rep(low, **kw), profile)
    return raised(events, fault)


def movement_of(low: Posture) -> str:
    analyzer, _ = analyse(held_rep(low, hands="chest"))
    (rep,) = analyzer.reps
    return rep.movement


@dataclass(frozen=True)
class Case:
    """`observe(value)` for a value just inside the limit must give `when_inside`, just outside it
    the opposite. The pair comes from the limit's coaching reason (a right angle, twice a reading's
    noise, ...), not from the profile: the test reads the profile's limit only to check that the pair
    straddles it within `tolerance` (in the case's own units, `at` maps the profile to the limit
    there). So a retune that moves the limit past the pair fails on behaviour, and a pair that
    drifted away from the limit it claims to pin fails too."""

    path: str
    tolerance: float
    inside: float
    outside: float
    observe: Callable[[float], Any]
    when_inside: Any
    when_outside: Any
    profile: str = "hinge"
    at: Optional[Callable[[Profile], float]] = None  # the limit in the values' units (default: the path's number)

    def limit_in(self, profile: Profile) -> float:
        return self.at(profile) if self.at is not None else float(threshold(profile, self.path))


# --- the rep counter ------------------------------------------------------------------------------


def counted_with_top(top_hip: float) -> int:
    """Back up to `top_hip` of hip flexion and stay there: standing (the rep closes) or not (it stalls)."""
    return reps(held_rep(bottom(), top=Posture(hip=top_hip, knee=5), pause_s=0.5).hold(1.0))


def started_on_dip(dip_hip: float) -> bool:
    _, events = analyse(held_rep(bottom(depth=dip_hip, knee=10, shin=3)))
    return any(isinstance(e, RepStarted) for e in events)


def depth_counts(profile: str) -> Callable[[float], int]:
    return lambda depth: reps(held_rep(bottom(depth=depth), pause_s=0.5), profile)


def bottom_confirmed_after_rising(rise: float) -> bool:
    """Down to 90, back up by `rise` degrees and stay there till the stream ends."""
    motion = Motion().stand(1).to(bottom(90), 1.5).hold(1.0).to(bottom(90 - rise), 0.5).hold(1.5)
    _, events = analyse(motion)
    return any(isinstance(e, RepBottom) for e in events)


def lockout_reached(profile: str) -> Callable[[float], tuple[bool, bool]]:
    def observe(top_hip: float) -> tuple[bool, bool]:
        analyzer, events = analyse(held_rep(bottom(), top=Posture(hip=top_hip, knee=5)).hold(1.0), profile)
        (rep,) = analyzer.reps
        return rep.lockout_reached, raised(events, Fault.INCOMPLETE_LOCKOUT)
    return observe


def lean_back_resumed_in_the_rep(pause_s: float) -> bool:
    """The rep counter alone, on exact readings: down to hips at 90 and up to standing (hips at 5),
    then leaning back a step at a time (1.5 degrees every 0.1 s, each a new most extended reading)
    past the 1-s finish, pausing `pause_s`, and leaning back further. A slow lean back is watched to
    its end: was the rep still open when the lean went on (so it is judged with the rep)?"""
    run = ExactCounter(knee=5.0)
    run.down_and_up(top=5)
    for step in range(1, 16):  # 1.5 s of leaning back, to hips at -17.5
        run.feed(5 - 1.5 * step, 0.1)
    resumed = run.t + pause_s - 0.1  # the last step is held its 0.1 s, then the pause's remainder
    run.feed(5 - 1.5 * 15, pause_s - 0.1 + 1e-9)
    run.feed(-30, 1.5)
    ((closed_at, _),) = run.closed
    return closed_at > resumed


# Motions whose measured down-and-up (start to lockout, as the counter times it) is ~0.43 s and ~0.57 s.
QUICK_REP_LOWER_S = {0.433: 0.25, 0.567: 0.35}


def quick_rep(duration: float) -> Motion:
    s = QUICK_REP_LOWER_S[duration]
    return Motion().stand(1).hinge(depth=90, lower_s=s, rise_s=s).stand(1)


def quick_rep_counted(duration: float) -> int:
    # The motion really takes that long by the counter's clock (with the minimum off)...
    analyzer, _ = analyse(quick_rep(duration), tuned(reps__min_rep_s=0.0))
    (rep,) = analyzer.reps
    assert rep.end_time - rep.start_time == pytest.approx(duration, abs=0.02)
    # ...and the real profile decides whether it counts.
    return reps(quick_rep(duration))


def first_seen_at_depth_for(seconds: float) -> int:
    """Someone first seen bent over (hips 90), whose smoothed hips stay at depth for `seconds`
    (the scripted hold, plus the two 100 fps frames the smoothing takes to leave depth), then
    quickly out of depth (hips 30, between standing and depth: no rep starts there), then standing
    up slowly: a lift from the floor if the bent-over posture was held for acquire_s."""
    motion = (Motion(keys=[(0.0, bottom(90))]).hold(seconds - 0.02).to(bottom(30, knee=10), 0.001).hold(0.3)
              .to(STANDING, 1.5).stand(1.5))
    analyzer = HingeAnalyzer(load_profile("hinge"))
    at_depth = []
    for pose in motion.render(fps=100, noise_px=0.0):
        analyzer.update(pose)
        assert analyzer.angles is not None  # every update measures the frame
        if analyzer.angles.hip_flexion_deg >= analyzer.profile.reps.depth_deg:
            at_depth.append(pose.timestamp)
    analyzer.finish(motion.end)
    assert at_depth[0] == 0.0 and at_depth[-1] == pytest.approx(seconds, abs=0.005)
    return len(analyzer.reps)


def away_mid_rep_for(gap_s: float) -> int:
    """Nobody in view for `gap_s` half way up (hips at 60 on the rise), then the rest of the rise."""
    half_up = bottom(60)
    motion = (Motion().stand(1).to(bottom(90), 1.5).hold(0.5).to(half_up, 0.5)
              .to(replace(half_up, present=False), 0.001).hold(gap_s)
              .to(half_up, 0.001).hold(0.5).to(STANDING, 1.0).stand(1.5))
    analyzer, _ = analyse(motion)
    # Back in view still bent over, a new rep may be picked up as if from the floor; the one that
    # began before the gap is the one that counts or is dropped.
    return sum(rep.start_time < 1.5 for rep in analyzer.reps)


def vanished_at_bottom_for(gap_s: float) -> int:
    """Nobody in view for `gap_s` at the bottom (the model lost the body behind the plates)."""
    low = bottom(90)
    motion = (Motion().stand(1).to(low, 1.5).hold(0.5).to(replace(low, present=False), 0.001).hold(gap_s)
              .to(low, 0.001).hold(0.5).to(STANDING, 1.5).stand(1.5))
    analyzer, _ = analyse(motion)
    return sum(rep.start_time < 1.5 for rep in analyzer.reps)


def _unlocked_rep_with_hold(hold_s: float):
    """Up to hips at 24 (short of the 20-degree lockout), held `hold_s`, then bending again."""
    motion = Motion().stand(1).hinge(lower_s=2.0, top=Posture(hip=24, knee=10)).hold(hold_s)
    motion.to(bottom(60), 0.3).to(STANDING, 1.0).stand(1.0)
    analyzer, events = analyse(motion)
    closed = next(e for e in events if isinstance(e, RepFinished))
    judged = any(isinstance(e, FaultRaised) and e.event.fault is Fault.INCOMPLETE_LOCKOUT and e.event.rep_index == 1
                 for e in events)
    return closed.time - analyzer.reps[0].end_time, judged  # watched at the top (end_time: top reached)


def lockout_judged_after(watched_s: float) -> bool:
    """Watched at the top `watched_s` without a lockout, then bending again: was the missing lockout
    judged (incomplete_lockout)? The hips pass top_deg before the scripted rise ends, and the bend
    shows a few frames after it starts; one short run measures that offset."""
    offset = _unlocked_rep_with_hold(0.3)[0] - 0.3
    watched, judged = _unlocked_rep_with_hold(watched_s - offset)
    assert watched == pytest.approx(min(watched_s, load_profile("hinge").reps.finish_s), abs=1.5 / FPS)
    return judged


def lockout_counted_after_holding(held_s: float) -> bool:
    """The rep counter alone, on exact readings: down to hips at 90, up to 24 (standing, short of
    the 20-degree lockout), then locked out (hips at 10) for `held_s`, then back to 24 until the rep
    closes. Did the lockout count?"""
    run = ExactCounter(knee=10.0)
    run.down_and_up(top=24)
    run.feed(24, 0.3)
    run.feed(10, held_s)
    run.feed(24, 2.0)
    ((_, done),) = run.closed
    return done.rep.lockout_reached


REP_CASES = [
    Case("reps.finish_s", 0.15, 0.85, 1.15, lockout_judged_after, False, True),
    Case("reps.lockout_hold_s", 0.02, 0.08, 0.12, lockout_counted_after_holding, False, True),
    Case("reps.settle_s", 0.06, 0.36, 0.24, lean_back_resumed_in_the_rep, False, True),
    Case("reps.top_deg", 4, 21, 29, counted_with_top, 1, 0),
    Case("reps.start_deg", 3, 38, 32, started_on_dip, True, False),
    Case("reps.depth_deg", 4, 54, 46, depth_counts("hinge"), 1, 0),
    Case("reps.depth_deg", 4, 64, 56, depth_counts("romanian_deadlift"), 1, 0, "romanian_deadlift"),
    Case("reps.depth_deg", 4, 64, 56, depth_counts("kettlebell_deadlift"), 1, 0, "kettlebell_deadlift"),
    Case("reps.depth_deg", 4, 49, 41, depth_counts("wall_tap_hinge"), 1, 0, "wall_tap_hinge"),
    Case("reps.depth_deg", 4, 49, 41, depth_counts("band_resisted_hinge"), 1, 0, "band_resisted_hinge"),
    Case("reps.rise_deg", 2, 12, 8, bottom_confirmed_after_rising, True, False),
    Case("reps.lockout_hip_deg", 3, 17, 23, lockout_reached("hinge"), (True, False), (False, True)),
    Case("reps.lockout_hip_deg", 3, 12, 18, lockout_reached("band_resisted_hinge"), (True, False), (False, True),
         "band_resisted_hinge"),
    Case("reps.min_rep_s", 0.07, 0.567, 0.433, quick_rep_counted, 1, 0),
    Case("reps.acquire_s", 0.04, 0.24, 0.16, first_seen_at_depth_for, 1, 0),
    Case("reps.max_gap_s", 0.2, 0.8, 1.2, away_mid_rep_for, 1, 0),
    Case("reps.hidden_gap_s", 0.5, 2.0, 3.0, vanished_at_bottom_for, 1, 0),
]


# --- the movement verdict -------------------------------------------------------------------------
# Posture: thigh = knee - shin, trunk = hip - thigh; hands at the chest (no load at the floor).


def squat_by_ratio(ratio: float) -> str:  # knees 80, trunk 16-42 (<= 45), thigh 70 (< 85)
    return movement_of(bottom(depth=80 * ratio, knee=80, shin=10, hands="chest"))


def squat_by_trunk(trunk: float) -> str:  # hip 96 / knee 80 = 1.2, trunk = 16 + shin
    return movement_of(bottom(depth=96, knee=80, shin=trunk - 16, hands="chest"))


def squat_by_knee(knee: float) -> str:  # ratio 1.2, shin 20: trunk ~0.2 knee + 20 (< 45)
    return movement_of(bottom(depth=1.2 * knee, knee=knee, shin=20, hands="chest"))


def squat_by_thigh(thigh: float) -> str:  # hip 140 / knee 100 = 1.4 and trunk > 45: no squat pattern
    return movement_of(bottom(depth=140, knee=100, shin=100 - thigh, hands="chest"))


def movement_with_hands_below_knee(below: float) -> str:
    """A squat-shaped bottom (thigh 75, knees 90, trunk 20-40: ratio <= 1.27) with the hands hanging
    `below` leg lengths under the knees: at or below them the hands hold a load, and it is a
    (squatted) deadlift, a hinge; above them, a squat."""
    trunk = _bisect(lambda t: hands_below_knee(t, 75) - below, 0.0, 45.0)
    low = bottom(depth=trunk + 75, knee=90, shin=15, hands="hang")
    analyzer, _ = analyse(held_rep(low, hands="hang"))
    (rep,) = analyzer.reps
    return rep.movement


MOVEMENT_CASES = [
    Case("movement.load_hands_below_knee", 0.06, -0.05, 0.05, movement_with_hands_below_knee, "squat", "hinge"),
    Case("movement.squat_max_hinge_ratio", 0.1, 1.2, 1.4, squat_by_ratio, "squat", "hinge"),
    Case("movement.squat_max_trunk_deg", 4, 41, 49, squat_by_trunk, "squat", "hinge"),
    Case("movement.squat_min_knee_deg", 5, 65, 55, squat_by_knee, "squat", "hinge"),
    Case("movement.hips_at_knee_thigh_deg", 4, 89, 81, squat_by_thigh, "squat", "hinge"),
]


# --- the faults -----------------------------------------------------------------------------------

SQUAT = Fault.SQUATTING_THE_HINGE
# The frame rule alone: the per-rep bottom verdict that also raises squatting_the_hinge is moved away.
FRAME_RULE_ONLY: dict[str, Any] = {"movement__hips_at_knee_thigh_deg": 999.0, "movement__squat_max_hinge_ratio": 0.01}


def squat_checked_from(hip: float) -> bool:  # knee 45, ratio ~1, trunk ~hip - 25: the squat shape, held
    return fault_on(SQUAT, bottom(depth=hip, knee=45, shin=20, hands="chest"), tuned(**FRAME_RULE_ONLY), hands="chest")


def squat_by_thigh_frames(thigh: float) -> bool:  # ratio 1.4, knees under 90: only the thigh can make it a squat
    return fault_on(SQUAT, bottom(depth=120, knee=86, shin=86 - thigh, hands="chest"), tuned(**FRAME_RULE_ONLY),
                    hands="chest")


def squat_by_knee_past_max(knee: float) -> bool:
    """Hips high (hip 140: ratio >= 1.47, trunk >= 70), thigh 25 short of the knee (< 85), hands at
    the chest: only the knee limit can call it a squat."""
    return fault_on(SQUAT, bottom(depth=140, knee=knee, shin=25, hands="chest"), tuned(**FRAME_RULE_ONLY),
                    hands="chest")


def squat_by_ratio_frames(ratio: float) -> bool:
    """Knees 50 (past ratio_min_knee_deg 40), trunk 25-35, hip = ratio x 50; the knees bend last
    (from 30) so the ratio only falls toward its final value while the knees are past 40."""
    low = bottom(depth=50 * ratio, knee=50, shin=15, hands="chest")
    return fault_on(SQUAT, low, tuned(**FRAME_RULE_ONLY), via=replace(low, knee=30), hands="chest")


def squat_by_trunk_frames(trunk: float) -> bool:
    """Ratio 1.2 (hip 60, knee 50); trunk = 10 + shin. Reached from a more bent-over posture with
    the knees at 35 (under ratio_min_knee_deg), so the trunk only rises to its final value."""
    low = bottom(depth=60, knee=50, shin=trunk - 10, hands="chest")
    return fault_on(SQUAT, low, tuned(**FRAME_RULE_ONLY), via=replace(low, knee=35), hands="chest")


def squat_by_knee_frames(knee: float) -> bool:  # ratio 1.2, trunk ~23
    return fault_on(SQUAT, bottom(depth=1.2 * knee, knee=knee, shin=15, hands="chest"), tuned(**FRAME_RULE_ONLY),
                    hands="chest")


def hands_below_knee(trunk: float, thigh: float) -> float:
    """Wrists hanging from the shoulders, below the knee, in leg lengths (shin 15 degrees)."""
    from support.synthetic import ANKLE_HEIGHT, FOREARM, SHIN, THIGH, TRUNK, UPPER_ARM
    knee_up = ANKLE_HEIGHT + SHIN * math.cos(math.radians(15))
    wrist_up = knee_up + THIGH * math.cos(math.radians(thigh)) + TRUNK * math.cos(math.radians(trunk)) - UPPER_ARM - FOREARM
    return knee_up - wrist_up


def floor_pull_exempts(below: float) -> bool:
    """Dowel hinge (max_knee_deg 45): knees bent to 60, hips high (ratio > 1.3, trunk > 45: the
    bottom verdict says hinge). Hands hanging `below` leg lengths below the knees at the bottom and
    on the way (the trunk is set so the wrists stay at that height while the knees bend from 40):
    at or below the knees it is a load taken from the floor and the bent knees are not squatting.
    The measured height strays up to ~0.008 from the scripted one on the way down, hence the
    case's tolerance of 0.06 for hands scripted 0.05 either side."""
    t_low, t_via = _bisect(lambda t: hands_below_knee(t, 45) - below), _bisect(lambda t: hands_below_knee(t, 25) - below)
    low = bottom(depth=t_low + 45, knee=60, shin=15)
    via = bottom(depth=t_via + 25, knee=40, shin=15)
    motion = Motion().stand(1.0).to(via, 1.5).to(low, 1.0).hold(1.0).to(via, 0.8).to(STANDING, 1.0).stand(1.5)
    analyzer = HingeAnalyzer(load_profile("dowel_hinge"))
    seen = []
    events = []
    for pose in motion.render(fps=FPS, noise_px=0.0):
        events += analyzer.update(pose)
        assert analyzer.angles is not None  # every update measures the frame
        if analyzer.counter.rep is not None and analyzer.angles.knee_flexion_deg > 45:
            seen.append(analyzer.angles.hands_below_knee)
    events += analyzer.finish(motion.end)
    # Wherever the knees are past the dowel hinge's 45, the hands are measured at the scripted height.
    assert seen and min(seen) == pytest.approx(below, abs=0.02) and max(seen) == pytest.approx(below, abs=0.02)
    return raised(events, SQUAT)


def floor_pull_bottom(thigh: float) -> Posture:
    """A floor pull's bottom: hands hanging 0.3 leg lengths under the knees (a load at the floor),
    shins 15 degrees forward, hips `thigh` from vertical, the trunk leaning past 45 (a hinge's
    ratio: only the hips' height can make it a squat)."""
    trunk = _bisect(lambda t: hands_below_knee(t, thigh) - 0.3, 45.0, 90.0)
    return bottom(depth=trunk + thigh, knee=thigh + 15, shin=15, hands="hang")


def floor_pull_squatted(thigh: float) -> bool:
    """A floor pull whose bottom has the hips `thigh` from vertical, pulled up to standing: with the
    hips down at knee height it is pulled from a squat, judged at the bottom where the pull starts."""
    return fault_on(SQUAT, floor_pull_bottom(thigh), "deadlift")


# An oblique view: turned this far toward the camera (hips ~0.33 trunk lengths wide standing, past the
# oblique limit, short of facing it), where only the squat is judged, in 3D (rules.SquatSeenObliquely).
OBLIQUE_TURN = 35.0


def oblique_floor_pull(thigh: float, knee: float, below: float = 0.1) -> Motion:
    """A pull from the floor filmed obliquely throughout: hands hanging `below` leg lengths under the
    knees at the bottom (a load at the floor), hips `thigh` from vertical, knees bent `knee` (the
    shins take the rest), the trunk leaning as far as the hands' height needs."""
    trunk = _bisect(lambda t: hands_below_knee(t, thigh) - below, 0.0, 90.0)
    low = Posture(hip=trunk + thigh, knee=knee, shin=knee - thigh, hands="hang", turn=OBLIQUE_TURN)
    top = replace(STANDING, turn=OBLIQUE_TURN)
    return (Motion().stand(1.5, turn=OBLIQUE_TURN).to(low, 2.0).hold(1.0).to(top, 1.5)
            .stand(1.5, turn=OBLIQUE_TURN))


def oblique_pull_knee_led(ratio: float) -> bool:
    """Hips above knee height (thigh 78), the knees bent so the hips bend `ratio` times as much: a
    hinge bends the hips most; knees bent more than the hips led the pull."""
    thigh = 78.0
    trunk = _bisect(lambda t: hands_below_knee(t, thigh) - 0.1, 0.0, 90.0)
    analyzer, events = analyse(oblique_floor_pull(thigh, (trunk + thigh) / ratio), "deadlift")
    assert analyzer.view is View.OBLIQUE
    return raised(events, SQUAT)


def oblique_pull_hips_at(thigh: float) -> bool:
    """Knees at 15 more than the thigh (the hips still bend more than the knees): only the hips'
    height, read in 3D, can squat it."""
    analyzer, events = analyse(oblique_floor_pull(thigh, thigh + 15), "deadlift")
    assert analyzer.view is View.OBLIQUE and analyzer.reps and analyzer.reps[0].judged is False
    return raised(events, SQUAT)


def _bisect(f: Callable[[float], float], lo: float = 0.0, hi: float = 120.0) -> float:
    flo = f(lo)
    for _ in range(60):
        mid = (lo + hi) / 2
        if (f(mid) > 0) == (flo > 0):
            lo, flo = mid, f(mid)
        else:
            hi = mid
    return (lo + hi) / 2


def squat_hold_runs(run_s: float) -> bool:
    """A squat shape held through the bottom (knees 50, ratio 1.2: the frame rule, not the bottom
    verdict), at 100 fps, with one unusable frame (hips hidden) after every `run_s` of usable ones:
    the fault's hold restarts at each."""
    low = bottom(depth=60, knee=50, shin=15, hands="chest")
    return _held_in_runs(held_rep(low, via=replace(low, knee=30), hands="chest"), SQUAT, run_s, "hinge")


def _held_in_runs(motion: Motion, fault: Fault, run_s: float, profile: Profile | str) -> bool:
    fps = 100
    step = round(run_s * fps) + 1  # run_s spans `step` usable frames, then one hidden
    hidden = tuple(
        (i / fps - 1e-6, i / fps + 1e-6, f"{side}_hip")
        for i in range(step, int(motion.end * fps), step + 1) for side in ("left", "right")
    )
    _, events = analyse(motion, profile, fps=fps, hidden=hidden)
    return raised(events, fault)


def head_hold_runs(run_s: float) -> bool:
    """Head cranked back (-65) all the way through: never buzzed if every run of usable frames is
    shorter than the hold."""
    motion = Motion().stand(1, head=-65).to(bottom(90, head=-65), 2.0).hold(1.0).to(Posture(head=-65), 1.5).stand(1.5, head=-65)
    return _held_in_runs(motion, Fault.HEAD_NOT_NEUTRAL, run_s, "hinge")


def locked_knees_at(knee: float) -> bool:
    return fault_on(Fault.LOCKED_KNEES, bottom(90, knee=knee, shin=knee / 2))


def head_at_trunk(trunk: float) -> bool:  # thigh 15: hip = trunk + 15
    return fault_on(Fault.HEAD_NOT_NEUTRAL, bottom(trunk + 15, head=-65))


def head_at(head: float) -> bool:
    return fault_on(Fault.HEAD_NOT_NEUTRAL, bottom(90, head=head))


def rounded_by_bend(bend: float) -> bool:
    """The back's outline turning `bend` over the trunk at the bottom of a 90-degree hinge (the
    synthetic outline is an exact arc, so the fitted bend is the scripted one)."""
    return fault_on(Fault.ROUNDED_BACK, bottom(90, back=bend))


def rounded_from_trunk(trunk: float) -> bool:  # thigh 15; a back clearly rounded (40)
    return fault_on(Fault.ROUNDED_BACK, bottom(trunk + 15, back=40))


def overextended_at(top_hip: float) -> bool:
    return fault_on(Fault.OVEREXTENDED_LOCKOUT, bottom(90), top=Posture(hip=top_hip, knee=0))


# Scripted lowering (s) -> the lowering the counter measures (onset to deepest point), ~0.83x.
LOWER_S_FOR = {1.7: 2.1, 1.3: 1.6, 1.133: 1.4, 0.833: 1.0, 0.9: 1.1, 0.667: 0.8}


def too_fast_on(profile: str) -> Callable[[float], bool]:
    def observe(measured: float) -> bool:
        motion = Motion().stand(1).hinge(depth=90, lower_s=LOWER_S_FOR[measured]).stand(1.5)
        analyzer, events = analyse(motion, profile)
        (rep,) = analyzer.reps
        assert rep.lowering_s == pytest.approx(measured, abs=0.02)
        # Raised, or (within the two frames the lowering is timed to) kept as borderline: either
        # way the limit was crossed.
        return raised(events, Fault.TOO_FAST) or any(b.fault is Fault.TOO_FAST for b in rep.borderline)
    return observe


def drill_knee_limit(profile: str) -> Callable[[float], bool]:
    """Hips high (hip 100, ratio >= 2, trunk >= 51), thigh under 85, hands at the chest, knees at
    `knee`: only the drill's knee limit can call it a squat."""
    def observe(knee: float) -> bool:
        low = bottom(depth=100, knee=knee, shin=10, hands="chest")
        return fault_on(SQUAT, low, tuned(profile, **FRAME_RULE_ONLY), hands="chest")
    return observe


def head_buzzes_at_sigmas(past: float) -> bool:
    """The dropped head `past` times its measured noise (2 degrees) beyond its limit on every frame
    of 0.3 s (three holds): buzzed, not merely borderline? (The limit is read from the profile: this
    case pins the margin in noise units, not the head's limit.)"""
    from device.analysis.faults import FaultJudge, Moment
    from device.analysis.kinematics import SMOOTHED, Angles

    profile = load_profile("hinge")
    head = profile.faults.head_not_neutral
    judge = FaultJudge(profile)
    events = []
    for i in range(10):
        angles = Angles(i / 30, True, "left", 1, hip_flexion_deg=90, knee_flexion_deg=20, trunk_deg=60, thigh_deg=30,
                        head_offset_deg=head.neutral_offset_deg + head.max_dropped_deg + past * 2.0,
                        noise={q: 2.0 for q in SMOOTHED})
        events += judge.observe(Moment(angles, Phase.LOWERING, 1, attempt=1))
    return any(e.fault is Fault.HEAD_NOT_NEUTRAL and not e.borderline for e in events)


LOAD = Fault.LOAD_AWAY_FROM_BODY
# load_away_from_body is off in every shipped profile (a 2D wrist is not the bar); its numbers are
# still pinned, on the plain hinge with the rule switched on, for a trainer's own profile.
LOAD_JUDGED = tuned(faults__load_away_from_body__enabled=True)


def _bar_ahead(hip: float, reach: float) -> Posture:
    """The bar `reach` leg lengths off the front of the legs (0: riding them)."""
    return bottom(depth=hip, knee=20, shin=5, hands="legs", reach=reach)


def _load_forward_at(hip: float, reach: float) -> float:
    """The wrists ahead of mid-foot (leg lengths), as measured on the held posture."""
    return _tracked(Motion(keys=[(0.0, _bar_ahead(hip, reach))]).hold(0.5).render(fps=FPS, noise_px=0.0)).load_forward


def load_away_at(forward: float) -> bool:
    """Hips at 90, the bar held off the legs so the wrists are `forward` leg lengths ahead of mid-foot."""
    reach = _bisect(lambda r: _load_forward_at(90, r) - forward, 0.0, 0.6)
    assert _load_forward_at(90, reach) == pytest.approx(forward, abs=0.002)
    return fault_on(LOAD, _bar_ahead(90, reach), LOAD_JUDGED, hands="legs")


def load_away_checked_from(hip: float) -> bool:
    """The bar far off the legs (reach 0.4: wrists 0.3+ leg lengths past mid-foot), hips held at `hip`."""
    assert _load_forward_at(hip, 0.4) > 0.3
    return fault_on(LOAD, _bar_ahead(hip, 0.4), LOAD_JUDGED, hands="legs")


# The drills' knee limit, from its reason: soft knees are 15-25 degrees, so past about 45 the knees
# do the hips' work (past 50 in the pull-through, where the rope between the legs bends them more).
# Each pair sits 4 degrees either side: twice the knee's typical noise.
SOFT_KNEES = (41, 49)
DRILL_KNEE_PAIRS = {"band_resisted_hinge": SOFT_KNEES, "cable_pulled_hinge": SOFT_KNEES, "dowel_hinge": SOFT_KNEES,
                    "hands_behind_head_hinge": SOFT_KNEES, "pull_through": (46, 54), "romanian_deadlift": SOFT_KNEES,
                    "sternum_loaded_hinge": SOFT_KNEES, "wall_tap_hinge": SOFT_KNEES}
# The tempo drills' lowering, from their reasons: patterning drills lower over about two seconds
# (under 1.5 the contacts cannot be felt), the pulled and wall drills over most of two (1.0), the
# pull-through lets the cable take the hands over most of a second (0.8). Pairs the scripted
# lowerings can give (LOWER_S_FOR), within two frame intervals and a bit of the limit.
PATTERNING, CONTROLLED, CABLE = (0.2, 1.7, 1.3), (0.17, 1.133, 0.833), (0.14, 0.9, 0.667)
DRILL_TEMPO_PAIRS = {"band_resisted_hinge": CONTROLLED, "cable_pulled_hinge": CONTROLLED,
                     "hands_behind_head_hinge": PATTERNING, "pull_through": CABLE, "sternum_loaded_hinge": PATTERNING,
                     "wall_tap_hinge": CONTROLLED}

FAULT_CASES = [
    Case("faults.clear_margin_sigmas", 0.2, 1.8, 2.2, head_buzzes_at_sigmas, False, True),
    Case("faults.load_away_from_body.max_forward", 0.03, 0.22, 0.28, load_away_at, False, True),
    Case("faults.load_away_from_body.check_from_hip_deg", 4, 36, 44, load_away_checked_from, False, True),
    *(Case("faults.squatting_the_hinge.max_knee_deg", 4, inside, outside, drill_knee_limit(name), False,
           True, name) for name, (inside, outside) in DRILL_KNEE_PAIRS.items()),
    *(Case("faults.too_fast.min_lowering_s", *pair, too_fast_on(name), False, True, name)
      for name, pair in DRILL_TEMPO_PAIRS.items()),
    Case("faults.hold_s", 0.02, 0.08, 0.12, head_hold_runs, False, True),
    Case("faults.squatting_the_hinge.hold_s", 0.04, 0.16, 0.24, squat_hold_runs, False, True),
    Case("faults.squatting_the_hinge.check_from_hip_deg", 3, 37, 43, squat_checked_from, False, True),
    Case("faults.squatting_the_hinge.max_thigh_deg", 4, 81, 89, squat_by_thigh_frames, False, True),
    Case("faults.squatting_the_hinge.max_knee_deg", 5, 85, 95, squat_by_knee_past_max, False, True),
    Case("faults.squatting_the_hinge.min_hinge_ratio", 0.1, 1.4, 1.2, squat_by_ratio_frames, False, True),
    Case("faults.squatting_the_hinge.ratio_max_trunk_deg", 4, 49, 41, squat_by_trunk_frames, False, True),
    Case("faults.squatting_the_hinge.ratio_min_knee_deg", 4, 36, 44, squat_by_knee_frames, False, True),
    Case("faults.squatting_the_hinge.floor_hands_below_knee", 0.06, 0.05, -0.05, floor_pull_exempts, False, True,
         "dowel_hinge"),
    # Hips at knee height (thigh within 5 of horizontal) in a floor pull, judged at the bottom: four either side.
    Case("faults.squatting_the_hinge.max_thigh_deg", 4, 81, 89, floor_pull_squatted, False, True, "deadlift"),
    # Obliquely, judged in 3D: the knees overtaking the hips (hip/knee 1), 0.1 either side (a good
    # floor pull reads 1.1 or more); hips at knee height as side-on, four degrees either side.
    Case("faults.squatting_the_hinge.knee_led_hinge_ratio", 0.1, 1.1, 0.9, oblique_pull_knee_led, False, True,
         "deadlift"),
    Case("movement.hips_at_knee_thigh_deg", 4, 81, 89, oblique_pull_hips_at, False, True, "deadlift"),
    Case("faults.locked_knees.min_knee_deg", 2, 10, 6, locked_knees_at, False, True),
    Case("faults.head_not_neutral.min_trunk_deg", 4, 36, 44, head_at_trunk, False, True),
    # The head's limits are measured from the model's neutral ear (neutral_offset_deg): the ear
    # readings that drop or crank are neutral + max_dropped and neutral - max_cranked. The pairs come
    # from the reasons: a neck bent ~25 degrees reads ~16-17 past a neutral at ~12 (renders), so ~28;
    # a head thrown back reads 60 behind that neutral, so ~-48. Three degrees either side: half the
    # ear's typical wander.
    Case("faults.head_not_neutral.max_dropped_deg", 3, 25, 31, head_at, False, True,
         at=lambda p: p.faults.head_not_neutral.neutral_offset_deg + p.faults.head_not_neutral.max_dropped_deg),
    Case("faults.head_not_neutral.max_cranked_deg", 3, -45, -51, head_at, False, True,
         at=lambda p: p.faults.head_not_neutral.neutral_offset_deg - p.faults.head_not_neutral.max_cranked_deg),
    # The back's outline: a flat back reads within about 15 of straight, a back a coach calls rounded
    # 30 or more; the limit lies between (25). Four degrees either side.
    Case("faults.rounded_back.max_back_bend_deg", 4, 21, 29, rounded_by_bend, False, True),
    # Judged once the trunk leans halfway to horizontal (45): four degrees either side.
    Case("faults.rounded_back.min_trunk_deg", 4, 41, 49, rounded_from_trunk, False, True),
    # Hips 15 past straight at the top (the values are hip flexion, so the limit reads -15 there).
    Case("faults.overextended_lockout.max_extension_deg", 3, -12, -18, overextended_at, False, True,
         at=lambda p: -p.faults.overextended_lockout.max_extension_deg),
    Case("faults.too_fast.min_lowering_s", 0.2, 1.7, 1.3, too_fast_on("dowel_hinge"), False, True, "dowel_hinge"),
    Case("faults.too_fast.min_lowering_s", 0.17, 1.133, 0.833, too_fast_on("romanian_deadlift"), False, True,
         "romanian_deadlift"),
]


# --- framing and the view ---------------------------------------------------------------------------


def _turn_for(ratio_per_sin: float, ratio: float) -> float:
    return math.degrees(math.asin(ratio / ratio_per_sin))


def _standing_ratios(turn: float) -> tuple[float, float]:
    """Shoulder and hip width over trunk length, as the framing check measures them."""
    pose = Motion().stand(0.1, turn=turn).render(fps=FPS)[-1]
    lm = pose.landmarks

    def xy(name: str) -> np.ndarray:
        return lm[LANDMARK_INDEX[name], :2]

    trunk = float(np.hypot(*((xy("left_shoulder") + xy("right_shoulder")) / 2 - (xy("left_hip") + xy("right_hip")) / 2)))
    return (float(np.hypot(*(xy("left_shoulder") - xy("right_shoulder")))) / trunk,
            float(np.hypot(*(xy("left_hip") - xy("right_hip")))) / trunk)


def _framing_at_ratio(which: int, ratio: float, profile: Profile) -> Framing:
    # Standing, shoulders span 0.71 sin(turn) and hips 0.48 sin(turn) trunk lengths.
    per_sin = _standing_ratios(90)[which]
    turn = _turn_for(per_sin, ratio)
    assert _standing_ratios(turn)[which] == pytest.approx(ratio, abs=0.005)
    analyzer, _ = analyse(Motion().stand(1.5, turn=turn), profile)
    return analyzer.framing


def facing_by_shoulders(ratio: float) -> Framing:
    # The hips' own limit is moved out of the way, so the shoulders alone decide.
    return _framing_at_ratio(0, ratio, tuned(framing__facing_hip_ratio=0.01))


def facing_by_hips(ratio: float) -> Framing:
    return _framing_at_ratio(1, ratio, tuned(framing__facing_shoulder_ratio=0.01))


def _turn_for_hip_width(width: float) -> float:
    per_sin = upright_hip_width(Motion().stand(0.1, turn=90).render(fps=FPS)[-1])
    assert per_sin is not None
    turn = _turn_for(per_sin, width)
    assert upright_hip_width(Motion().stand(0.1, turn=turn).render(fps=FPS)[-1]) == pytest.approx(width, abs=0.005)
    return turn


def oblique_at(width: float) -> bool:
    analyzer, _ = analyse(Motion().stand(2.0, turn=_turn_for_hip_width(width)))
    return analyzer.view is View.OBLIQUE


def side_on_again_at(width: float) -> bool:
    """First clearly oblique (hips 0.33), then turned back to `width`: is it still oblique?"""
    turn = _turn_for_hip_width(width)
    motion = Motion().stand(1.5, turn=_turn_for_hip_width(0.33)).to(Posture(turn=turn), 0.3).hold(2.0)
    analyzer, _ = analyse(motion)
    return analyzer.view is View.OBLIQUE


def oblique_after_turning_for(seconds: float) -> bool:
    """Standing side-on for 2 s, then turned clearly oblique (hips 0.33) for `seconds`: is the view
    oblique yet? A median over the window turns once over half its upright frames are oblique."""
    motion = Motion().stand(2.0).to(Posture(turn=_turn_for_hip_width(0.33)), 0.001).hold(seconds)
    analyzer, _ = analyse(motion)
    return analyzer.view is View.OBLIQUE


def nobody_announced_after(gap_s: float) -> bool:
    """Nobody in view for `gap_s` between two stretches of standing: is "nobody" announced?"""
    motion = Motion().stand(1.5).to(Posture(present=False), 0.001).hold(gap_s).to(STANDING, 0.001).stand(1.5)
    _, events = analyse(motion)
    return any(isinstance(e, FramingChanged) and e.framing is Framing.NOBODY for e in events)


FRAMING_CASES = [
    Case("framing.hold_s", 0.07, 0.433, 0.567, nobody_announced_after, False, True),
    Case("framing.facing_shoulder_ratio", 0.06, 0.54, 0.66, facing_by_shoulders, Framing.OK, Framing.FACING_CAMERA),
    Case("framing.facing_hip_ratio", 0.04, 0.36, 0.44, facing_by_hips, Framing.OK, Framing.FACING_CAMERA),
    Case("framing.oblique_hip_ratio", 0.03, 0.21, 0.27, oblique_at, False, True),
    Case("framing.side_hip_ratio", 0.02, 0.18, 0.22, side_on_again_at, False, True),
    # A second of upright frames (a rep's standing between reps): turned after half of it.
    Case("framing.view_window_s", 0.06, 0.45, 0.55, oblique_after_turning_for, False, True,
         at=lambda p: p.framing.view_window_s / 2),
]


# --- kinematics: which landmarks are trusted ----------------------------------------------------------


def _tracked(poses) -> Angles:
    tracker = AngleTracker(load_profile("hinge").kinematics)
    for pose in poses:
        angles = tracker.update(pose)
    return angles


def head_read_with_ear_visibility(visibility: float) -> bool:
    poses = Motion().stand(1.0).render(fps=FPS)
    last = poses[-1]
    lm = last.landmarks.copy()
    for side in ("left", "right"):
        lm[LANDMARK_INDEX[f"{side}_ear"], VISIBILITY] = visibility
    angles = _tracked(poses[:-1] + [replace(last, landmarks=lm)])
    return math.isfinite(angles.head_offset_deg)


def knee_read_with_shin_at(fraction: float) -> bool:
    """After a second of full-length shins, both shins read `fraction` of their length (each ankle
    slid toward its knee along the bone, so the angle is unchanged): is the knee angle still read?"""
    poses = Motion().stand(1.0).render(fps=FPS)
    last = poses[-1]
    lm = last.landmarks.copy()
    for side in ("left", "right"):
        k, a = LANDMARK_INDEX[f"{side}_knee"], LANDMARK_INDEX[f"{side}_ankle"]
        lm[a, [X, Y]] = lm[k, [X, Y]] + fraction * (lm[a, [X, Y]] - lm[k, [X, Y]])
    angles = _tracked(poses[:-1] + [replace(last, landmarks=lm)])
    return math.isfinite(angles.knee_flexion_deg)


def _side_after(lead: float, seconds: float) -> str:
    """Standing with the left side to the camera (visibility 0.97 against 0.7), then for `seconds`
    the right side's joints read `lead` more visible than the left's: which side is measured?"""
    poses = Motion().stand(1.0 + seconds).render(fps=FPS)
    for pose in poses:
        if pose.timestamp >= 1.0:
            for joint in ("shoulder", "hip", "knee", "ankle"):
                pose.landmarks[LANDMARK_INDEX[f"left_{joint}"], VISIBILITY] = 0.8
                pose.landmarks[LANDMARK_INDEX[f"right_{joint}"], VISIBILITY] = 0.8 + lead
    return _tracked(poses).side


def side_switched_by_lead(lead: float) -> bool:
    return _side_after(lead, 1.5) == "right"


def side_switched_after(seconds: float) -> bool:
    return _side_after(0.15, seconds) == "right"


def noise_remembered_for(seconds: float) -> bool:
    """A second of 4-px jitter while standing, then `seconds` of steady readings: does the hip's
    measured noise still count the jitter (over 1.5 times a steady stance's)?"""
    motion = Motion().stand(1.0 + seconds)
    steady = motion.render(fps=FPS, noise_px=0.0)
    jittered = [noisy if noisy.timestamp < 1.0 else still
                for noisy, still in zip(motion.render(fps=FPS, noise_px=4.0, seed=3), steady)]
    return _tracked(jittered).noise["hip_flexion_deg"] > 1.5 * _tracked(steady).noise["hip_flexion_deg"]


def legs_read_after_stepping_back_for(seconds: float) -> bool:
    """Standing 4 s, then stepped back to 0.6 of the size (every bone reads 0.6 of its usual length,
    under min_bone_fraction) for `seconds`: are the legs read again? The usual length is the 90th
    percentile of the window, so it follows once nine tenths of the window are the new size."""
    motion = Motion().stand(4.0).to(Posture(zoom=0.6), 0.001).hold(seconds)
    return math.isfinite(_tracked(motion.render(fps=FPS, noise_px=0.0)).knee_flexion_deg)


KINEMATICS_CASES = [
    Case("kinematics.side_switch_margin", 0.02, 0.08, 0.12, side_switched_by_lead, False, True),
    Case("kinematics.side_switch_s", 0.07, 0.433, 0.567, side_switched_after, False, True),
    Case("kinematics.min_visibility", 0.05, 0.55, 0.45, head_read_with_ear_visibility, True, False),
    Case("kinematics.min_bone_fraction", 0.05, 0.75, 0.65, knee_read_with_shin_at, True, False),
    # The noise of the frames being judged: a second back, not the whole set.
    Case("kinematics.noise_window_s", 0.15, 0.85, 1.15, noise_remembered_for, True, False),
    # Longer than a plate hides a shin (1-2 s), short enough to follow a step nearer or farther.
    Case("kinematics.bone_window_s", 0.25, 2.95, 2.55, legs_read_after_stepping_back_for, True, False,
         at=lambda p: 0.9 * p.kinematics.bone_window_s),
]


CASES = REP_CASES + MOVEMENT_CASES + FAULT_CASES + FRAMING_CASES + KINEMATICS_CASES


def _id(case: Case) -> str:
    return f"{case.profile}:{case.path}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_threshold_is_pinned(case: Case):
    limit = case.limit_in(load_profile(case.profile))
    # The pair straddles the profile's limit, each value within the case's tolerance of it: a pair
    # that no longer brackets the number it claims to pin would prove nothing about it.
    assert (case.inside - limit) * (case.outside - limit) < 0, f"{case.path}: {case.inside}/{case.outside} vs {limit}"
    for value in (case.inside, case.outside):
        assert abs(value - limit) <= case.tolerance + 1e-9, f"{case.path}: {value} is not near {limit}"
    assert case.when_inside != case.when_outside
    assert case.observe(case.inside) == case.when_inside, f"{case.path}: inside value {case.inside}"
    assert case.observe(case.outside) == case.when_outside, f"{case.path}: outside value {case.outside}"


def test_the_knee_limit_needs_the_hands_seen_above_the_knees():
    """Knees at 105 (15 past the hinge's 90; hip 150, ratio 1.43, thigh 80) call it a squat only
    with the wrists seen: hidden (behind plates, the body) they may be holding a load at the floor,
    where bent knees are the lift."""
    low = bottom(depth=150, knee=105, shin=25, hands="chest")
    assert fault_on(SQUAT, low, tuned(**FRAME_RULE_ONLY), hands="chest")
    wrists = tuple((0.0, 60.0, f"{side}_wrist") for side in ("left", "right"))
    _, events = analyse(held_rep(low, hands="chest"), tuned(**FRAME_RULE_ONLY), hidden=wrists)
    assert not raised(events, SQUAT)


def test_a_squat_shows_by_its_clearest_sign():
    """Hips a hair past knee height (thigh 85.5 against 85: within the noise) while the knees are 20
    past their 90: the frame's evidence is the knees, clear, so it buzzes, not the thigh's borderline."""
    via = bottom(depth=140, knee=85, shin=-0.5, hands="chest")  # thigh at 85.5 first, knees under 90
    low = bottom(depth=150, knee=110, shin=24.5, hands="chest")  # then the knees bend on to 110
    _, events = analyse(held_rep(low, via=via, hands="chest"), tuned(**FRAME_RULE_ONLY))
    (event,) = [e.event for e in events if isinstance(e, FaultRaised) and e.event.fault is SQUAT]
    assert event.threshold == 90 and event.margin > event.noise and not event.borderline
    assert event.quantity == "knee_flexion_deg"  # what the page says it in: "knees bent 110°", not the thigh


def test_a_coachs_own_cue_words_are_said_from_the_next_fault_on():
    """Outside: without the coach's words the squat says the profile's cue. Inside: words set
    after the analyzer was built (as the page sets them on a running station) are the ones said."""
    from device.analysis.cues import CueWords

    via = bottom(depth=140, knee=85, shin=-0.5, hands="chest")
    low = bottom(depth=150, knee=110, shin=24.5, hands="chest")
    frames = held_rep(low, via=via, hands="chest").render(fps=FPS, noise_px=0.0)
    profile = tuned(**FRAME_RULE_ONLY)
    words = CueWords()

    def said(analyzer: HingeAnalyzer) -> str:
        (event,) = [e.event for e in analyzer.run(frames) if isinstance(e, FaultRaised) and e.event.fault is SQUAT]
        return event.cue

    assert said(HingeAnalyzer(profile, cues=words.for_drill("hinge"))) == profile.faults.cue(SQUAT)
    running = HingeAnalyzer(profile, cues=words.for_drill("hinge"))
    words.replace("hinge", {SQUAT.value: "  sit back,   not down "})
    assert said(running) == "sit back, not down"
    assert said(HingeAnalyzer(profile, cues=words.for_drill("dowel_hinge"))) == profile.faults.cue(SQUAT)  # per drill


# Numbers in the profiles that are not limits a lift crosses, with why no inside/outside case pins them.
NOT_LIMITS = {
    "kinematics.min_cutoff_hz": "One Euro filter shape; test_kinematics pins what it buys (noise down, a rep followed)",
    "kinematics.beta": "One Euro filter shape (speed response), as above",
    "kinematics.d_cutoff_hz": "One Euro filter shape (derivative smoothing), as above",
    "reps.trace_points": "how many points of the rep's trace the page draws",
    "faults.too_fast.min_lowering_s": "0.5 only where too_fast is off (hinge, deadlift, kettlebell_deadlift); every drill's own is pinned",
    "faults.load_away_from_body.min_hands_below_shoulder": "tells hands held at the chest (0.1) from hanging (0.6+); no posture lies between",
}


# Numbers pinned through the cases of others: the head's neutral ear is in both head limits' cases
# (each pair straddles neutral + max_dropped or neutral - max_cranked), so moving it past either pair
# fails one of them.
PINNED_JOINTLY = ("faults.head_not_neutral.neutral_offset_deg",)


def _numbers(model: Any, prefix: str = ""):
    for name in type(model).model_fields:
        value = getattr(model, name)
        if hasattr(type(value), "model_fields"):
            yield from _numbers(value, f"{prefix}{name}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield f"{prefix}{name}", float(value)


def test_every_limit_in_every_profile_is_pinned_by_a_case():
    """Each number a profile sets (the plain hinge's, and every drill's that differs from it) has an
    inside/outside case with that path and value, in some profile running the same rule, or is named
    in NOT_LIMITS with why it is not a limit."""
    from device.analysis.profiles import list_profiles

    plain = dict(_numbers(load_profile("hinge")))
    pinned = {(case.profile, case.path) for case in CASES} | {("hinge", path) for path in PINNED_JOINTLY}
    # A case run in a drill that keeps the plain hinge's number pins that number for the plain hinge too.
    pinned |= {("hinge", case.path) for case in CASES
               if dict(_numbers(load_profile(case.profile))).get(case.path) == plain.get(case.path)}
    unpinned = []
    for name in list_profiles():
        for path, value in _numbers(load_profile(name)):
            if name != "hinge" and plain.get(path) == value:
                continue  # inherited from the plain hinge, checked there
            if (name, path) not in pinned and path not in NOT_LIMITS:
                unpinned.append(f"{name}: {path} = {value}")
    assert unpinned == []


def test_bending_to_the_floor_without_pulling_is_no_squatted_pull():
    """Setting the weight down after the set, or crouching for something, with the hips at knee
    height: no pull starts, so nothing buzzes; the same bottom pulled up to standing is a squatted
    floor pull (the research set's 'correct' clip ends crouching to the camera)."""
    low = floor_pull_bottom(95)
    crouch = Motion().stand(1.0, hands="hang").to(low, 2.0).hold(2.0)
    _, events = analyse(crouch, "deadlift")
    assert not raised(events, SQUAT)
    _, events = analyse(held_rep(low), "deadlift")
    assert raised(events, SQUAT)
