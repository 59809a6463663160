"""Pose -> hinge kinematics: the joint angles a coach reads from the side, one `Angles` per frame.

Everything is measured in the sagittal plane of the side nearer the camera, signed by the way the
athlete faces, so "forward" means toward the toes whichever way they stand:

- hip flexion: shoulder-hip-knee bend (0 standing tall, negative when the shoulders fall behind the
  hip-knee line), knee flexion: hip-knee-ankle bend;
- trunk, thigh and shin angles from vertical (positive = leaning toward the toes);
- hip shift: how far the hips sit behind the ankle, in leg lengths (the hips travel back);
- head offset: how far the ear leaves the shoulder-hip line (the dowel line), in degrees;
- load forward: how far the hands hang in front of the mid-foot, in leg lengths.

Beside those, four of the same angles in 3D (`*_3d_deg`), from the model's world landmarks: the
body's own bends, whatever the camera's yaw, so a front- or rear-oblique view, where the sagittal
angles are foreshortened, can still be judged for a squat (device/analysis/rules.py).

A landmark below the visibility threshold is not trusted: a quantity that needs it is NaN for that
frame (never guessed), and a frame whose shoulder, hip and knee are not all trusted is unreliable.
Smoothing is a One Euro filter per quantity: causal, little lag when moving, steady when still.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Optional, TypedDict

import numpy as np

from device.pose.landmarks import LANDMARK_INDEX, TORSO_STATIONS, VISIBILITY, X, Y, Pose
from device.analysis.profiles import KinematicsTable

NAN = float("nan")
SIDES = ("left", "right")
# The joints whose visibility decides which side faces the camera.
SIDE_JOINTS = ("shoulder", "hip", "knee", "ankle")
# Anatomy, not a threshold: the ankle joint sits over the back third of the foot, so mid-foot lies
# about a sixth of a foot length ahead of it: ~0.07 leg lengths for a foot of 0.28 leg lengths.
MIDFOOT_AHEAD_OF_ANKLE = 0.07


@dataclass(frozen=True)
class Angles:
    """One frame's hinge kinematics. Degrees, and leg lengths (hip-knee + knee-ankle) for distances.

    NaN marks a quantity whose landmarks were not trusted on this frame.
    """

    time: float
    reliable: bool
    side: str  # "left"/"right": the side nearer the camera; "" when nobody is seen
    facing: int  # +1 the athlete faces image right, -1 image left, 0 not known
    hip_flexion_deg: float = NAN
    knee_flexion_deg: float = NAN
    trunk_deg: float = NAN
    thigh_deg: float = NAN
    shin_deg: float = NAN
    hip_shift: float = NAN
    head_offset_deg: float = NAN
    load_forward: float = NAN
    hands_below_knee: float = NAN
    hands_below_shoulder: float = NAN
    back_bend_deg: float = NAN
    hip_flexion_3d_deg: float = NAN
    knee_flexion_3d_deg: float = NAN
    thigh_3d_deg: float = NAN
    trunk_3d_deg: float = NAN
    # Per smoothed quantity, how much the model's reading wanders on these frames (NoiseMeter, over
    # the last `noise_window_s`); missing while there are too few frames to say.
    noise: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    @property
    def hinge_ratio(self) -> float:
        return hinge_ratio(self.hip_flexion_deg, self.knee_flexion_deg)

    def noise_of(self, quantity: str) -> float:
        """The measurement noise of one quantity on these frames: as measured over the last second,
        or, before there are frames enough to measure it, the model's typical wander (TYPICAL_NOISE);
        infinite for a quantity with neither."""
        if quantity == "hinge_ratio":
            return hinge_ratio_noise(self.hip_flexion_deg, self.knee_flexion_deg,
                                     self.noise_of("hip_flexion_deg"), self.noise_of("knee_flexion_deg"))
        return self.noise.get(quantity, TYPICAL_NOISE.get(quantity, math.inf))

    def noise_measured(self, quantity: str) -> bool:
        """Whether `noise_of(quantity)` was measured on these frames rather than assumed."""
        if quantity == "hinge_ratio":
            return "hip_flexion_deg" in self.noise and "knee_flexion_deg" in self.noise
        return quantity in self.noise


# A knee bent less than this counts as bent this much in the hinge ratio: no division blow-up.
HINGE_RATIO_MIN_KNEE_DEG = 5.0


def hinge_ratio(hip_flexion_deg: float, knee_flexion_deg: float) -> float:
    """Hip flexion per degree of knee flexion: high in a hinge, near 1 in a squat. NaN when either
    angle is unknown; knees under 5 degrees count as 5."""
    if math.isnan(hip_flexion_deg) or math.isnan(knee_flexion_deg):
        return NAN
    return hip_flexion_deg / max(knee_flexion_deg, HINGE_RATIO_MIN_KNEE_DEG)


def hinge_ratio_noise(hip: float, knee: float, hip_noise: float, knee_noise: float) -> float:
    """First-order error of hip/knee from the two angles' own noise (independent errors)."""
    ratio = hinge_ratio(hip, knee)
    if math.isnan(ratio) or not (math.isfinite(hip_noise) and math.isfinite(knee_noise)):
        return math.inf
    knee_used = max(knee, HINGE_RATIO_MIN_KNEE_DEG)
    hip_part = hip_noise / max(abs(hip), 1e-9)
    knee_part = knee_noise / knee_used if knee > HINGE_RATIO_MIN_KNEE_DEG else 0.0
    return abs(ratio) * math.hypot(hip_part, knee_part)


# How much one reading of each quantity moves when BlazePose's crop shifts by one pixel, measured on
# the 21 shared side-view clips (every frame run again on the image shifted 1 px; RMS of the change,
# its worst 5% clipped, over sqrt(2) for a difference of two readings). Stands in for the measured
# noise until a second of frames has been seen (a clip that starts mid-lift, a Pi at 10 fps).
TYPICAL_NOISE = {
    "hip_flexion_deg": 2.0, "knee_flexion_deg": 2.6, "trunk_deg": 1.0, "thigh_deg": 1.7, "shin_deg": 1.5,
    "hip_shift": 0.012, "head_offset_deg": 5.9, "load_forward": 0.014, "hands_below_knee": 0.016,
    "hands_below_shoulder": 0.016,
    # The back's outline, measured the same way on the side-view frames with the trunk past 45
    # degrees, where it is judged (3,552 frame pairs; median change 1.7, p95 12.5).
    "back_bend_deg": 3.1,
}

# Fewest frames in the window for a noise estimate: the RMS of one or two residuals says nothing.
MIN_NOISE_FRAMES = 4


class NoiseMeter:
    """How much the model's reading of one quantity wanders from frame to frame, over a sliding
    time window: the RMS of each reading's departure from the cubic through its four neighbours
    (two before, two after), rescaled to the RMS of white noise (for noise of RMS s the departure
    has RMS s*sqrt(1 + sum of the cubic's weights squared), 1.94 s at even spacing).

    A cubic follows the movement itself even at a Pi's 10 fps: over a fast squat (a 0.9 s rep) the
    motion leaks about 2 degrees into it there, against about 15 for a line through the two next
    neighbours, which took a fast lift at 10 fps for noise and hid every fault in it. BlazePose's own
    wander (degrees when its crop shifts a pixel, more behind a plate) is what is left. Measured
    where the fault is judged rather than assumed."""

    SPAN = 5  # readings per departure: the middle one and its four neighbours

    def __init__(self, window_s: float):
        self.window_s = window_s
        self._readings: deque[tuple[float, float]] = deque(maxlen=self.SPAN)
        self._departures: deque[tuple[float, float]] = deque()  # (time, squared departure / expected factor)
        self._sum_sq = 0.0

    def reset(self) -> None:
        self._readings.clear()
        self._departures.clear()
        self._sum_sq = 0.0

    def _departure(self) -> Optional[tuple[float, float]]:
        """(time, squared departure over its white-noise factor) of the middle reading, or None
        when two readings share a time (no cubic through them)."""
        points = list(self._readings)
        t_mid, x_mid = points.pop(self.SPAN // 2)
        fitted, weights_sq = 0.0, 0.0
        for i, (ti, xi) in enumerate(points):
            weight = 1.0
            for j, (tj, _) in enumerate(points):
                if j != i:
                    if tj == ti:
                        return None
                    weight *= (t_mid - tj) / (ti - tj)
            fitted += weight * xi
            weights_sq += weight * weight
        departure = x_mid - fitted
        return t_mid, departure * departure / (1.0 + weights_sq)

    def add(self, time: float, value: float) -> float:
        """Feed one raw reading; returns the noise RMS, or inf while there are too few readings."""
        self._readings.append((time, value))
        if len(self._readings) == self.SPAN and (found := self._departure()) is not None:
            self._departures.append(found)
            self._sum_sq += found[1]
        while self._departures and time - self._departures[0][0] > self.window_s:
            self._sum_sq -= self._departures.popleft()[1]
        if len(self._departures) < MIN_NOISE_FRAMES:
            return math.inf
        return math.sqrt(max(self._sum_sq, 0.0) / len(self._departures))


# Quantities the smoother filters, with their unit scale relative to degrees (so one beta fits all):
# a leg length of hip travel is about as fast a change as 100 degrees of hip flexion.
SMOOTHED = {
    "hip_flexion_deg": 1.0, "knee_flexion_deg": 1.0, "trunk_deg": 1.0, "thigh_deg": 1.0, "shin_deg": 1.0,
    "hip_shift": 100.0, "head_offset_deg": 1.0, "load_forward": 100.0,
    "hands_below_knee": 100.0, "hands_below_shoulder": 100.0, "back_bend_deg": 1.0,
    "hip_flexion_3d_deg": 1.0, "knee_flexion_3d_deg": 1.0, "thigh_3d_deg": 1.0, "trunk_3d_deg": 1.0,
}


# --- pure geometry ------------------------------------------------------------------------------

Point = tuple[float, float]


class Seen:
    """One frame's landmarks as plain values: every point's visibility, and the trusted points
    (finite and at least `min_visibility`), by name. Built once per frame, read many times."""

    __slots__ = ("points", "visibility")

    def __init__(self, pose: Pose, min_visibility: float):
        lm = pose.landmarks
        xs, ys, vis = lm[:, X].tolist(), lm[:, Y].tolist(), lm[:, VISIBILITY].tolist()
        self.visibility: dict[str, float] = {}
        self.points: dict[str, Point] = {}
        for name, i in LANDMARK_INDEX.items():
            v = vis[i] if math.isfinite(vis[i]) else 0.0
            self.visibility[name] = v
            if v >= min_visibility and math.isfinite(xs[i]) and math.isfinite(ys[i]):
                self.points[name] = (xs[i], ys[i])

    def get(self, name: str) -> Optional[Point]:
        return self.points.get(name)


def side_visibility(seen: Seen, side: str) -> float:
    """Mean visibility of the side's shoulder, hip, knee and ankle (0 where a point is missing)."""
    return sum(seen.visibility[f"{side}_{j}"] for j in SIDE_JOINTS) / len(SIDE_JOINTS)


def nearer_side(seen: Seen) -> str:
    """The side whose joints the model sees best: the one turned to the camera."""
    return max(SIDES, key=lambda s: side_visibility(seen, s))


def other_side(side: str) -> str:
    return "right" if side == "left" else "left"


def facing_vote(seen: Seen) -> float:
    """Which way the athlete faces: toes ahead of heels, nose ahead of ears, shoulders ahead of hips
    when clearly bent over. > 0 faces image right, < 0 image left, 0 no evidence; about -1..1."""
    votes = []

    def unit_dx(a: str, b: str) -> Optional[float]:
        p, q = seen.get(a), seen.get(b)
        if p is None or q is None:
            return None
        n = math.dist(p, q)
        return (q[0] - p[0]) / n if n > 0 else None

    for side in SIDES:
        v = unit_dx(f"{side}_heel", f"{side}_foot_index")
        if v is not None:
            votes.append(v)
        v = unit_dx(f"{side}_ear", "nose")
        if v is not None:
            votes.append(v)
        v = unit_dx(f"{side}_hip", f"{side}_shoulder")
        if v is not None and abs(v) > 0.5:  # bent over by more than 30 degrees: the chest points forward
            votes.append(v)
    return sum(votes) / len(votes) if votes else 0.0


class BoneCheck:
    """Side-on, the thigh and shin lie in the image plane, so their length is nearly constant. A
    joint the model guessed behind a barbell plate shows up as a bone much shorter than the
    athlete's own. The reference is a high percentile of the lengths seen over the last
    `window_s` (projection only ever shortens a bone), so it survives an occlusion shorter than
    the window and follows an athlete who steps nearer or farther within it."""

    PERCENTILE = 0.9

    def __init__(self, min_fraction: float, window_s: float):
        self.min_fraction = min_fraction
        self.window_s = window_s
        self._seen: dict[tuple[str, str], deque[tuple[float, float]]] = {}
        self.reference: dict[tuple[str, str], float] = {}

    def reset(self) -> None:
        self._seen.clear()
        self.reference.clear()

    def ratio(self, side: str, bone: str, length: float) -> float:
        """Length over the reference (1.0 while there is no reference yet)."""
        ref = self.reference.get((side, bone))
        return length / ref if ref else 1.0

    def observe(self, side: str, bone: str, length: float, time: float) -> None:
        key = (side, bone)
        seen = self._seen.setdefault(key, deque())
        seen.append((time, length))
        while seen and seen[0][0] < time - self.window_s:
            seen.popleft()
        lengths = sorted(v for _, v in seen)
        self.reference[key] = lengths[int(self.PERCENTILE * (len(lengths) - 1))]


# A far-side bone must fit its usual length this much better (in log ratio) than the near one.
FAR_SIDE_PENALTY = 0.05


@dataclass(frozen=True)
class Skeleton:
    """The sagittal skeleton of one frame: each segment from one side, so its direction is true even
    when the two sides sit a little apart in the image. Absent parts were not trusted."""

    trunk: Optional[tuple[Point, Point]] = None  # (hip, shoulder)
    thigh: Optional[tuple[Point, Point]] = None  # (hip, knee)
    shin: Optional[tuple[Point, Point]] = None  # (knee, ankle)
    ear: Optional[Point] = None
    wrist: Optional[Point] = None
    midfoot: Optional[Point] = None  # from heel and toe, when both are trusted
    torso: Optional["TorsoOutline"] = None  # the silhouette across the trunk, when the model gave one


@dataclass(frozen=True)
class TorsoOutline:
    """The pose's silhouette across the trunk (Pose.torso_outline) with the line it was read along:
    the hips' centre and the shoulders' centre, as the model placed them (image pixels)."""

    hips: Point
    shoulders: Point
    edges: np.ndarray  # (len(TORSO_STATIONS), 2, 2)
    # Points along both arms (shoulder -> elbow -> wrist, image pixels): an arm behind the trunk
    # (hands on the hips, a dowel held behind the back) is in the silhouette where the back is read.
    arms: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))

    @classmethod
    def of(cls, pose: Pose) -> Optional["TorsoOutline"]:
        if pose.torso_outline is None:
            return None
        lm = pose.landmarks
        hips = (lm[LEFT_HIP, X] + lm[RIGHT_HIP, X]) / 2, (lm[LEFT_HIP, Y] + lm[RIGHT_HIP, Y]) / 2
        shoulders = (lm[LEFT_SHOULDER, X] + lm[RIGHT_SHOULDER, X]) / 2, (lm[LEFT_SHOULDER, Y] + lm[RIGHT_SHOULDER, Y]) / 2
        along = np.linspace(0.0, 1.0, ARM_SAMPLES)[:, None]
        arms = [lm[a, :2] + along * (lm[b, :2] - lm[a, :2]) for chain in ARM_CHAINS for a, b in zip(chain, chain[1:])]
        return cls((float(hips[0]), float(hips[1])), (float(shoulders[0]), float(shoulders[1])), pose.torso_outline,
                   np.concatenate(arms).astype(float))


LEFT_HIP, RIGHT_HIP = LANDMARK_INDEX["left_hip"], LANDMARK_INDEX["right_hip"]
LEFT_SHOULDER, RIGHT_SHOULDER = LANDMARK_INDEX["left_shoulder"], LANDMARK_INDEX["right_shoulder"]
# A wrist within this many trunk lengths of the ear is at the head (hands behind the head, a hand
# on the chin): about a head's breadth (15-18 cm on a ~50 cm trunk). The hand and forearm then cross
# the head in a side view and the model places the ear by them as much as by the head, so the head's
# line is not read (renders, hands behind the head: a neutral neck read 20-40 degrees dropped).
HAND_AT_HEAD = 0.35
ARM_CHAINS = tuple(tuple(LANDMARK_INDEX[f"{side}_{joint}"] for joint in ("shoulder", "elbow", "wrist"))
                   for side in ("left", "right"))
ARM_SAMPLES = 6  # points per arm segment: an upper arm or forearm is about a fifth of a trunk long
# An arm point this far behind the hips -> shoulders line (in trunk lengths, toward the back) lies
# in the back's silhouette or past it: a trunk is about half a trunk length deep, so a tenth behind
# the line is inside the body's outline, where only an arm behind the back can be. Hanging arms
# (a hinge, a deadlift) lie in front of the line; arms at the sides of an upright body near it.
ARM_BEHIND = 0.1
# Stations this near (in trunk lengths along the line) to such a point are not read: an upper arm is
# about 9 cm thick on a 50 cm trunk, so it covers a fifth of a trunk length of outline.
ARM_HALF_WIDTH = 0.1

# The back is read on the outline between these fractions of the way from the hips to the shoulders:
# nearer the hips the buttocks bulge out behind the hip joint, nearer the shoulders the shoulder
# blades, a hood or the neck do; in between lie the lumbar and thoracic spine.
BACK_SPAN = (0.1, 0.8)
# A bend is fitted only to an outline read at this many stations of the span (of 15): a curve
# through fewer says little.
MIN_BACK_STATIONS = 8
_STATIONS = np.asarray(TORSO_STATIONS)
_SPAN = (_STATIONS >= BACK_SPAN[0] - 1e-9) & (_STATIONS <= BACK_SPAN[1] + 1e-9)


def back_bend_deg(torso: TorsoOutline, facing: int) -> float:
    """How far the back's outline turns over one trunk length, in degrees: positive when it bulges
    out like a hump (the spine rounding), negative when it sways in (arched); NaN when too little
    of it was read.

    The back is the side of the hips -> shoulders line away from the way the athlete faces. Its
    distance from that line along the span is fitted with a parabola a + b t + c t^2 (t in trunk
    lengths); a circular arc that turns by angle A over a trunk length has c = -A/2, so -2c is the
    turn. A thick or thin trunk shifts the outline (a, b), it does not bend it."""
    hips, shoulders = np.asarray(torso.hips), np.asarray(torso.shoulders)
    chord = shoulders - hips
    length = float(np.hypot(*chord))
    if facing == 0 or not np.isfinite(length) or length <= 0:
        return NAN
    side = 0 if facing > 0 else 1  # facing image right, the back is on the line's left normal
    normal = np.array([chord[1], -chord[0]]) / length * (1 if side == 0 else -1)
    stations = hips + _STATIONS[:, None] * chord
    depth = ((torso.edges[:, side, :] - stations) @ normal) / length
    use = _SPAN & np.isfinite(depth) & ~stations_behind_arm(torso, hips, chord, normal, length)
    if use.sum() < MIN_BACK_STATIONS:
        return NAN
    c = robust_parabola(_STATIONS[use], depth[use])[2]
    return math.degrees(-2.0 * c)


def stations_behind_arm(torso: TorsoOutline, hips: np.ndarray, chord: np.ndarray, normal: np.ndarray,
                length: float) -> np.ndarray:
    """The stations where an arm lies behind the trunk (hands on the hips, a dowel held behind the
    back): there the silhouette's edge is the arm's, not the back's, so it is no evidence of the
    back's shape (the wall-tap renders, hands on the hips, read a neutral back as rounded by 35-39)."""
    if len(torso.arms) == 0:
        return np.zeros(len(_STATIONS), dtype=bool)
    rel = torso.arms - hips
    along = rel @ chord / (length * length)
    behind = rel @ normal / length
    points = along[np.isfinite(behind) & (behind > ARM_BEHIND)]
    if len(points) == 0:
        return np.zeros(len(_STATIONS), dtype=bool)
    return np.any(np.abs(_STATIONS[:, None] - points[None, :]) < ARM_HALF_WIDTH, axis=1)


# Tukey's biweight: a station whose depth lies more than this many robust sigmas off the fitted curve
# gets no weight. 4.685 keeps 95% of the efficiency of least squares on clean (normal) data.
TUKEY_C = 4.685
# Iterations of reweighting: the weights settle within a few.
ROBUST_ITERATIONS = 4


def robust_parabola(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Coefficients (a, b, c) of a + b t + c t^2 fitted to (t, y) by iteratively reweighted least
    squares with Tukey's biweight: a few stations pushed out by something on the back (a drawn line,
    a strap, a hand) are down-weighted instead of bending the whole fit, as they would a plain fit."""
    design = np.stack([np.ones_like(t), t, t * t], axis=1)
    weights = np.ones_like(y)
    coef = np.zeros(3)
    for _ in range(ROBUST_ITERATIONS + 1):
        root = np.sqrt(weights)
        coef = np.linalg.lstsq(design * root[:, None], y * root, rcond=None)[0]
        residual = y - design @ coef
        spread = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
        if spread <= 1e-6:
            break
        u = residual / (TUKEY_C * spread)
        new = np.where(np.abs(u) < 1.0, (1.0 - u * u) ** 2, 0.0)
        if np.count_nonzero(new) < MIN_BACK_STATIONS:
            break  # too few stations agree: keep the last fit rather than fit to a handful
        weights = new
    return coef


def pick_skeleton(seen: Seen, side: str, bones: Optional[BoneCheck] = None) -> Skeleton:
    """Each segment from the near side, or from the far side where the near one is hidden: side-on,
    in a two-footed hinge the left and right legs move together, so either shows the angle. A thigh
    or shin must fit its bone's usual length; of two that do, the better fit wins. Nothing that is
    not trusted is used; nothing is ever guessed."""
    far = other_side(side)

    def xy(s: str, joint: str) -> Optional[Point]:
        return seen.points.get(f"{s}_{joint}")

    def first(joint: str) -> Optional[Point]:
        return xy(side, joint) or xy(far, joint)

    trunk = None
    for s in (side, far):
        h, sh = xy(s, "hip"), xy(s, "shoulder")
        if h is not None and sh is not None:
            trunk = (h, sh)
            break

    def best_bone(a: str, b: str, bone: str, prefer: Optional[str]) -> tuple[Optional[tuple[Point, Point]], Optional[str]]:
        best: Optional[tuple[float, tuple[Point, Point], str]] = None
        for s in (side, far):
            p, q = xy(s, a), xy(s, b)
            if p is None or q is None:
                continue
            ratio = bones.ratio(s, bone, math.dist(p, q)) if bones is not None else 1.0
            if bones is not None and ratio < bones.min_fraction:
                continue
            misfit = abs(math.log(max(ratio, 1e-6))) + (FAR_SIDE_PENALTY if s != (prefer or side) else 0.0)
            if best is None or misfit < best[0]:
                best = (misfit, (p, q), s)
        return (best[1], best[2]) if best else (None, None)

    thigh, thigh_side = best_bone("hip", "knee", "thigh", None)
    shin, _ = best_bone("knee", "ankle", "shin", thigh_side)
    midfoot = None
    for s in (side, far):
        heel, toe = xy(s, "heel"), xy(s, "foot_index")
        if heel is not None and toe is not None:
            midfoot = ((heel[0] + toe[0]) / 2, (heel[1] + toe[1]) / 2)
            break
    return Skeleton(trunk, thigh, shin, first("ear"), first("wrist"), midfoot)


def observe_bones(seen: Seen, bones: BoneCheck, time: float) -> None:
    """Feed each side's trusted thigh and shin lengths to the bone check."""
    for s in SIDES:
        for a, b, bone in (("hip", "knee", "thigh"), ("knee", "ankle", "shin")):
            p, q = seen.get(f"{s}_{a}"), seen.get(f"{s}_{b}")
            if p is not None and q is not None:
                bones.observe(s, bone, math.dist(p, q), time)


def _angle_deg(forward: float, along: float) -> float:
    return math.degrees(math.atan2(forward, along))


class _Measured(TypedDict, total=False):
    """What measure() could take from one frame, by Angles' field names (a quantity left out stays
    NaN): the type checker holds each key to a real field."""

    hip_flexion_deg: float
    knee_flexion_deg: float
    trunk_deg: float
    thigh_deg: float
    shin_deg: float
    hip_shift: float
    head_offset_deg: float
    load_forward: float
    hands_below_knee: float
    hands_below_shoulder: float
    back_bend_deg: float


def measure(skeleton: Skeleton, time: float, side: str, facing: int, leg_px: Optional[float] = None) -> tuple[Angles, float]:
    """Kinematics of one frame from its sagittal skeleton (pure). Returns the unsmoothed `Angles`
    and the leg length in pixels this frame measured (NaN when thigh or shin was not trusted).
    `leg_px` is the caller's running leg length, used when the shin is hidden this frame."""
    if skeleton.trunk is None or skeleton.thigh is None or facing == 0:
        return Angles(time, False, side, facing), NAN
    f = facing

    def fwd(a: Point, b: Point) -> float:  # how far b lies ahead of a, toward the toes
        return f * (b[0] - a[0])

    def up(a: Point, b: Point) -> float:  # how far b lies above a
        return a[1] - b[1]

    H, S = skeleton.trunk
    Ht, K = skeleton.thigh
    trunk = _angle_deg(fwd(H, S), up(H, S))
    thigh = _angle_deg(fwd(Ht, K), -up(Ht, K))
    values: _Measured = {"trunk_deg": trunk, "thigh_deg": thigh, "hip_flexion_deg": trunk + thigh}

    leg_now = NAN
    A = None
    if skeleton.shin is not None:
        Ks, A = skeleton.shin
        shin = _angle_deg(fwd(A, Ks), up(A, Ks))
        values["shin_deg"] = shin
        values["knee_flexion_deg"] = thigh + shin
        leg_now = math.dist(Ht, K) + math.dist(Ks, A)
    leg = leg_now if math.isfinite(leg_now) else (leg_px or NAN)
    if A is not None:
        values["hip_shift"] = fwd(Ht, A) / leg

    E = skeleton.ear
    trunk_px = math.dist(H, S)
    hand_at_head = (E is not None and skeleton.wrist is not None
                    and math.dist(skeleton.wrist, E) < HAND_AT_HEAD * trunk_px)
    if E is not None and trunk_px > 0 and not hand_at_head:
        # Trunk direction u (hip -> shoulder) and its ventral normal n, in (forward, up) axes.
        uf, uu = fwd(H, S) / trunk_px, up(H, S) / trunk_px
        nf, nu = uu, -uf
        ef, eu = fwd(S, E), up(S, E)
        values["head_offset_deg"] = _angle_deg(ef * nf + eu * nu, ef * uf + eu * uu)

    W = skeleton.wrist
    if W is not None and math.isfinite(leg):
        if skeleton.midfoot is not None:
            values["load_forward"] = fwd(skeleton.midfoot, W) / leg
        elif A is not None:
            values["load_forward"] = fwd(A, W) / leg - MIDFOOT_AHEAD_OF_ANKLE
        values["hands_below_knee"] = up(W, K) / leg
        values["hands_below_shoulder"] = up(W, S) / leg

    if skeleton.torso is not None:
        values["back_bend_deg"] = back_bend_deg(skeleton.torso, f)

    return Angles(time, True, side, facing, **values), leg_now


# --- smoothing ----------------------------------------------------------------------------------


class OneEuroFilter:
    """Casiez et al.'s One Euro filter: a low-pass whose cutoff rises with speed (causal)."""

    def __init__(self, min_cutoff_hz: float, beta: float, d_cutoff_hz: float):
        self.min_cutoff = min_cutoff_hz
        self.beta = beta
        self.d_cutoff = d_cutoff_hz
        self.reset()

    def reset(self) -> None:
        self._x: Optional[float] = None
        self._dx = 0.0
        self._t: Optional[float] = None

    @staticmethod
    def _alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: float, t: float) -> float:
        if self._x is None or self._t is None or t <= self._t:
            self._x, self._t, self._dx = x, t, 0.0
            return x
        dt = t - self._t
        dx = (x - self._x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        a = self._alpha(self.min_cutoff + self.beta * abs(self._dx), dt)
        self._x = a * x + (1 - a) * self._x
        self._t = t
        return self._x


# --- the same bends in 3D -----------------------------------------------------------------------

_WORLD = {name: LANDMARK_INDEX[name] for name in (
    "left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")}
_DOWN = np.array([0.0, 1.0, 0.0])  # the image's down (Pose.world is turned into the image's axes)


def _bend_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle between two 3D directions, degrees."""
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if not norms > 0:
        return NAN
    return math.degrees(math.acos(max(-1.0, min(1.0, float(np.dot(a, b)) / norms))))


class WorldBends(TypedDict, total=False):
    hip_flexion_3d_deg: float
    knee_flexion_3d_deg: float
    thigh_3d_deg: float
    trunk_3d_deg: float


def world_bends(world: Optional[np.ndarray]) -> WorldBends:
    """Hip flexion, knee flexion, the thigh's and the trunk's angles from vertical in 3D (Angles'
    `*_3d_deg`), the legs' the mean of the two: from the world landmarks the model places both legs
    in depth, where the image shows one over the other. Hip flexion is the trunk's (hips' centre to
    shoulders' centre) bend against each thigh, so it reads like the side-on hip flexion; unsigned
    (a lean back reads as a bend: these judge the bottom, not the finish)."""
    if world is None:
        return WorldBends()
    p = {name: world[i] for name, i in _WORLD.items()}
    trunk = (p["left_shoulder"] + p["right_shoulder"]) / 2 - (p["left_hip"] + p["right_hip"]) / 2
    hips, knees, thighs = [], [], []
    for side in SIDES:
        hip, knee, ankle = p[f"{side}_hip"], p[f"{side}_knee"], p[f"{side}_ankle"]
        hips.append(180.0 - _bend_deg(trunk, knee - hip))
        knees.append(180.0 - _bend_deg(hip - knee, ankle - knee))
        thighs.append(_bend_deg(knee - hip, _DOWN))
    return WorldBends(hip_flexion_3d_deg=float(np.mean(hips)), knee_flexion_3d_deg=float(np.mean(knees)),
                      thigh_3d_deg=float(np.mean(thighs)), trunk_3d_deg=_bend_deg(trunk, -_DOWN))


class AngleTracker:
    """Frame by frame: keeps the camera side steady, knows which way the athlete faces, checks bone
    lengths, remembers the leg length and smooths every quantity. `update(pose)` is causal."""

    def __init__(self, config: KinematicsTable):
        self.config = config
        self.bones = BoneCheck(config.min_bone_fraction, config.bone_window_s)
        self._filters = {
            name: OneEuroFilter(config.min_cutoff_hz, config.beta / scale, config.d_cutoff_hz)
            for name, scale in SMOOTHED.items()
        }
        self._noise = {name: NoiseMeter(config.noise_window_s) for name in SMOOTHED}
        self.reset()

    def reset(self) -> None:
        """Forget the athlete (they left): side, facing, bone lengths and filter state."""
        self.side = ""
        self.facing = 0
        self._facing_score = 0.0
        self._other_since: Optional[float] = None
        self._leg_px: Optional[float] = None
        self.bones.reset()
        self._reset_filters()

    def _reset_filters(self) -> None:
        for flt in self._filters.values():
            flt.reset()
        for meter in self._noise.values():
            meter.reset()

    def _choose_side(self, seen: Seen, time: float) -> str:
        best = nearer_side(seen)
        if not self.side or best == self.side:
            self._other_since = None
            self.side = self.side or best
            return self.side
        if side_visibility(seen, best) - side_visibility(seen, self.side) < self.config.side_switch_margin:
            self._other_since = None
            return self.side
        if self._other_since is None:
            self._other_since = time
        if time - self._other_since >= self.config.side_switch_s:
            self.side, self._other_since = best, None
            self._reset_filters()  # the other side's points are a different signal
        return self.side

    def _update_facing(self, seen: Seen) -> int:
        # A leaky vote: the first clear frame decides, one odd frame cannot flip it, an athlete who
        # turns round flips it within a few frames.
        self._facing_score = 0.85 * self._facing_score + facing_vote(seen)
        if abs(self._facing_score) > 0.3:
            self.facing = 1 if self._facing_score > 0 else -1
        return self.facing

    def _resolution(self, quantity: str) -> float:
        """The finest change a reading can show: a pixel at each end of a bone half a leg long (an
        angle), or of a leg length (a distance in leg lengths). A clip with repeated frames (a web
        video's 24 fps stretched to 30) reads less wander than that; it is not more certain."""
        if not self._leg_px:
            return 0.0
        if SMOOTHED[quantity] == 1.0:
            return math.degrees(math.sqrt(2) / (self._leg_px / 2))
        return math.sqrt(2) / self._leg_px

    def update(self, pose: Pose) -> Angles:
        if not pose.found:
            return Angles(pose.timestamp, False, self.side, self.facing)
        seen = Seen(pose, self.config.min_visibility)
        side = self._choose_side(seen, pose.timestamp)
        facing = self._update_facing(seen)
        skeleton = replace(pick_skeleton(seen, side, self.bones), torso=TorsoOutline.of(pose))
        observe_bones(seen, self.bones, pose.timestamp)
        raw, leg_now = measure(skeleton, pose.timestamp, side, facing, self._leg_px)
        raw = replace(raw, **world_bends(pose.world))
        if math.isfinite(leg_now):
            # Side-on the leg lies in the image plane, so its length is steady; follow it slowly.
            self._leg_px = leg_now if self._leg_px is None else 0.9 * self._leg_px + 0.1 * leg_now
        if not raw.reliable:
            return raw
        smoothed: dict[str, Any] = {}  # float fields of Angles, named at run time (SMOOTHED): for replace()
        noise: dict[str, float] = {}
        for name, flt in self._filters.items():
            value = getattr(raw, name)
            if math.isnan(value):
                flt.reset()
                self._noise[name].reset()
                smoothed[name] = NAN
            else:
                smoothed[name] = flt(value, raw.time)
                level = self._noise[name].add(raw.time, value)
                if math.isfinite(level):
                    noise[name] = max(level, self._resolution(name))
        return replace(raw, noise=noise, **smoothed)

