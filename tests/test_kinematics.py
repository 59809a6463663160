"""Kinematics on synthetic side-on bodies with known angles: values, signs, trust and smoothing."""
from __future__ import annotations

import math

import numpy as np
import pytest

from device.analysis.geometry import flexion_deg
from device.analysis.kinematics import (
    AngleTracker,
    BoneCheck,
    OneEuroFilter,
    Seen,
    facing_vote,
    hinge_ratio,
    measure,
    nearer_side,
    pick_skeleton,
    world_bends,
)
from device.pose.landmarks import LANDMARK_INDEX, VISIBILITY, Pose
from device.analysis.profiles import load_profile
from support.synthetic import Motion, Posture, render

HINGE = load_profile("hinge")


def tracker_for_hinge() -> AngleTracker:
    return AngleTracker(HINGE.kinematics)


def still(posture: Posture, seconds: float = 1.0, **options) -> list[Pose]:
    return Motion(keys=[(0.0, posture)]).hold(seconds).render(**options)


def raw_angles(pose: Pose, facing: int = 1):
    seen = Seen(pose, HINGE.kinematics.min_visibility)
    return measure(pick_skeleton(seen, nearer_side(seen)), pose.timestamp, nearer_side(seen), facing)[0]


@pytest.mark.parametrize("facing", [1, -1])
@pytest.mark.parametrize("hip,knee,shin", [(90, 20, 5), (120, 110, 35), (45, 10, 0), (4, 5, 3)])
def test_measured_angles_match_the_posture(facing, hip, knee, shin):
    pose = still(Posture(hip=hip, knee=knee, shin=shin), facing=facing)[0]
    a = raw_angles(pose, facing)
    assert a.reliable
    assert a.hip_flexion_deg == pytest.approx(hip, abs=0.5)
    assert a.knee_flexion_deg == pytest.approx(knee, abs=0.5)
    assert a.shin_deg == pytest.approx(shin, abs=0.5)
    assert a.thigh_deg == pytest.approx(knee - shin, abs=0.5)
    assert a.trunk_deg == pytest.approx(hip - (knee - shin), abs=0.5)


def test_hip_flexion_agrees_with_the_shared_geometry():
    pose = still(Posture(hip=100, knee=30, shin=8))[0]
    a = raw_angles(pose)
    s, h, k = (pose.xy(f"left_{j}") for j in ("shoulder", "hip", "knee"))
    assert a.hip_flexion_deg == pytest.approx(float(flexion_deg(s, h, k)), abs=1e-6)


def test_leaning_back_reads_as_negative_hip_flexion():
    a = raw_angles(still(Posture(hip=-20, knee=0, shin=0))[0])
    assert a.hip_flexion_deg == pytest.approx(-20, abs=0.5)
    assert a.trunk_deg < 0


def test_hips_travel_back_in_leg_lengths():
    upright = raw_angles(still(Posture())[0])
    hinged = raw_angles(still(Posture(hip=90, knee=25, shin=5))[0])
    assert abs(upright.hip_shift) < 0.05
    # Thigh tilted 20 degrees back of the knee, which sits 0.04 ahead of the ankle: ~0.13 behind.
    assert hinged.hip_shift == pytest.approx(0.5 * math.sin(math.radians(20)) - 0.5 * math.sin(math.radians(5)), abs=0.01)


@pytest.mark.parametrize("head", [-60, -10, 0, 30])
def test_head_offset_is_signed_toward_the_floor(head):
    a = raw_angles(still(Posture(hip=90, knee=20, shin=5, head=head))[0])
    assert a.head_offset_deg == pytest.approx(head, abs=0.5)


def test_hands_forward_of_midfoot_in_leg_lengths():
    hanging = raw_angles(still(Posture(hip=90, knee=20, shin=5))[0])
    reaching = raw_angles(still(Posture(hip=90, knee=20, shin=5, reach=0.3))[0])
    assert reaching.load_forward - hanging.load_forward == pytest.approx(0.3, abs=0.01)
    assert hanging.hands_below_shoulder == pytest.approx(0.66, abs=0.01)


@pytest.mark.parametrize("facing", [1, -1])
def test_facing_is_read_from_feet_and_face(facing):
    pose = still(Posture(), facing=facing)[0]
    assert np.sign(facing_vote(Seen(pose, 0.5))) == facing
    tracker = tracker_for_hinge()
    assert tracker.update(pose).facing == facing


def test_the_more_visible_side_is_the_camera_side():
    for near in ("left", "right"):
        pose = still(Posture(), near=near)[0]
        assert nearer_side(Seen(pose, 0.5)) == near
        assert tracker_for_hinge().update(pose).side == near


def test_a_faint_joint_is_never_used_and_the_frame_is_unreliable_without_its_core():
    pose = still(Posture(hip=90, knee=20, shin=5))[0]
    for side in ("left", "right"):
        pose.landmarks[LANDMARK_INDEX[f"{side}_hip"], VISIBILITY] = 0.2
    a = raw_angles(pose)
    assert not a.reliable
    assert math.isnan(a.hip_flexion_deg) and math.isnan(a.knee_flexion_deg)


def test_a_hidden_ankle_blanks_only_what_needs_it():
    pose = still(Posture(hip=90, knee=20, shin=5))[0]
    for side in ("left", "right"):
        pose.landmarks[LANDMARK_INDEX[f"{side}_ankle"], VISIBILITY] = 0.1
    a = raw_angles(pose)
    assert a.reliable and a.hip_flexion_deg == pytest.approx(90, abs=0.5)
    assert math.isnan(a.knee_flexion_deg) and math.isnan(a.shin_deg) and math.isnan(a.hip_shift)


def test_a_far_side_joint_stands_in_for_a_hidden_near_one():
    pose = still(Posture(hip=90, knee=20, shin=5))[0]
    pose.landmarks[LANDMARK_INDEX["left_ankle"], VISIBILITY] = 0.1  # near side hidden
    a = raw_angles(pose)
    assert a.knee_flexion_deg == pytest.approx(20, abs=0.5)


def test_bone_check_rejects_a_confidently_misplaced_knee():
    """A plate in front of the legs: the model puts the knee on the plate with fair visibility."""
    poses = still(Posture(hip=90, knee=20, shin=5), seconds=0.5)
    tracker = tracker_for_hinge()
    for pose in poses[:-1]:
        tracker.update(pose)
    last = poses[-1]
    hip, knee = last.xy("left_hip"), last.xy("left_knee")
    last.landmarks[LANDMARK_INDEX["left_knee"], :2] = hip + 0.4 * (knee - hip)  # thigh at 40% length
    last.landmarks[LANDMARK_INDEX["left_knee"], VISIBILITY] = 0.7
    a = tracker.update(last)
    assert a.reliable and a.knee_flexion_deg == pytest.approx(20, abs=2)  # from the far leg
    bones = BoneCheck(0.7, 3.0)
    bones.observe("left", "thigh", 100.0, 0.0)
    assert bones.ratio("left", "thigh", 40.0) < 0.7 <= bones.ratio("left", "thigh", 95.0)


def test_side_does_not_flip_on_one_frame():
    poses = still(Posture(), seconds=1.0, near="left")
    swapped = poses[10]
    for joint in ("shoulder", "hip", "knee", "ankle"):
        li, ri = LANDMARK_INDEX[f"left_{joint}"], LANDMARK_INDEX[f"right_{joint}"]
        swapped.landmarks[[li, ri], VISIBILITY] = swapped.landmarks[[ri, li], VISIBILITY]
    tracker = tracker_for_hinge()
    assert {tracker.update(p).side for p in poses} == {"left"}


def test_nobody_in_view_is_unreliable():
    pose = Motion(keys=[(0.0, Posture(present=False))]).hold(0.1).render()[0]
    a = tracker_for_hinge().update(pose)
    assert not pose.found and not a.reliable and math.isnan(a.hip_flexion_deg)


def test_one_euro_is_steady_when_still_and_keeps_up_when_moving():
    rng = np.random.default_rng(1)
    t = np.arange(0, 4, 1 / 30)
    still_signal = 90 + rng.normal(0, 3, t.size)
    k = HINGE.kinematics
    flt = OneEuroFilter(k.min_cutoff_hz, k.beta, k.d_cutoff_hz)
    out = np.array([flt(x, ti) for x, ti in zip(still_signal, t)])
    assert out[30:].std() < 0.5 * still_signal[30:].std()

    ramp = 100 * t  # 100 deg/s, a brisk lowering
    flt.reset()
    out = np.array([flt(x, ti) for x, ti in zip(ramp, t)])
    lag_s = np.median((ramp[30:] - out[30:]) / 100)
    assert lag_s < 2 / 30  # under two frames behind


def test_one_euro_is_causal():
    t = np.arange(0, 2, 1 / 30)
    x = np.sin(2 * np.pi * 0.5 * t)
    a, b = OneEuroFilter(1.0, 0.02, 1.0), OneEuroFilter(1.0, 0.02, 1.0)
    full = [a(v, ti) for v, ti in zip(x, t)]
    changed = x.copy()
    changed[40:] += 50  # a different future
    partial = [b(v, ti) for v, ti in zip(changed, t)]
    assert full[:40] == partial[:40]


def test_tracker_smooths_noise_but_follows_the_rep():
    motion = Motion().stand(0.5).hinge(depth=90, lower_s=1.5, rise_s=1.5).stand(0.5)
    noisy_tracker, truth_tracker = tracker_for_hinge(), tracker_for_hinge()
    noisy = [noisy_tracker.update(p) for p in render(motion, noise_px=3.0, seed=2)]
    truth = [truth_tracker.update(p) for p in render(motion)]
    err = np.array([n.hip_flexion_deg - c.hip_flexion_deg for n, c in zip(noisy, truth)])
    assert np.nanmax([a.hip_flexion_deg for a in noisy]) == pytest.approx(90, abs=4)
    assert np.sqrt(np.nanmean(err**2)) < 3.0


def test_hinge_ratio_is_one_definition_for_frames_and_bottoms():
    from device.analysis.kinematics import Angles
    from device.analysis.reps import BottomShape

    assert hinge_ratio(90.0, 20.0) == 4.5
    assert hinge_ratio(90.0, 0.0) == hinge_ratio(90.0, -3.0) == 18.0  # straight knees count as 5 degrees
    assert math.isnan(hinge_ratio(math.nan, 20.0)) and math.isnan(hinge_ratio(90.0, math.nan))
    frame = Angles(0.0, True, "left", 1, hip_flexion_deg=90.0, knee_flexion_deg=2.0)
    assert frame.hinge_ratio == BottomShape(90.0, 2.0, 0.0, 0.0, 0.0, 0.0).hinge_ratio == 18.0


def test_noise_is_measured_once_there_are_frames_and_the_models_typical_wander_before():
    from device.analysis.kinematics import TYPICAL_NOISE, Angles

    fresh = Angles(0.0, True, "left", 1, hip_flexion_deg=80.0, knee_flexion_deg=20.0)
    assert fresh.noise_of("hip_flexion_deg") == TYPICAL_NOISE["hip_flexion_deg"] == 2.0
    measured = Angles(0.0, True, "left", 1, hip_flexion_deg=80.0, knee_flexion_deg=20.0,
                      noise={"hip_flexion_deg": 0.5, "knee_flexion_deg": 0.4})
    assert measured.noise_of("hip_flexion_deg") == 0.5
    # the ratio's noise follows from both angles': 4 * hypot(0.5/80, 0.4/20)
    assert abs(measured.noise_of("hinge_ratio") - 4 * math.hypot(0.5 / 80, 0.4 / 20)) < 1e-12
    assert measured.noise_of("not_a_quantity") == math.inf
    assert measured.noise_measured("hip_flexion_deg") and not fresh.noise_measured("hip_flexion_deg")
    assert measured.noise_measured("hinge_ratio") and not fresh.noise_measured("hinge_ratio")


def _meter_reading(fps: float, noise_rms: float, seed: int = 5) -> float:
    """The NoiseMeter's last reading over a fast squat (hips 0 -> 146 -> 0 degrees in 0.9 s, again
    and again) sampled at `fps`, with white noise of `noise_rms` added."""
    from device.analysis.kinematics import NoiseMeter

    rng = np.random.default_rng(seed)
    meter = NoiseMeter(window_s=1.0)
    level = math.inf
    for i in range(int(3 * fps)):
        t = i / fps
        level = meter.add(t, 73.0 * (1 - math.cos(2 * math.pi * t / 0.9)) + rng.normal(0.0, noise_rms))
    return level


@pytest.mark.parametrize("fps", [30, 15, 10])
def test_the_noise_meter_reads_the_models_wander_not_the_movement(fps):
    """A fast squat itself must not read as noise, even at a Pi's 10 fps (a line through the two
    neighbours took ~15 degrees of it there and hid every fault in the lift); white noise of RMS 2
    on the same movement reads as about 2."""
    assert _meter_reading(fps, 0.0) < (2.2 if fps == 10 else 0.6)
    assert 1.4 < _meter_reading(fps, 2.0) < (3.2 if fps == 10 else 2.6)


def test_the_noise_meter_needs_four_departures_and_forgets_after_its_window():
    from device.analysis.kinematics import MIN_NOISE_FRAMES, NoiseMeter

    meter = NoiseMeter(window_s=1.0)
    readings = [meter.add(i / 10, (-1.0) ** i) for i in range(12)]
    first = 4 + MIN_NOISE_FRAMES - 1  # the first departure needs 5 readings
    assert all(math.isinf(r) for r in readings[:first]) and math.isfinite(readings[first])
    meter.add(5.0, 0.0)  # four seconds later: everything before has left the window
    assert math.isinf(meter.add(5.1, 0.0))


def test_repeated_frames_do_not_read_as_certainty():
    """A still athlete rendered without noise (as repeated frames would read): the measured wander
    is zero, but the reading's resolution (a pixel at each end of a bone half a leg long) is kept
    as the least noise, so a fault a hair past its limit cannot look clear."""
    from device.analysis.kinematics import AngleTracker

    tracker = AngleTracker(load_profile("hinge").kinematics)
    angles = [tracker.update(p) for p in Motion().stand(2.0).render(fps=30, noise_px=0.0)][-1]
    leg_px = tracker._leg_px
    assert leg_px and 100 < leg_px < 1000
    assert angles.noise["hip_flexion_deg"] == pytest.approx(math.degrees(math.sqrt(2) / (leg_px / 2)))
    assert angles.noise["hip_shift"] == pytest.approx(math.sqrt(2) / leg_px)


@pytest.mark.parametrize("apart, read", [(0.45, True), (0.25, False)])
def test_a_hand_at_the_head_hides_the_heads_line(apart, read):
    """Hands behind the head (a ladder drill) cross the head in a side view and the model places the
    ear by them: with a wrist within about a head's breadth of the ear (a third of a trunk length)
    the head's line is not read; a hand further off (at the chest, holding a plate) leaves it read.
    The pair straddles that breadth, the hand moved from the ear along the face's line."""
    pose = still(Posture(hip=90, knee=20, shin=5, head=30, hands="chest"))[0]
    marks = pose.landmarks.copy()
    hip, shoulder, ear = (marks[LANDMARK_INDEX[f"left_{j}"], :2] for j in ("hip", "shoulder", "ear"))
    trunk = float(np.hypot(*(shoulder - hip)))
    away = (ear - shoulder) / float(np.hypot(*(ear - shoulder)))
    for side in ("left", "right"):
        marks[LANDMARK_INDEX[f"{side}_wrist"], :2] = ear + apart * trunk * away
    a = raw_angles(Pose(pose.timestamp, marks, pose.presence, pose.detector_ran, pose.image_size))
    assert math.isfinite(a.head_offset_deg) is read
    if read:
        assert a.head_offset_deg == pytest.approx(30, abs=0.5)


# --- the same bends in 3D, from the world landmarks ------------------------------------------------


@pytest.mark.parametrize("turn", [0.0, 35.0, 60.0, -20.0])
def test_the_3d_bends_are_the_bodys_own_whatever_the_cameras_yaw(turn):
    """A squat-like bottom (hips 120, knees 100, shins 20 forward: thigh 80 and trunk 40 from
    vertical), rendered with world landmarks at any turn toward the camera, reads those angles in 3D:
    they are the body's, where the image's sagittal angles foreshorten with the turn."""
    low = Posture(hip=120, knee=100, shin=20, hands="chest", turn=turn)
    (pose,) = Motion(keys=[(0.0, low)]).render(fps=1)
    bends = world_bends(pose.world)
    assert bends["hip_flexion_3d_deg"] == pytest.approx(120, abs=0.5)
    assert bends["knee_flexion_3d_deg"] == pytest.approx(100, abs=0.5)
    assert bends["thigh_3d_deg"] == pytest.approx(80, abs=0.5)
    assert bends["trunk_3d_deg"] == pytest.approx(40, abs=0.5)


def test_no_world_landmarks_no_3d_bends():
    (pose,) = Motion(keys=[(0.0, Posture(hip=90, knee=20))]).render(fps=1, world_shown=False)
    assert world_bends(pose.world) == {}
    angles = AngleTracker(load_profile("hinge").kinematics).update(pose)
    assert math.isnan(angles.knee_flexion_3d_deg) and math.isfinite(angles.knee_flexion_deg)
