"""The back's shape: the silhouette across the trunk read from a person mask (device/pose/outline.py),
and the bend of the back's outline the rounded_back rule reads (kinematics.back_bend_deg)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from device.analysis.kinematics import BACK_SPAN, TorsoOutline, back_bend_deg, robust_parabola, stations_behind_arm
from device.pose.landmarks import TORSO_STATIONS
from device.pose.outline import REACH, torso_outline

CROP = 256.0


def disc_mask(size: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    """Logits of a disc: +1 inside, -1 outside, crossing zero on the circle (linear in distance)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    scale = size / CROP
    return (radius - np.hypot(xs / scale - centre[0], ys / scale - centre[1])) / 4.0


@pytest.mark.parametrize("size", [256, 128])
def test_the_outline_finds_the_silhouette_edge_on_both_sides(size):
    """Across a disc of radius 40 (crop pixels) along a vertical line through its centre, the edges
    lie where the circle does, to a fraction of a mask pixel, at 256 and at a 128-pixel mask alike."""
    centre, radius = (128.0, 128.0), 40.0
    hips, shoulders = np.array([128.0, 150.0]), np.array([128.0, 90.0])  # up the image, 60 px
    edges = torso_outline(disc_mask(size, centre, radius), hips, shoulders, CROP)
    t = np.asarray(TORSO_STATIONS)
    y = hips[1] + t * (shoulders[1] - hips[1])
    half_chord = np.sqrt(np.maximum(radius**2 - (y - centre[1]) ** 2, 0.0))
    inside = np.abs(y - centre[1]) < radius - 2
    # Side 0 lies along (dy, -dx) of the hips -> shoulders line: (-60, 0), image left.
    assert np.allclose(edges[inside, 0, 0], centre[0] - half_chord[inside], atol=0.6 * CROP / size)
    assert np.allclose(edges[inside, 1, 0], centre[0] + half_chord[inside], atol=0.6 * CROP / size)
    assert np.allclose(edges[inside, :, 1], y[inside, None])


def test_no_edge_is_invented_where_the_line_leaves_the_silhouette_or_never_ends():
    hips, shoulders = np.array([128.0, 150.0]), np.array([128.0, 90.0])
    # The stations beyond the disc are outside the person: NaN, not an edge.
    small = torso_outline(disc_mask(256, (128.0, 150.0), 20.0), hips, shoulders, CROP)
    t = np.asarray(TORSO_STATIONS)
    assert np.isnan(small[t * 60 > 22]).all()
    # Everything is person (the mask never ends within reach): no edge either.
    full = torso_outline(np.ones((256, 256)), hips, shoulders, CROP)
    assert np.isnan(full).all()
    assert REACH * 60 < 128  # (the rays would have left the crop otherwise)


def arc_outline(bend_deg: float, facing: int, back_depth: float = 0.25, length: float = 80.0,
                outliers: tuple[tuple[int, float], ...] = ()) -> TorsoOutline:
    """An image-space torso leaning forward 60 degrees, its back an arc turning `bend_deg` over the
    trunk; (station, extra depth) outliers push single stations out (a strap, a drawn line)."""
    hips = np.array([300.0, 300.0])
    lean = math.radians(60)
    chord = length * np.array([facing * math.sin(lean), -math.cos(lean)])
    left = np.array([chord[1], -chord[0]]) / length
    back = left if facing > 0 else -left
    t = np.asarray(TORSO_STATIONS)
    depth = back_depth + math.radians(bend_deg) / 2 * t * (1 - t)
    for station, extra in outliers:
        depth[station] += extra
    stations = hips + t[:, None] * chord
    edges = np.empty((len(t), 2, 2))
    side = 0 if facing > 0 else 1
    edges[:, side] = stations + (depth * length)[:, None] * back
    edges[:, 1 - side] = stations - 0.2 * length * back
    return TorsoOutline((float(hips[0]), float(hips[1])), tuple(hips + chord), edges)


@pytest.mark.parametrize("facing", [1, -1])
@pytest.mark.parametrize("bend", [-40.0, 0.0, 20.0, 45.0])
def test_the_bend_is_the_turn_of_the_backs_outline(facing, bend):
    """An arc turning A over the trunk reads A, hump or sway, whichever way the athlete faces, and
    however thick the trunk is (a deeper back shifts the outline, it does not bend it)."""
    assert back_bend_deg(arc_outline(bend, facing), facing) == pytest.approx(bend, abs=0.5)
    assert back_bend_deg(arc_outline(bend, facing, back_depth=0.4), facing) == pytest.approx(bend, abs=0.5)


def test_the_back_is_the_side_away_from_the_face():
    """Read from the front (the wrong facing) the flat chest says nothing about the back."""
    rounded = arc_outline(45.0, 1)
    assert back_bend_deg(rounded, 1) == pytest.approx(45.0, abs=0.5)
    assert back_bend_deg(rounded, -1) == pytest.approx(0.0, abs=0.5)
    assert math.isnan(back_bend_deg(rounded, 0))  # which way they face is not known yet


def test_a_few_stations_pushed_out_do_not_bend_a_flat_back():
    """A strap or a line drawn across the back pushes two stations of the span out by a tenth of the
    trunk: the robust fit leaves a flat back within a few degrees of flat, where a plain least-squares
    parabola through the same stations reads a clear bend."""
    outliers = ((8, 0.1), (9, 0.1))  # mid-span (t = 0.4, 0.45)
    bumped = arc_outline(0.0, 1, outliers=outliers)
    assert abs(back_bend_deg(bumped, 1)) < 5.0
    t = np.asarray(TORSO_STATIONS)
    span = (t >= BACK_SPAN[0] - 1e-9) & (t <= BACK_SPAN[1] + 1e-9)
    depth = 0.25 + np.where(np.isin(np.arange(len(t)), [8, 9]), 0.1, 0.0)
    plain = math.degrees(-2 * np.polyfit(t[span], depth[span], 2)[0])
    robust = math.degrees(-2 * robust_parabola(t[span], depth[span])[2])
    assert plain > 15.0 and abs(robust) < 5.0


def test_too_little_of_the_back_read_gives_no_bend():
    outline = arc_outline(45.0, 1)
    t = np.asarray(TORSO_STATIONS)
    span = np.flatnonzero((t >= BACK_SPAN[0] - 1e-9) & (t <= BACK_SPAN[1] + 1e-9))
    edges = outline.edges.copy()
    edges[span[: len(span) - 7], 0] = np.nan  # 7 of the span's 15 stations left: under MIN_BACK_STATIONS
    assert math.isnan(back_bend_deg(TorsoOutline(outline.hips, outline.shoulders, edges), 1))


def with_elbow(outline: TorsoOutline, facing: int, at: float, behind: float) -> TorsoOutline:
    """The outline with an arm whose elbow lies `at` of the way up the trunk and `behind` trunk
    lengths behind the hips -> shoulders line (negative: in front of it); the arm's silhouette
    pushes the back's edge out to the elbow between 0.2 and 0.55 of the way up (hands on the hips)."""
    hips, shoulders = np.asarray(outline.hips), np.asarray(outline.shoulders)
    chord = shoulders - hips
    length = float(np.hypot(*chord))
    left = np.array([chord[1], -chord[0]]) / length
    back = left if facing > 0 else -left
    elbow = hips + at * chord + behind * length * back
    arm = np.stack([shoulders + f * (elbow - shoulders) for f in np.linspace(0, 1, 6)]
                   + [elbow + f * (hips + 0.2 * chord - elbow) for f in np.linspace(0, 1, 6)])
    edges = outline.edges.copy()
    side = 0 if facing > 0 else 1
    t = np.asarray(TORSO_STATIONS)
    covered = (t >= 0.2) & (t <= 0.55)
    if behind > 0:
        edges[covered, side] = (hips + t[covered, None] * chord) + max(behind + 0.1, 0.35) * length * back
    return TorsoOutline(outline.hips, outline.shoulders, edges, arm)


@pytest.mark.parametrize("facing", [1, -1])
def test_an_arm_behind_the_back_is_not_read_as_the_back(facing):
    """Hands on the hips put the elbows behind the trunk: the silhouette's edge there is the arm's.
    A flat back with the elbow well behind it (0.3 trunk lengths) does not read rounded, and the
    same bulge with no arm to explain it does; an arm hanging in front (a hinge, a deadlift) takes
    nothing away from a rounded back."""
    flat = arc_outline(0.0, facing)
    hands_on_hips = with_elbow(flat, facing, at=0.4, behind=0.3)
    bulge_alone = TorsoOutline(hands_on_hips.hips, hands_on_hips.shoulders, hands_on_hips.edges)
    read = back_bend_deg(hands_on_hips, facing)
    assert math.isnan(read) or abs(read) < 10
    assert back_bend_deg(bulge_alone, facing) > 25
    rounded = arc_outline(45.0, facing)
    hanging = with_elbow(rounded, facing, at=0.7, behind=-0.5)
    assert back_bend_deg(hanging, facing) == pytest.approx(45.0, abs=0.5)


@pytest.mark.parametrize("behind, hidden", [(0.05, False), (0.15, True)])
def test_an_arm_counts_as_behind_the_back_from_a_tenth_of_a_trunk_behind_the_line(behind, hidden):
    """The arm's depth behind the hips -> shoulders line decides (a trunk is about half a trunk length
    deep, so a tenth behind the line is inside the body's outline): an elbow 0.05 behind is an arm at
    the side and the stations stay read; 0.15 behind, the stations beside it are dropped."""
    rounded = arc_outline(45.0, 1)
    arm = with_elbow(rounded, 1, at=0.4, behind=behind)
    kept = TorsoOutline(arm.hips, arm.shoulders, rounded.edges, arm.arms)  # the outline itself untouched
    hips, shoulders = np.asarray(kept.hips), np.asarray(kept.shoulders)
    chord = shoulders - hips
    length = float(np.hypot(*chord))
    normal = np.array([chord[1], -chord[0]]) / length
    dropped = stations_behind_arm(kept, hips, chord, normal, length)
    assert bool(dropped.any()) is hidden
