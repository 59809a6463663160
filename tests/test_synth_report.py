"""The bench's arithmetic on plain data (no body model): the rasterizer, the camera, the truth
definitions, per-rep matching in scoring, and the detection curve's 50% / 90% severities."""
from __future__ import annotations

import math

import numpy as np
import pytest

from device.analysis.scoring import ClipResult, LabelledClip, rep_verdicts
from device.analysis.vocabulary import Fault, FaultEvent, Rep
from models.synth.camera import Camera, Placement
from models.synth.raster import Frame, Light, Mesh, draw_mesh
from models.synth.report import RepRecord, detection
from models.synth.truth import FAULT_DEFINITIONS, faults_present, rep_severities


# --- raster ----------------------------------------------------------------------------------------

def flat_camera() -> Camera:
    """Looking down -x from x = 5 at the origin: image x is world +y, image y is world -z."""
    return Camera(np.array([5.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.0]), width=64, height=48, hfov_deg=60.0)


def square(x: float, half: float, color: tuple[float, float, float]) -> Mesh:
    """A square facing the camera (+x) at depth 5 - x, wound counter-clockwise seen from +x."""
    v = np.array([[x, -half, -half], [x, half, -half], [x, half, half], [x, -half, half]])
    return Mesh(v, np.array([[0, 1, 2], [0, 2, 3]]), np.tile(np.asarray(color, float), (4, 1)))


def blank(camera: Camera) -> Frame:
    return Frame(np.zeros((camera.height, camera.width, 3)), np.full((camera.height, camera.width), np.inf),
                 np.zeros((camera.height, camera.width), bool))


LIGHT = Light(np.array([1.0, 0.0, 0.0]), ambient=0.0, diffuse=1.0)


def test_a_square_covers_the_pixels_whose_centres_it_contains():
    camera = flat_camera()
    frame = blank(camera)
    draw_mesh(frame, camera, square(0.0, 0.5, (1.0, 1.0, 1.0)), LIGHT)
    corners, _ = camera.project(np.array([[0.0, -0.5, 0.5], [0.0, 0.5, -0.5]]))
    (x0, y0), (x1, y1) = corners
    cx = np.arange(camera.width) + 0.5
    cy = np.arange(camera.height) + 0.5
    expected = ((cx[None, :] > x0) & (cx[None, :] < x1)) & ((cy[:, None] > y0) & (cy[:, None] < y1))
    covered = np.isfinite(frame.depth)
    assert covered.sum() > 50
    assert (covered == expected).mean() > 0.99  # at most an edge pixel differs (centres on the edge)


def test_the_nearer_surface_wins_whatever_the_drawing_order():
    camera = flat_camera()
    for order in ((0.0, 1.0), (1.0, 0.0)):
        frame = blank(camera)
        for x in order:
            draw_mesh(frame, camera, square(x, 0.3, (1.0, 0.0, 0.0) if x == 1.0 else (0.0, 0.0, 1.0)), LIGHT)
        centre = frame.color[camera.height // 2, camera.width // 2]
        assert centre[0] > 0.9 and centre[2] < 0.1  # the red square at x = 1 is nearer the camera at x = 5
        assert frame.depth[camera.height // 2, camera.width // 2] == pytest.approx(4.0, abs=1e-6)


def test_a_surface_seen_from_behind_is_not_drawn_unless_two_sided():
    camera = flat_camera()
    mesh = square(0.0, 0.5, (1.0, 1.0, 1.0))
    back = Mesh(mesh.vertices, mesh.faces[:, ::-1].copy(), mesh.colors)
    frame = blank(camera)
    draw_mesh(frame, camera, back, LIGHT)
    assert not np.isfinite(frame.depth).any()
    back.two_sided = True
    draw_mesh(frame, camera, back, LIGHT)
    assert np.isfinite(frame.depth).any()


def test_lambert_shading_dims_a_surface_turned_from_the_light():
    lit = LIGHT.shade(np.array([[1.0, 0.0, 0.0], [math.cos(1.0), math.sin(1.0), 0.0], [-1.0, 0.0, 0.0]]))
    assert lit[0] == pytest.approx(1.0) and lit[1] == pytest.approx(math.cos(1.0)) and lit[2] == 0.0


def test_yaw_swings_the_camera_toward_the_athletes_front_and_keeps_it_aimed():
    aim = np.array([0.0, 0.0, 1.0])
    side = Camera.placed(Placement(0.0, 1.0, 3.0), aim)
    oblique = Camera.placed(Placement(30.0, 1.0, 3.0), aim)
    assert side.position[1] == pytest.approx(0.0) and side.position[0] == pytest.approx(3.0)
    assert oblique.position[1] < 0  # the athlete faces -y: the camera moved toward their front
    for camera in (side, oblique):
        pix, _ = camera.project(aim)
        assert pix == pytest.approx([camera.width / 2, camera.height / 2])
    high = Camera.placed(Placement(0.0, 1.8, 3.0), aim)
    assert high.tilt_deg > 0 > Camera.placed(Placement(0.0, 0.5, 3.0), aim).tilt_deg


# --- truth definitions ---------------------------------------------------------------------------

def severities(**kw) -> dict:
    base = dict(lumbar=0.0, thoracic=0.0, neck=0.0, knee_share=0.2, lockout=0.0, load_forward=0.0, lowering_s=2.0)
    return rep_severities(**{**base, **kw})


def test_a_neutral_hinge_has_no_fault_and_each_gross_one_names_its_fault():
    assert faults_present(severities(), tempo_s=1.0) == []
    gross = {  # the gravest level the sweeps render, each past its coaching line by its own reason
        "rounded_back": severities(lumbar=30, thoracic=30), "squatting_the_hinge": severities(knee_share=0.6),
        "head_not_neutral": severities(neck=-45), "incomplete_lockout": severities(lockout=-30),
        "overextended_lockout": severities(lockout=30), "load_away_from_body": severities(load_forward=0.3),
        "too_fast": severities(lowering_s=0.3),
    }
    for fault, values in gross.items():
        assert faults_present(values, tempo_s=1.0) == [fault]


def test_a_floor_pull_may_bend_its_knees_as_a_deadlift_needs():
    deadlift_setup = severities(knee_share=0.42)  # 80 degrees of knee at 110 of hip
    assert faults_present(deadlift_setup, tempo_s=None, floor_pull=True) == []
    assert faults_present(deadlift_setup, tempo_s=None, floor_pull=False) == ["squatting_the_hinge"]
    assert faults_present(severities(knee_share=0.6), tempo_s=None, floor_pull=True) == ["squatting_the_hinge"]


def test_tempo_is_a_fault_only_where_the_drill_prescribes_one():
    quick = severities(lowering_s=0.4)
    assert faults_present(quick, tempo_s=None) == []
    assert faults_present(quick, tempo_s=1.0) == ["too_fast"]
    assert faults_present(severities(lowering_s=1.3), tempo_s=1.0) == []


def test_every_definition_says_where_its_line_comes_from():
    for definition in FAULT_DEFINITIONS.values():
        assert len(definition.source) > 30, definition.quantity


# --- per-rep matching in scoring -----------------------------------------------------------------

def rep(index: int, bottom: float, movement: str = "hinge") -> Rep:
    return Rep(index, bottom - 1, bottom, bottom + 1.2, 1.0, 1.0, 80.0, 20.0, 60.0, 0.1, 4.0, True, "left", movement)


def event(fault: Fault, time: float, borderline: bool = False) -> FaultEvent:
    return FaultEvent(fault, "", time, 1.0, 0.5, 1, borderline=borderline)


def test_each_true_rep_gets_the_counted_rep_and_the_faults_heard_in_its_window(tmp_path):
    label = LabelledClip("x.mp4", tmp_path / "x.mp4", "hinge", 3, frozenset())
    evidence = (event(Fault.ROUNDED_BACK, 2.2), event(Fault.HEAD_NOT_NEUTRAL, 2.4, borderline=True),
                event(Fault.OVEREXTENDED_LOCKOUT, 9.5), event(Fault.ROUNDED_BACK, 9.8, borderline=True))
    result = ClipResult(label, 300, [rep(1, 2.0), rep(2, 8.0, "squat")], frozenset(), 0.0, "hinge", evidence)
    verdicts = rep_verdicts(result, [(1.0, 4.5), (4.5, 7.0), (7.0, 10.0)])
    assert [v.counted for v in verdicts] == [True, False, True]
    assert [v.movement for v in verdicts] == ["hinge", "", "squat"]
    assert verdicts[0].raised == {Fault.ROUNDED_BACK} and verdicts[0].borderline == {Fault.HEAD_NOT_NEUTRAL}
    assert verdicts[1].raised == frozenset()
    # the last rep runs to the end of the clip (a lockout judged late still belongs to it)
    assert verdicts[2].raised == {Fault.OVEREXTENDED_LOCKOUT} and verdicts[2].borderline == {Fault.ROUNDED_BACK}
    late = ClipResult(label, 300, [], frozenset(), 0.0, "hinge", (event(Fault.ROUNDED_BACK, 10.4),))
    assert rep_verdicts(late, [(1.0, 4.5), (4.5, 10.0)])[1].raised == {Fault.ROUNDED_BACK}


def test_a_fault_on_a_counted_rep_goes_with_that_rep_whenever_it_was_heard(tmp_path):
    """A short lockout is judged as its rep closes, when the hips bend again: in the next true rep's
    window. It belongs to the rep that closed (matched by its deepest point), not to the next one;
    a fault on no counted rep (a dropped attempt) still goes by its time."""
    label = LabelledClip("x.mp4", tmp_path / "x.mp4", "hinge", 2, frozenset())
    short = event(Fault.INCOMPLETE_LOCKOUT, 4.8)
    first = rep(1, 2.0)
    first.faults = [short]
    dropped_attempt = event(Fault.HEAD_NOT_NEUTRAL, 4.9)
    result = ClipResult(label, 300, [first, rep(2, 6.0)], frozenset(), 0.0, "hinge", (short, dropped_attempt))
    verdicts = rep_verdicts(result, [(1.0, 4.5), (4.5, 8.0)])
    assert verdicts[0].raised == {Fault.INCOMPLETE_LOCKOUT}
    assert verdicts[1].raised == {Fault.HEAD_NOT_NEUTRAL}


# --- detection curves ----------------------------------------------------------------------------

def record(quantity: str, value: float, raised: bool, swept: str = "spine") -> RepRecord:
    fault = FAULT_DEFINITIONS[quantity].fault
    sev = {q: 0.0 for q in FAULT_DEFINITIONS}
    sev[quantity] = value
    return RepRecord("c.mp4", "hinge", swept, 0.0, 30, sev, frozenset(), True, "hinge",
                     frozenset({fault}) if raised else frozenset(), frozenset())


def curve(quantity: str, points: dict[float, tuple[int, int]], swept: str = "spine") -> dict:
    reps = [record(quantity, level, i < k, swept) for level, (k, n) in points.items() for i in range(n)]
    return detection(reps, quantity)


def test_the_50_and_90_percent_severities_read_the_curve_from_the_gravest_level_down():
    row = curve("spine_flexion", {0: (0, 4), 20: (0, 2), 30: (1, 2), 45: (2, 2)})
    assert (row["raised_50"], row["raised_90"]) == ("30", "45")
    # a graver level raised less often breaks the run: the severity is where it holds from there on
    row = curve("spine_flexion", {0: (0, 4), 20: (2, 2), 30: (0, 2), 45: (2, 2)})
    assert (row["raised_50"], row["raised_90"]) == ("45", "45")
    row = curve("spine_flexion", {0: (0, 4), 45: (1, 2), 60: (0, 2)})
    assert (row["raised_50"], row["raised_90"]) == ("never", "never")


def test_a_quicker_lowering_is_the_graver_one():
    row = curve("lowering_s", {2.0: (0, 3), 1.0: (1, 2), 0.5: (2, 2)}, swept="tempo")
    assert (row["raised_50"], row["raised_90"]) == ("1", "0.5")


def test_a_squat_rendered_at_the_hinge_station_is_no_clean_rep():
    squat = RepRecord("squat.mp4", "hinge", "", 0.0, 30, {}, frozenset({"squatting_the_hinge"}), True, "squat",
                      frozenset({"squatting_the_hinge"}), frozenset())
    hinge = RepRecord("hinge.mp4", "hinge", "", 0.0, 30, {}, frozenset(), True, "hinge", frozenset(), frozenset())
    swept = RepRecord("neck.mp4", "hinge", "neck", 0.0, 30, {}, frozenset(), True, "hinge", frozenset(), frozenset())
    assert [r.clean for r in (squat, hinge, swept)] == [False, True, False]
