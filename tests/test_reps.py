"""The rep counter on synthetic athletes: exact counts on every scripted case, and the Rep record."""
from __future__ import annotations

import math
import numpy as np

import pytest
from dataclasses import replace

from device.analysis.analyzer import HingeAnalyzer
from device.analysis.vocabulary import Framing, FramingChanged, Phase, RepBottom, RepFinished, RepStarted
from device.analysis.profiles import load_profile
from support.counter import ExactCounter
from support.synthetic import STANDING, Motion, Posture


def run(motion: Motion, profile: str = "hinge", **render):
    analyzer = HingeAnalyzer(load_profile(profile))
    return analyzer, analyzer.run(motion.render(**render))


def reps(motion: Motion, **render) -> int:
    return len(run(motion, **render)[0].reps)


def floor_start() -> Motion:
    return Motion(keys=[(0.0, Posture(hip=120, knee=75, shin=15))])


CASES = {
    # name: (motion, reps)
    "one clean hinge": (Motion().stand(1).hinge().stand(1), 1),
    "five clean hinges": (Motion().stand(1).hinge().hinge().hinge().hinge().hinge().stand(1), 5),
    "back to back, no pause at the top": (Motion().stand(1).hinge(rise_s=0.8).hinge(rise_s=0.8).stand(1), 2),
    "a squat": (Motion().stand(1).squat().stand(1), 1),
    "head cranked": (Motion().stand(1).hinge(head=-65).stand(1), 1),
    "rounded (shoulders below hips)": (Motion().stand(1).hinge(depth=125, knee=20, head=5).stand(1), 1),
    "half rep, then a full one": (Motion().stand(1).hinge(depth=40).stand(1).hinge().stand(1), 1),
    "only half reps": (Motion().stand(1).hinge(depth=42).hinge(depth=38).stand(1), 0),
    "long pause at the bottom": (Motion().stand(1).hinge(pause_s=4.0).stand(1), 1),
    "bounce at the bottom": (Motion().stand(1).to(Posture(hip=90, knee=20, shin=5), 1.5)
                             .to(Posture(hip=65, knee=15, shin=4), 0.5).to(Posture(hip=95, knee=20, shin=5), 0.5)
                             .to(STANDING, 1.2).stand(1), 1),
    "soft finish (never locks out)": (Motion().stand(1).hinge(top=Posture(hip=24, knee=10)).hold(2).stand(1), 1),
    "never stands back up": (Motion().stand(1).hinge(top=Posture(hip=45, knee=15)).hold(2), 0),
    "touch-and-go, turning back down short of standing": (
        Motion().stand(1).hinge(top=Posture(hip=30, knee=10)).hinge(top=Posture(hip=30, knee=10)).hinge().stand(1), 3),
    "starts at the floor": (floor_start().hold(1).to(STANDING, 1.5).stand(1), 1),
    "starts at the floor, lowers at the end": (floor_start().hold(1).to(STANDING, 1.5).stand(1)
                                               .to(Posture(hip=120, knee=75, shin=15), 1.5).hold(1), 1),
    "slow rep": (Motion().stand(1).hinge(lower_s=4, rise_s=4).stand(1), 1),
    "fast reps": (Motion().stand(0.5).hinge(lower_s=0.4, rise_s=0.4).hinge(lower_s=0.4, rise_s=0.4).stand(0.5), 2),
    "shallow drill depth still counts": (Motion().stand(1).hinge(depth=55, knee=15).stand(1), 1),
}


@pytest.mark.parametrize("name", list(CASES))
def test_counter_is_exact(name):
    motion, expected = CASES[name]
    assert reps(motion) == expected


@pytest.mark.parametrize("name", list(CASES))
def test_counter_is_exact_with_noise_and_dropped_landmarks(name):
    motion, expected = CASES[name]
    assert reps(motion, noise_px=2.5, dropout_rate=0.15, seed=7) == expected


@pytest.mark.parametrize("facing,near", [(-1, "left"), (-1, "right"), (1, "right")])
def test_either_direction_and_side(facing, near):
    motion = Motion().stand(1).hinge().hinge().stand(1)
    assert reps(motion, facing=facing, near=near) == 2


@pytest.mark.parametrize("fps", [10, 15, 24, 60])
def test_frame_rate_does_not_matter(fps):
    assert reps(Motion().stand(1).hinge().hinge().stand(1), fps=fps) == 2


def test_stepping_out_mid_rep_drops_it_and_counts_the_rest():
    gone = Posture(present=False)
    motion = (Motion().stand(1).hinge().stand(0.5)
              .to(Posture(hip=90, knee=20, shin=5), 1.5).to(gone, 0.01).hold(2.0)  # leaves at the bottom
              .to(STANDING, 0.01).stand(1.5).hinge().stand(1))
    analyzer, events = run(motion)
    assert len(analyzer.reps) == 2
    assert [e.framing for e in events if isinstance(e, FramingChanged)] == [Framing.OK, Framing.NOBODY, Framing.OK]


def test_a_short_dropout_mid_rep_is_bridged():
    motion = Motion().stand(1).hinge(depth=90, lower_s=1.5, rise_s=1.5).stand(1)
    poses = motion.render()
    for pose in poses[50:62]:  # 0.4 s of nobody in the middle of the lowering
        pose.landmarks[:] = math.nan
    analyzer = HingeAnalyzer(load_profile("hinge"))
    for pose in poses:
        analyzer.update(pose)
    analyzer.finish(poses[-1].timestamp)
    assert len(analyzer.reps) == 1


def test_hidden_ankles_at_the_bottom_still_count():
    """A plate hides the near shin at the bottom of every deadlift."""
    motion = Motion().stand(1).hinge(depth=110, knee=60, shin=15, pause_s=0.5).stand(1)
    analyzer, _ = run(motion, hidden=((1.8, 3.2, "ankle"),))
    assert len(analyzer.reps) == 1


def test_turning_to_face_the_camera_stops_counting_and_says_so():
    facing = Posture(turn=90)
    motion = (Motion().stand(1).hinge().to(facing, 0.5).hold(0.5)
              .hinge(depth=90, top=facing, turn=90).hold(1).to(STANDING, 0.5).stand(1).hinge().stand(1))
    analyzer, events = run(motion)
    framing = [(e.framing, e.cue) for e in events if isinstance(e, FramingChanged)]
    assert (Framing.FACING_CAMERA, "turn sideways") in framing
    assert len(analyzer.reps) == 2  # the face-on hinge is not counted


def test_feet_out_of_frame_is_reported():
    close = Posture(zoom=2.0)
    motion = Motion().stand(1).to(close, 0.5).hold(1.5).to(STANDING, 0.5).stand(1).hinge().stand(1)
    analyzer, events = run(motion)
    cues = [e.cue for e in events if isinstance(e, FramingChanged)]
    assert "step back so your feet are in view" in cues and cues[-1] == ""
    assert len(analyzer.reps) == 1


@pytest.mark.parametrize("rose", [0.3, 0.8, 0.95])
def test_a_rise_cut_off_by_the_end_of_the_stream_is_not_a_rep(rose):
    """A rep counts once the athlete is back standing; a recording that stops on the way up, however
    far up, never showed that (the shared labels: a rep that never reaches standing is not counted)."""
    depth = 100.0
    top_deg = load_profile("hinge").reps.top_deg
    top = Posture(hip=depth - rose * (depth - top_deg), knee=10)
    analyzer, _ = run(Motion().stand(1).hinge(depth=depth, top=top))
    assert analyzer.reps == []


@pytest.mark.parametrize("past_start", [True, False])
def test_turning_back_down_short_of_standing(past_start):
    """Touch-and-go reps that turn back down once the hips are up past start_deg (the line a rep
    starts from) but short of standing are reps that never finished: each closes at its turnaround,
    its lockout judged and missed. A turn below start_deg (a hitch on the way up) is still inside
    the rep, as it was: the dips run together as one rep, judged when it stands."""
    c = load_profile("hinge").reps
    turn = c.start_deg - 4 if past_start else c.start_deg + 4
    short = Posture(hip=turn, knee=10)
    motion = Motion().stand(1).hinge(top=short).hinge(top=short).hinge().stand(1.5)
    analyzer, events = run(motion)
    if not past_start:
        (rep,) = analyzer.reps
        assert rep.lockout_reached and rep.fault_names == []
        return
    first, second, third = analyzer.reps
    for rep in (first, second):
        assert not rep.lockout_reached and "incomplete_lockout" in rep.fault_names
        assert rep.end_time < rep.start_time + 1.5 + 1.2 + 0.2  # closed at its turnaround
    assert third.lockout_reached and third.fault_names == []
    # Each next rep's lowering starts where the last one turned back down.
    assert second.start_time == pytest.approx(first.end_time, abs=0.1)


def test_one_garbled_reading_at_the_bottom_is_not_a_turnaround():
    """A reading that jumps from the bottom to past standing in one frame (a garbled pose) confirms
    the bottom but is no turnaround: the hips never stood between the two bends, so the rep goes
    on and counts once, when the athlete really stands."""
    top_deg = load_profile("hinge").reps.top_deg
    run = ExactCounter(knee=10.0, fps=30)
    readings = ([5.0] * 30 + list(np.linspace(5, 90, 45)) + [90.0] * 10 + [top_deg - 40]
                + [90.0] * 10 + list(np.linspace(90, 5, 36)) + [5.0] * 60)
    for hip in readings:
        run.reading(float(hip))
    ((_, done),) = run.closed
    assert done.rep.lockout_reached


def test_a_rep_back_at_standing_when_the_stream_ends_counts_without_a_lockout_verdict():
    """Standing (hips just past top_deg) as the recording stops, the lockout was not watched: the
    rep counts, and its missing lockout is not a fault (not seen, not judged)."""
    top_deg = load_profile("hinge").reps.top_deg
    top = Posture(hip=top_deg - 3, knee=10)
    motion = Motion().stand(1).hinge(depth=100.0, top=top)
    analyzer, _ = run(motion)
    (rep,) = analyzer.reps
    assert not rep.lockout_reached
    assert "incomplete_lockout" not in rep.fault_names


def test_rep_record():
    motion = Motion().stand(1).hinge(depth=90, knee=20, shin=5, lower_s=1.6, rise_s=1.2, pause_s=0.5).stand(1.5)
    analyzer, events = run(motion)
    (rep,) = analyzer.reps
    assert rep.index == 1 and rep.side == "left" and rep.movement == "hinge" and rep.lockout_reached
    # The rep starts where the hips leave their resting band (within 5 degrees of standing).
    assert 1.0 < rep.start_time < 1.5 and rep.start_time < rep.bottom_time < rep.end_time
    assert rep.lowering_s == pytest.approx(1.6 + 0.25, abs=0.45)  # the deepest point lies inside the pause
    # From the deepest point (somewhere in the pause) to the hips within 20 degrees of straight.
    assert 0.8 <= rep.rising_s <= 1.2 + 0.5
    assert rep.peak_hip_flexion_deg == pytest.approx(90, abs=2)
    assert rep.knee_flexion_at_bottom_deg == pytest.approx(20, abs=2)
    assert rep.trunk_angle_at_bottom_deg == pytest.approx(90 - 15, abs=2)
    assert rep.hip_shift_at_bottom == pytest.approx(0.5 * math.sin(math.radians(15)) - 0.5 * math.sin(math.radians(5)), abs=0.02)
    assert rep.hinge_ratio == pytest.approx(4.5, abs=0.5)
    assert 2 <= len(rep.trace) <= 60
    times = [t for t, _, _ in rep.trace]
    assert times == sorted(times) and rep.start_time <= times[0] and times[-1] <= events[-1].time + 1e-3  # ms-rounded
    assert max(h for _, h, _ in rep.trace) == pytest.approx(90, abs=2)


def test_events_come_in_order_and_the_rep_closes_after_the_finish():
    """The rep closes once its finish has been watched (finish_s after reaching standing, the hips
    settled), not at the next rep, and not at the first frame of the lockout."""
    motion = Motion().stand(1).hinge(lower_s=1.5, rise_s=1.2).stand(3).hinge().stand(1)
    analyzer = HingeAnalyzer(load_profile("hinge"))
    reps = analyzer.profile.reps
    events: list = []
    top_reached = None
    for pose in motion.render(fps=30):
        events += analyzer.update(pose)
        if top_reached is None and analyzer.counter.state.value == "top":
            top_reached = pose.timestamp
    events += analyzer.finish(motion.end)
    kinds = [type(e).__name__ for e in events if not isinstance(e, FramingChanged)]
    assert kinds == ["RepStarted", "RepBottom", "RepFinished"] * 2
    first_finish = next(e for e in events if isinstance(e, RepFinished))
    # The hips stop extending at 3.7 s (the scripted rise ends), long before the finish has run.
    assert top_reached is not None and top_reached + reps.finish_s > 3.7 + reps.settle_s
    assert first_finish.rep.lockout_reached
    assert top_reached + reps.finish_s <= first_finish.time <= top_reached + reps.finish_s + 1.5 / 30
    started = [e.rep_index for e in events if isinstance(e, RepStarted)]
    bottoms = [e.rep_index for e in events if isinstance(e, RepBottom)]
    assert started == bottoms == [1, 2]


def test_phase_follows_the_rep():
    motion = Motion().stand(1).hinge(lower_s=1.5, rise_s=1.5, pause_s=0.8).stand(1)
    analyzer = HingeAnalyzer(load_profile("hinge"))
    seen = []
    for pose in motion.render():
        analyzer.update(pose)
        if not seen or seen[-1] != analyzer.phase:
            seen.append(analyzer.phase)
    assert seen == [Phase.STANDING, Phase.LOWERING, Phase.BOTTOM, Phase.RISING, Phase.LOCKOUT, Phase.STANDING]


def test_squat_and_hinge_verdicts():
    analyzer, _ = run(Motion().stand(1).squat().stand(1).hinge().stand(1).squat(depth=95).stand(1))
    assert [r.movement for r in analyzer.reps] == ["squat", "hinge", "squat"]


def test_a_low_hip_floor_pull_is_a_hinge_with_the_squatting_fault():
    """Hands at the bar below the knees and the hips down at knee height (thigh 95 degrees from
    vertical): a deadlift with the hips too low, not a squat."""
    low = Posture(hip=130, knee=130, shin=35)
    analyzer, _ = run(Motion(keys=[(0.0, low)]).hold(1).to(STANDING, 1.5).stand(1))
    (rep,) = analyzer.reps
    assert rep.movement == "hinge" and rep.fault_names == ["squatting_the_hinge"]


@pytest.mark.parametrize("profile", ["hinge", "deadlift"])
def test_a_good_floor_pull_with_bent_knees_is_not_squatting(profile):
    """A conventional deadlift set up at the floor: knees bent nearly as much as the hips (ratio 1.1,
    the squat pattern's) but the hips well above the knees (thigh 70 degrees from vertical). Bent
    knees at the floor are the lift, not a fault, in the plain hinge as in the deadlift drill."""
    setup = Posture(hip=110, knee=100, shin=30, hands="legs")
    analyzer, _ = run(Motion(keys=[(0.0, setup)]).hold(1).to(STANDING, 1.5).stand(1), profile)
    (rep,) = analyzer.reps
    assert rep.movement == "hinge" and rep.faults == [] and rep.borderline == []


def glitched(standing_s: float, glitches: dict[int, int]) -> list:
    """Standing still, with runs of frames (start index: length) where every landmark jumps to a deep
    hinge: the worst a misplaced skeleton can do."""
    poses = Motion().stand(standing_s).render()
    deep = Motion(keys=[(0.0, Posture(hip=110, knee=40, shin=10))]).hold(standing_s).render()
    for start, length in glitches.items():
        for i in range(start, start + length):
            poses[i] = deep[i]
    return poses


@pytest.mark.parametrize("length", [1, 2, 3, 4])
def test_landmark_glitches_do_not_count_as_reps(length):
    poses = glitched(6.0, {40: length, 100: length, 150: length})
    analyzer = HingeAnalyzer(load_profile("hinge"))
    for pose in poses:
        analyzer.update(pose)
    analyzer.finish(poses[-1].timestamp)
    assert analyzer.reps == [] and analyzer.faults == []  # nothing counted, nothing buzzed


@pytest.mark.parametrize("length", [1, 3, 5])
def test_a_garbled_start_does_not_count_as_a_lift_from_the_floor(length):
    poses = glitched(3.0, {0: length})
    analyzer = HingeAnalyzer(load_profile("hinge"))
    for pose in poses:
        analyzer.update(pose)
    analyzer.finish(poses[-1].timestamp)
    assert analyzer.reps == []


def test_a_pause_on_the_way_down_is_not_the_bottom():
    """Deadlifts often pause as the bar passes the knees, then go on down to the floor."""
    knees, settling = Posture(hip=60, knee=15, shin=4), Posture(hip=57, knee=16, shin=4)
    floor = Posture(hip=110, knee=60, shin=12)
    motion = (Motion().stand(1).to(knees, 0.35).to(settling, 0.6).to(floor, 0.6).hold(0.3)
              .to(STANDING, 1.2).stand(1))
    analyzer, events = run(motion)
    (rep,) = analyzer.reps
    bottom = next(e for e in events if isinstance(e, RepBottom))
    assert rep.peak_hip_flexion_deg == pytest.approx(110, abs=2)
    assert bottom.time > rep.bottom_time > 2.5  # confirmed on the way up from the floor, not at the knees
    assert rep.lowering_s > 1.2 and "too_fast" not in rep.fault_names


def test_a_new_session_forgets_the_last_sessions_floor_pull():
    """Attempt numbers start again with a session: a floor pull remembered from the last one must not
    excuse the next athlete's squat (the frame rule judges the squat pattern only off the floor)."""
    from device.analysis.faults import FaultJudge, Moment
    from device.analysis.kinematics import Angles
    from device.analysis.vocabulary import Fault

    judge = FaultJudge(load_profile("hinge"))
    squat = Angles(1.0, True, "left", 1, hip_flexion_deg=100, knee_flexion_deg=85, trunk_deg=30, thigh_deg=70,
                   hands_below_knee=-0.6)
    at_floor = Angles(0.5, True, "left", 1, hip_flexion_deg=100, knee_flexion_deg=85, trunk_deg=30, thigh_deg=70,
                      hands_below_knee=0.2)
    def squatting():
        return next(rule for rule in judge.rules if rule.fault is Fault.SQUATTING_THE_HINGE)

    check = squatting().check
    assert check(Moment(at_floor, Phase.BOTTOM, 1, attempt=1)) is None  # a floor pull: bent knees are the lift
    assert check(Moment(squat, Phase.BOTTOM, 1, attempt=1)) is None  # still that floor pull's attempt
    judge.reset()
    finding = squatting().check(Moment(squat, Phase.BOTTOM, 1, attempt=1))
    assert finding is not None and finding.quantity == "hinge_ratio"


@pytest.mark.parametrize("covered_s,counted", [(2.0, 1), (3.0, 0)])
def test_a_plate_may_cover_the_joints_for_hidden_gap_s_without_losing_the_rep(covered_s, counted):
    """The athlete stays in view while a plate covers hips and knees at the bottom: up to
    hidden_gap_s (2.5 s) the rep goes on and counts; longer, it is dropped, not guessed. Nobody in
    view for the same time half way up drops it after max_gap_s (1 s)."""
    assert load_profile("hinge").reps.hidden_gap_s == 2.5
    low = Posture(hip=95, knee=20, shin=5)
    motion = Motion().stand(1).to(low, 1.5).hold(covered_s + 1.0).to(STANDING, 1.5).stand(1.5)
    start = 1.0 + 1.5 + 0.5
    covered = tuple((start, start + covered_s, f"{side}_{joint}") for side in ("left", "right")
                    for joint in ("hip", "knee"))
    analyzer, _ = run(motion, hidden=covered)
    # Seen again still bent over after a drop, a lift from the floor is picked up afresh: the rep
    # that began before the cover is the one that counts or is dropped.
    assert sum(rep.start_time < start for rep in analyzer.reps) == counted
    if counted:  # the same gap with nobody in view, half way up (where one can walk off), is too long
        half_up = replace(low, hip=60)
        gone = Motion().stand(1).to(low, 1.5).hold(0.5).to(half_up, 0.5) \
            .to(replace(half_up, present=False), 0.001).hold(covered_s) \
            .to(half_up, 0.001).hold(0.5).to(STANDING, 1.0).stand(1.5)
        analyzer, _ = run(gone)
        assert sum(rep.start_time < 1.5 for rep in analyzer.reps) == 0


@pytest.mark.parametrize("drop_s,counted", [(0.07, 0), (0.35, 1)])
def test_a_lowering_quicker_than_a_falling_bar_is_a_glitch(drop_s, counted, monkeypatch):
    """Physics, not coaching: a bar let go at the hips reaches the floor in about 0.3 s. Hips that
    "drop" to a deep hinge in 0.07 s (measured ~0.13 s through the smoothing) are a misplaced
    skeleton, dropped before any fault, even though the whole down-and-up (0.7 s) lasts longer than
    min_rep_s; a quick real drop in 0.35 s counts. Without the glitch rule the first counts too."""
    from device.analysis import reps as reps_module

    low = Posture(hip=110, knee=40, shin=10)
    motion = Motion().stand(1.5).to(low, drop_s).to(STANDING, 0.8).stand(1.5)
    assert len(run(motion)[0].reps) == counted
    monkeypatch.setattr(reps_module, "FASTEST_LOWERING_S", 0.0)
    assert len(run(motion)[0].reps) == 1


def test_a_frame_with_the_hips_unseen_breaks_the_lockout_hold():
    """Locked out on two frames, the hips unseen on one (a plate passing them), locked out on two more
    (at 30 fps): no run of seen frames lasts the lockout hold, so no lockout counts; the same five
    frames all seen make one."""
    def lockout_with(gap: bool) -> bool:
        run = ExactCounter(knee=10.0, fps=30)
        for hip in [5] * 30 + list(np.linspace(5, 90, 30)) + [90] * 15 + list(np.linspace(90, 24, 30)) + [24] * 5:
            run.reading(float(hip))
        for i in range(5):
            run.reading(10.0, usable=not (gap and i == 2))
        for _ in range(60):
            run.reading(24.0)
        ((_, rep),) = run.closed
        return rep.rep.lockout_reached

    assert lockout_with(gap=False) and not lockout_with(gap=True)
