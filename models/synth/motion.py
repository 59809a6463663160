"""Drills, reps and faults as motion: what the athlete does frame by frame, in exact joint angles.

A posture is six sagittal angles, each measured from the standing pose: hip flexion (the pelvis on
the thigh), thigh and shin tilt (knee ahead of hip, knee ahead of ankle), lumbar and thoracic
flexion, and neck flexion. A rep moves from the top posture to the bottom one and back on a smooth
(cosine) time curve at the drill's tempo, so every frame's angles are known exactly.

What a fault changes is a parameter of the rep, graded from clean to gross:
- spine rounding (lumbar, thoracic, or both) and knee share change how the athlete reaches the
  same depth: the hips bend less as the spine or the knees bend more, solved so the shoulders end at
  the clean rep's height (or the hands at the load, for a lift from the floor). That is the hard case
  for a 2D coach: the trunk line barely moves while the back rounds.
- neck flexion or extension is held through the rep (from the start of the lowering).
- the lockout's hip extension (negative: hips left bent; positive: a lean-back, the first 10 degrees
  at the hip and the rest in the lumbar spine, where a real lean-back comes from).
- the load's distance ahead of the legs, and the lowering time.

Posture -> bone rotations follows anny's rig: the root turns the pelvis and everything above it;
the thighs are turned back by the hip flexion so they keep their own tilt; the feet are turned so
they stay flat; lumbar flexion is spread over spine05-03 and thoracic over spine02-01, which sum
exactly (see body.py). The feet are planted: each frame is translated so the ankles stay put.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from models.synth.body import BodyShape, forward_kinematics, identity_rotations, pose_arm, rotation_x

LUMBAR_BONES = (("spine05", 0.40), ("spine04", 0.35), ("spine03", 0.25))
THORACIC_BONES = (("spine02", 0.5), ("spine01", 0.5))
NECK_BONES = (("neck01", 1 / 3), ("neck02", 1 / 3), ("neck03", 1 / 3))
# A lean-back past this is no longer the hip: the hip joint extends about 10-20 degrees past
# standing, the rest of a visible lean-back is lumbar extension.
HIP_EXTENSION_LIMIT_DEG = 10.0


@dataclass(frozen=True)
class Posture:
    """Sagittal angles (degrees) from the standing pose; see the module docstring."""

    hip: float = 0.0
    thigh: float = 0.0
    shin: float = 0.0
    lumbar: float = 0.0
    thoracic: float = 0.0
    neck: float = 0.0

    @property
    def knee(self) -> float:
        return self.thigh + self.shin

    def blend(self, other: "Posture", p: float) -> "Posture":
        return Posture(*(a + (b - a) * p for a, b in zip(self.values(), other.values())))

    def values(self) -> tuple[float, ...]:
        return (self.hip, self.thigh, self.shin, self.lumbar, self.thoracic, self.neck)


def posture_rotations(shape: BodyShape, posture: Posture) -> np.ndarray:
    """Bone rotations (bones, 3, 3) that put the body in `posture` (arms at rest)."""
    model = shape.model
    rot = identity_rotations(len(model.labels))
    pelvis = posture.hip - posture.thigh  # the trunk's (pelvis') forward pitch in the world
    rot[model.index["root"]] = rotation_x(pelvis)
    for side in ("L", "R"):
        # the thigh's world pitch is pelvis + this: the knee comes forward by `thigh`
        rot[model.index[f"upperleg01.{side}"]] = rotation_x(-posture.hip)
        rot[model.index[f"lowerleg01.{side}"]] = rotation_x(posture.knee)
        rot[model.index[f"foot.{side}"]] = rotation_x(-posture.shin)  # the foot stays flat
    for bones, total in ((LUMBAR_BONES, posture.lumbar), (THORACIC_BONES, posture.thoracic), (NECK_BONES, posture.neck)):
        for bone, share in bones:
            rot[model.index[bone]] = rotation_x(total * share)
    return rot


# --- drills --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drill:
    """How a drill is done: its profile, start, what the hands do, its prop, the knees at the bottom
    and how deep it goes. `depth`: "hip" (a hip flexion), "wall" (the hips touch the wall), "floor"
    (the hands reach the load on the floor), "midshin" (the bar just below mid-shin: 45% of the way
    from knee to ankle). The knees: a hinge's thighs tilt about 20 degrees with near-vertical shins,
    which takes the hips back about 0.15 m; a floor pull bends them far more."""

    name: str
    profile: str
    movement: str
    start: str  # "standing" or "floor"
    arms: str
    prop: str
    thigh: float
    shin: float
    depth: str
    hip: float = 85.0
    lowering_s: float = 1.2  # when the profile prescribes no tempo
    load: bool = False  # a load the hands hold ahead of the legs (the load_away sweep applies)


DRILLS: dict[str, Drill] = {d.name: d for d in (
    Drill("hinge", "hinge", "hinge", "standing", "hang", "none", 22, 2, "hip", 85),
    Drill("wall_tap_hinge", "wall_tap_hinge", "hinge", "standing", "hips", "wall", 22, 2, "wall"),
    Drill("dowel_hinge", "dowel_hinge", "hinge", "standing", "dowel", "dowel", 22, 2, "hip", 80),
    Drill("cable_pulled_hinge", "cable_pulled_hinge", "hinge", "standing", "hang", "cable", 24, 2, "hip", 85),
    Drill("sternum_loaded_hinge", "sternum_loaded_hinge", "hinge", "standing", "sternum", "plate", 22, 2, "hip", 80),
    Drill("hands_behind_head_hinge", "hands_behind_head_hinge", "hinge", "standing", "behind_head", "none", 22, 2, "hip", 80),
    Drill("band_resisted_hinge", "band_resisted_hinge", "hinge", "standing", "hips", "band", 20, 2, "hip", 75),
    Drill("pull_through", "pull_through", "hinge", "standing", "rope", "rope", 26, 5, "hip", 85),
    Drill("romanian_deadlift", "romanian_deadlift", "hinge", "standing", "bar", "barbell", 22, 2, "midshin", load=True),
    Drill("kettlebell_deadlift", "kettlebell_deadlift", "hinge", "floor", "bell", "kettlebell", 42, 14, "floor", load=True),
    # The bar starts over mid-foot touching the shins, so the shins stay near vertical (6 degrees: the
    # shin's front at the bar's height is then just behind it) and the knees bend at the thigh.
    Drill("deadlift", "deadlift", "hinge", "floor", "bar", "barbell", 62, 6, "floor", lowering_s=1.0, load=True),
    # A bodyweight squat, arms forward, done at the hinge station: the contrast every hinge rule must
    # tell apart. Judged under the plain hinge profile, as the shared clips' squats are.
    Drill("squat", "hinge", "squat", "standing", "forward", "none", 72, 34, "hip", 112),
)}


@dataclass(frozen=True)
class RepPlan:
    """One rep's fault parameters (all zero/None: a clean rep of the drill)."""

    lumbar: float = 0.0  # degrees of lumbar flexion at the bottom
    thoracic: float = 0.0
    neck: float = 0.0  # + flexion, - extension, held through the rep
    knee_share: Optional[float] = None  # knee / (hip + knee) flexion at the bottom; None: the drill's own
    lockout: float = 0.0  # hip extension at the top: + lean-back, - hips left bent
    load_forward: float = 0.0  # extra distance of the load ahead of the legs, leg lengths
    lowering_s: Optional[float] = None  # None: the drill's tempo
    hip: Optional[float] = None  # bottom hip flexion instead of the drill's depth (a deep hinge)


# --- the scene the hands work with ---------------------------------------------------------------


@dataclass
class Props:
    """Where the drill's things are in one frame (world metres; None when the drill has none)."""

    bar: Optional[np.ndarray] = None  # barbell centre
    bell: Optional[np.ndarray] = None  # kettlebell handle top
    plate: Optional[tuple[np.ndarray, np.ndarray]] = None  # (centre, facing normal) at the sternum
    dowel: Optional[tuple[np.ndarray, np.ndarray]] = None  # its two ends
    line: Optional[tuple[np.ndarray, np.ndarray, float]] = None  # a cable/band/rope: ends and radius
    anchor: Optional[np.ndarray] = None  # the column or post the line is tied to (its foot)
    wall_y: Optional[float] = None  # the wall behind the wall-tap athlete (its front face)
    load: Optional[np.ndarray] = None  # the load's centre (bar, bell, plate, hands)


BAR_RADIUS = 0.014
PLATE_RADIUS = 0.225  # a 20 kg plate: the bar sits 0.225 m above the floor
BELL_HANDLE_TOP = 0.29  # a 16 kg bell standing on the floor
GRIP_ABOVE_BAR = 0.07  # the wrist joint sits above the bar held in the palm


@dataclass
class FramePlan:
    time: float
    phase: str
    rep: int  # 1-based, 0 outside any rep
    posture: Posture
    rotations: np.ndarray
    translation: np.ndarray  # added to the posed vertices: plants the feet
    props: Props


@dataclass
class RepWindow:
    rep: int
    start: float
    bottom: float
    end: float
    plan: RepPlan
    bottom_posture: Posture
    top_posture: Posture
    lowering_s: float


@dataclass
class ClipPlan:
    frames: list[FramePlan] = field(default_factory=list)
    reps: list[RepWindow] = field(default_factory=list)


class Scene:
    """One body doing one drill: solves depths, places the props and the hands, frame by frame."""

    def __init__(self, shape: BodyShape, drill: Drill, wall_m: float = 0.3, band_side: str = "behind"):
        self.shape = shape
        self.drill = drill
        self.wall_m = wall_m
        self.band_side = band_side
        m = shape.model
        self.model = m
        rest = shape.rest_heads
        self.ankles = [m.index["foot.L"], m.index["foot.R"]]
        # the planted ankles: mid-ankle over the origin, the soles on the floor
        self.ankle_home = np.array([0.0, 0.0, shape.sole_below_ankle])
        feet = (m.vertex_regions == 4)  # shoes
        foot_v = shape.rest_vertices[feet] - rest[self.ankles].mean(0)
        self.heel_back = float(foot_v[:, 1].max())  # heel behind the ankle (+y)
        self.toe_front = float(-foot_v[:, 1].min())  # toe ahead of the ankle
        self.midfoot_f = (self.toe_front - self.heel_back) / 2  # forward of the ankle
        upper, lower = shape.arm_lengths
        self.arm = upper + lower
        self.leg = float(np.linalg.norm(rest[m.index["lowerleg01.L"]] - rest[m.index["upperleg01.L"]])
                         + np.linalg.norm(rest[m.index["foot.L"]] - rest[m.index["lowerleg01.L"]]))
        self._bottoms: dict[tuple[RepPlan, Optional[float]], Posture] = {}
        self.front_radius = self._front_radii()
        self.back_points = self._dorsal_offsets()
        self.chest_offset = self._chest_offset()

    # -- rest-body measurements -----------------------------------------------------------------

    def _front_radii(self) -> dict[str, float]:
        """How far the front of the thigh and shin lies ahead of the bone's axis (rest, metres)."""
        v, rest, idx = self.shape.rest_vertices, self.shape.rest_heads, self.model.index
        out = {}
        for name, top, bottom in (("thigh", "upperleg01.L", "lowerleg01.L"), ("shin", "lowerleg01.L", "foot.L")):
            a, b = rest[idx[top]], rest[idx[bottom]]
            mid = (a + b) / 2
            near = (np.abs(v[:, 2] - mid[2]) < 0.03) & (np.abs(v[:, 0] - mid[0]) < 0.07)
            out[name] = float(mid[1] - v[near, 1].min()) if near.any() else 0.06
        return out

    def _dorsal_offsets(self) -> dict[str, tuple[str, np.ndarray]]:
        """Points on the back a dowel touches (sacrum, upper back, back of the head), each as an
        offset from a bone's head in that bone's rest frame, so they follow the posed bone."""
        v, rest, idx = self.shape.rest_vertices, self.shape.rest_heads, self.model.index
        mid = np.abs(v[:, 0]) < 0.03
        out = {}
        for name, bone, z0, z1 in (("sacrum", "spine05", -0.02, 0.06), ("upper_back", "spine01", 0.02, 0.12),
                                   ("head", "head", 0.0, 0.12)):
            h = rest[idx[bone]]
            band = mid & (v[:, 2] > h[2] + z0) & (v[:, 2] < h[2] + z1)
            point = v[band][np.argmax(v[band, 1])] if band.any() else h + [0, 0.1, 0]
            out[name] = (bone, point - h)
        return out

    def _chest_offset(self) -> np.ndarray:
        """The sternum's front surface, as an offset from spine02's head (rest)."""
        v, rest, idx = self.shape.rest_vertices, self.shape.rest_heads, self.model.index
        h = rest[idx["spine02"]]
        band = (np.abs(v[:, 0]) < 0.03) & (v[:, 2] > h[2] + 0.02) & (v[:, 2] < h[2] + 0.10)
        return (v[band][np.argmin(v[band, 1])] - h) if band.any() else np.array([0.0, -0.12, 0.05])

    # -- kinematics in the world ----------------------------------------------------------------

    def body_at(self, posture: Posture) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rotations, heads in the world, carried rotations, translation) for a posture."""
        rot = posture_rotations(self.shape, posture)
        heads, carried = forward_kinematics(self.model.parents, self.shape.rest_heads, rot)
        translation = self.ankle_home - heads[self.ankles].mean(0)
        return rot, heads + translation, carried, translation

    def head(self, heads: np.ndarray, name: str) -> np.ndarray:
        return heads[self.model.index[name]]

    def shoulders(self, heads: np.ndarray) -> np.ndarray:
        return (self.head(heads, "upperarm01.L") + self.head(heads, "upperarm01.R")) / 2

    def leg_front_f(self, heads: np.ndarray, z: float) -> float:
        """How far forward (-y) the front of the legs is at height z."""
        hip = (self.head(heads, "upperleg01.L") + self.head(heads, "upperleg01.R")) / 2
        knee = (self.head(heads, "lowerleg01.L") + self.head(heads, "lowerleg01.R")) / 2
        ankle = (self.head(heads, "foot.L") + self.head(heads, "foot.R")) / 2
        if z >= knee[2]:
            a, b, r = knee, hip, self.front_radius["thigh"]
        else:
            a, b, r = ankle, knee, self.front_radius["shin"]
        t = 0.0 if b[2] == a[2] else min(max((z - a[2]) / (b[2] - a[2]), 0.0), 1.0)
        axis_f = -(a[1] + t * (b[1] - a[1]))
        return axis_f + r

    def hands_on_line(self, heads: np.ndarray, forward: Callable[[float], float], floor_z: float) -> tuple[float, float]:
        """Straight arms from the shoulders to the point whose forward position `forward(z)` gives
        at its height: returns (forward, height) of the hands (clamped to the floor)."""
        s = self.shoulders(heads)
        s_f, s_z = -s[1], s[2]
        reach = self.arm * 0.985
        z = s_z - reach
        f = forward(z)
        for _ in range(4):
            df = f - s_f
            if abs(df) >= reach:
                f = s_f + math.copysign(reach * 0.999, df)
                df = f - s_f
            z = max(s_z - math.sqrt(reach * reach - df * df), floor_z)
            f = forward(z)
        return f, z

    # -- the props and the hands, per frame -----------------------------------------------------

    def dress(self, posture: Posture, plan: RepPlan) -> tuple[np.ndarray, np.ndarray, Props]:
        """Rotations with the arms placed, the translation, and the props for one frame."""
        rot, heads, carried, translation = self.body_at(posture)
        props = Props()
        targets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        arms, prop = self.drill.arms, self.drill.prop
        midfoot_f = self.midfoot_f
        load_shift = plan.load_forward * self.leg
        lateral = {"L": 1.0, "R": -1.0}

        def close_to_legs(radius: float) -> Callable[[float], float]:
            return lambda z: max(midfoot_f, self.leg_front_f(heads, z) + radius) + load_shift

        if arms == "bar":
            f, z = self.hands_on_line(heads, close_to_legs(BAR_RADIUS + 0.01), PLATE_RADIUS + GRIP_ABOVE_BAR)
            props.bar = np.array([0.0, -f, z - GRIP_ABOVE_BAR])
            props.load = props.bar
            grip = abs(self.head(heads, "upperleg01.L")[0]) + 0.14
            for side, sign in lateral.items():
                targets[side] = (np.array([sign * grip, -f, z]), np.array([sign * 0.3, 1.0, 0.0]))
        elif arms == "bell":
            f, z = self.hands_on_line(heads, lambda z: midfoot_f + load_shift, BELL_HANDLE_TOP + GRIP_ABOVE_BAR)
            props.bell = np.array([0.0, -f, z - GRIP_ABOVE_BAR])
            props.load = props.bell - np.array([0.0, 0.0, 0.17])
            for side, sign in lateral.items():
                targets[side] = (np.array([sign * 0.045, -f, z]), np.array([sign * 1.0, 0.3, 0.0]))
        elif arms == "rope":
            def between_legs(z: float) -> float:
                return self.leg_front_f(heads, z) - self.front_radius["thigh"]
            f, z = self.hands_on_line(heads, between_legs, 0.3)
            hands = np.array([0.0, -f, z])
            anchor = np.array([0.0, self.heel_back + 1.7, 0.0])
            props.line = (hands - np.array([0, 0, 0.03]), anchor + np.array([0.0, 0.0, 0.30]), 0.012)
            props.anchor = anchor
            props.load = hands
            for side, sign in lateral.items():
                targets[side] = (hands + np.array([sign * 0.03, 0.0, 0.0]), np.array([sign * 1.0, 0.5, 0.0]))
        elif arms == "sternum":
            spine02 = self.model.index["spine02"]
            chest = heads[spine02] + carried[spine02] @ self.chest_offset
            ventral = carried[spine02] @ np.array([0.0, -1.0, 0.0])
            centre = chest + ventral * 0.035
            props.plate = (centre, ventral)
            props.load = centre
            up = carried[spine02] @ np.array([0.0, 0.0, 1.0])
            for side, sign in lateral.items():
                targets[side] = (centre + np.array([sign * 0.13, 0.0, 0.0]) + ventral * 0.02, -up + np.array([sign * 0.8, 0.0, 0.0]))
        elif arms == "behind_head":
            head = self.head(heads, "head")
            neck = self.model.index["neck03"]
            back = carried[neck] @ np.array([0.0, 1.0, 0.0])
            up = carried[neck] @ np.array([0.0, 0.0, 1.0])
            for side, sign in lateral.items():
                targets[side] = (head + back * 0.10 + up * 0.07 + np.array([sign * 0.05, 0.0, 0.0]),
                                 np.array([sign * 1.0, 0.0, 0.0]) + up * 0.4)
        elif arms == "hips":
            root = self.model.index["root"]
            up = carried[root] @ np.array([0.0, 0.0, 1.0])
            back = carried[root] @ np.array([0.0, 1.0, 0.0])
            hip_mid = (self.head(heads, "upperleg01.L") + self.head(heads, "upperleg01.R")) / 2
            for side, sign in lateral.items():
                targets[side] = (hip_mid + up * 0.13 + np.array([sign * 0.19, 0.0, 0.0]) - back * 0.01,
                                 back + np.array([sign * 0.6, 0.0, 0.0]))
        elif arms == "dowel":
            ends = self._dowel(heads, carried)
            props.dowel = ends
            low, high = ends
            along = (high - low) / np.linalg.norm(high - low)
            upper_back = self._dorsal_point(heads, carried, "upper_back")
            sacrum = self._dorsal_point(heads, carried, "sacrum")
            grip_high = upper_back + along * 0.20
            grip_low = sacrum + along * 0.05
            targets["R"] = (grip_high, np.array([-1.0, 0.2, 0.6]))
            targets["L"] = (grip_low, np.array([1.0, 0.6, -0.2]))
        elif arms == "forward":
            for side, sign in lateral.items():
                shoulder = self.head(heads, f"upperarm01.{side}")
                targets[side] = (shoulder + np.array([-sign * 0.02, -self.arm * 0.97, -0.05]), np.array([0.0, 0.0, -1.0]))
        else:  # hang: straight down beside the thighs
            for side, sign in lateral.items():
                shoulder = self.head(heads, f"upperarm01.{side}")
                x = sign * max(abs(shoulder[0]) * 0.95, abs(self.head(heads, f"upperleg01.{side}")[0]) + 0.10)
                targets[side] = (np.array([x, shoulder[1] - 0.02, shoulder[2] - self.arm]), np.array([0.0, 1.0, 0.0]))

        if prop == "wall":
            props.wall_y = self.wall_y
        if prop in ("cable", "band"):
            root = self.model.index["root"]
            hip_mid = (self.head(heads, "upperleg01.L") + self.head(heads, "upperleg01.R")) / 2
            behind = self.band_side == "behind" or prop == "cable"
            surface = carried[root] @ np.array([0.0, 1.0 if behind else -1.0, 0.0]) * 0.13
            start = hip_mid + surface + carried[root] @ np.array([0.0, 0.0, 0.03])
            anchor = np.array([0.0, self.heel_back + 1.6, 0.0]) if behind else np.array([0.0, -(self.toe_front + 1.4), 0.0])
            height = 0.9 if prop == "cable" else 0.6
            props.line = (start, anchor + np.array([0.0, 0.0, height]), 0.012 if prop == "cable" else 0.022)
            props.anchor = anchor
        if props.load is None:
            props.load = (targets["L"][0] + targets["R"][0]) / 2 if targets else None

        for side, (target, pole) in targets.items():
            pose_arm(self.shape, rot, side, target - translation, pole, heads - translation, carried)
        return rot, translation, props

    def _dorsal_point(self, heads: np.ndarray, carried: np.ndarray, name: str) -> np.ndarray:
        bone, offset = self.back_points[name]
        b = self.model.index[bone]
        return heads[b] + carried[b] @ offset

    def _dowel(self, heads: np.ndarray, carried: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The dowel laid on the back: on the sacrum, tipped against the upper back (or the back of
        the head, whichever stands out further), reaching past the head."""
        sacrum = self._dorsal_point(heads, carried, "sacrum")
        best = None
        for name in ("upper_back", "head"):
            p = self._dorsal_point(heads, carried, name)
            d = p - sacrum
            angle = math.atan2(d[1], d[2])  # tipped back from vertical
            if best is None or angle > best[0]:
                best = (angle, d / np.linalg.norm(d))
        assert best is not None
        along = best[1].copy()
        along[0] = 0.0
        along /= np.linalg.norm(along)
        return sacrum - along * 0.12 + [0, 0.015, 0], sacrum + along * 1.05 + [0, 0.015, 0]

    # -- depth -----------------------------------------------------------------------------------

    def bottom_posture(self, plan: RepPlan, clean_reach: Optional[float] = None) -> Posture:
        """The bottom of a rep. The clean rep goes as deep as its drill; a faulty one reaches the
        clean rep's shoulder height (or the load on the floor) its own way."""
        key = (plan, clean_reach)
        if key not in self._bottoms:
            self._bottoms[key] = self._bottom_posture(plan, clean_reach)
        return self._bottoms[key]

    def _bottom_posture(self, plan: RepPlan, clean_reach: Optional[float]) -> Posture:
        d = self.drill
        thigh, shin = d.thigh, d.shin
        if plan.knee_share is not None:
            share = min(max(plan.knee_share, 0.0), 0.8)
        else:
            share = None

        def at(hip: float) -> Posture:
            if share is not None:
                knee = hip * share / (1 - share)
                s = min(0.45 * knee, 40.0)
                return Posture(hip, knee - s, s, plan.lumbar, plan.thoracic, plan.neck)
            return Posture(hip, thigh, shin, plan.lumbar, plan.thoracic, plan.neck)

        if plan.hip is not None:
            return at(plan.hip)
        if d.depth == "floor":
            hip = self._solve_hip(at, self._floor_gap)
            for more_knee in (8.0, 16.0, 24.0):  # a body that cannot reach the load sets its hips lower
                if hip < 130.0 or share is not None:
                    break
                thigh = d.thigh + more_knee
                hip = self._solve_hip(at, self._floor_gap)
            return at(hip)
        if clean_reach is not None and (plan.lumbar or plan.thoracic or share is not None):
            return at(self._solve_hip(at, lambda p: self.shoulders(self.body_at(p)[1])[2] - clean_reach))
        if d.depth == "wall":
            return self._wall_posture(plan)
        if d.depth == "midshin":
            return at(self._solve_hip(at, self._midshin_gap))
        return at(d.hip)

    def reach_of(self, posture: Posture) -> float:
        """The clean bottom's shoulder height, which a faulty rep of the same depth keeps."""
        return float(self.shoulders(self.body_at(posture)[1])[2])

    def _solve_hip(self, at: Callable[[float], Posture], gap: Callable[[Posture], float]) -> float:
        """The least hip flexion (0-130 degrees) at which gap(posture) <= 0, by bisection."""
        lo, hi = 0.0, 130.0
        if gap(at(hi)) > 0:
            return hi
        for _ in range(24):
            mid = (lo + hi) / 2
            if gap(at(mid)) > 0:
                lo = mid
            else:
                hi = mid
        return hi

    def _hands_height(self, posture: Posture, floor_z: float, forward: Optional[Callable] = None) -> float:
        _, heads, _, _ = self.body_at(posture)
        f = forward or (lambda z: max(self.midfoot_f, self.leg_front_f(heads, z) + BAR_RADIUS + 0.01))
        return self.hands_on_line(heads, f, -10.0)[1]

    def _floor_gap(self, posture: Posture) -> float:
        if self.drill.arms == "bell":
            return self._hands_height(posture, 0, lambda z: self.midfoot_f) - (BELL_HANDLE_TOP + GRIP_ABOVE_BAR)
        return self._hands_height(posture, 0) - (PLATE_RADIUS + GRIP_ABOVE_BAR)

    def _midshin_gap(self, posture: Posture) -> float:
        _, heads, _, _ = self.body_at(posture)
        ankle = (self.head(heads, "foot.L") + self.head(heads, "foot.R")) / 2
        knee = (self.head(heads, "lowerleg01.L") + self.head(heads, "lowerleg01.R")) / 2
        return self._hands_height(posture, 0) - GRIP_ABOVE_BAR - (knee[2] - 0.45 * (knee[2] - ankle[2]))

    def _seat_back(self, postures: list[Posture]) -> list[float]:
        """How far back (+y, world) the seat reaches in each posture, from the posed mesh (hips, seat
        and thighs: the clothing region "shorts")."""
        seat = self.model.vertex_regions == 1
        posed = [self.body_at(p) for p in postures]
        vertices = self.model.pose_vertices(self.shape, np.stack([r for r, _, _, _ in posed]))
        return [float((v[seat, 1] + t[1]).max()) for v, (_, _, _, t) in zip(vertices, posed)]

    @property
    def wall_y(self) -> float:
        """The wall-tap wall's face: `wall_m` (scaled to the leg: for an 0.8 m leg) behind where the
        seat is when standing."""
        if not hasattr(self, "_wall_y"):
            self._wall_y = self._seat_back([Posture()])[0] + self.wall_m * self.leg / 0.8
        return self._wall_y

    def _wall_posture(self, plan: RepPlan) -> Posture:
        """The wall tap's bottom: the hips travel back (hip flexion and thigh tilt growing together,
        shins near vertical) until the seat touches the wall; searched on the mesh, coarse then fine."""
        def at(s: float) -> Posture:
            return Posture(45.0 + 80.0 * s, 8.0 + 30.0 * s, self.drill.shin, plan.lumbar, plan.thoracic, plan.neck)

        def first_touch(steps: np.ndarray) -> Optional[float]:
            for s, back in zip(steps, self._seat_back([at(float(s)) for s in steps])):
                if back >= self.wall_y:
                    return float(s)
            return None

        coarse = first_touch(np.linspace(0.0, 1.0, 21))
        if coarse is None:
            return at(1.0)
        fine = first_touch(np.linspace(max(coarse - 0.05, 0.0), coarse, 11))
        return at(fine if fine is not None else coarse)

    def top_posture(self, plan: RepPlan) -> Posture:
        """The lockout: standing tall, or short of it, or leaning back (see the module docstring)."""
        e = plan.lockout
        if e >= 0:
            hip = -min(e, HIP_EXTENSION_LIMIT_DEG)
            return Posture(hip=hip, lumbar=-(e + hip), neck=plan.neck)
        return Posture(hip=-e, thigh=min(-e * 0.3, 8.0), shin=min(-e * 0.15, 5.0), neck=plan.neck)


# --- timing ------------------------------------------------------------------------------------


def ease(p: float) -> float:
    """Cosine ease in/out: a rep starts and stops smoothly, as a controlled hinge does."""
    p = min(max(p, 0.0), 1.0)
    return 0.5 - 0.5 * math.cos(math.pi * p)


BOTTOM_S = 0.3  # a touch at the bottom
FLOOR_S = 0.6  # the load set down and taken up again
RISING_S = 1.0
TOP_S = 0.9  # standing at lockout before the next rep (the station closes a rep once the hips settle)
LEAD_S = 1.2  # standing (or set up at the floor) before the first rep: the view is measured upright
TAIL_S = 0.6


def drill_lowering_s(drill: Drill, min_lowering_s: Optional[float]) -> float:
    """The clean tempo: comfortably slower than the drill's prescribed lowering (profile's
    `too_fast.min_lowering_s`, where it is enabled), else the drill's own."""
    if min_lowering_s is None:
        return drill.lowering_s
    return round(min_lowering_s * 1.3 + 0.1, 2)


def plan_clip(scene: Scene, reps: list[RepPlan], fps: float, clean_lowering_s: float) -> ClipPlan:
    """Every frame's posture, bone rotations, foot planting and props, and each rep's window."""
    clean = scene.bottom_posture(RepPlan())
    reach = scene.reach_of(clean)
    stand = Posture()
    keyframes: list[tuple[float, Posture, str, int, RepPlan]] = []  # (time, posture, phase until next, rep)
    windows: list[RepWindow] = []
    t = 0.0
    floor_start = scene.drill.start == "floor"
    first = reps[0] if reps else RepPlan()
    previous_top = stand
    if floor_start:
        bottom = scene.bottom_posture(first, reach)
        keyframes.append((0.0, bottom, "bottom", 1, first))
        t = LEAD_S
    else:
        keyframes.append((0.0, stand, "standing", 0, RepPlan()))
        t = LEAD_S
    for i, rep in enumerate(reps, start=1):
        bottom = scene.bottom_posture(rep, reach)
        top = scene.top_posture(rep)
        lowering = rep.lowering_s if rep.lowering_s is not None else clean_lowering_s
        if floor_start and i == 1:
            start = 0.0
            bottom_time = 0.0
            keyframes.append((t, bottom, "rising", i, rep))
        else:
            start = t
            keyframes.append((t, previous_top, "lowering", i, rep))
            t += lowering
            bottom_time = t
            keyframes.append((t, bottom, "bottom", i, rep))
            t += FLOOR_S if floor_start else BOTTOM_S
            keyframes.append((t, bottom, "rising", i, rep))
        t += RISING_S
        keyframes.append((t, top, "lockout", i, rep))
        t += TOP_S
        windows.append(RepWindow(i, start, bottom_time, t, rep, bottom, top, lowering if not (floor_start and i == 1) else math.nan))
        previous_top = top
    keyframes.append((t, previous_top, "standing", 0, RepPlan()))
    t += TAIL_S
    keyframes.append((t, previous_top, "standing", 0, RepPlan()))

    plan = ClipPlan(reps=windows)
    n = int(math.floor(t * fps + 1e-9))
    k = 0
    for i in range(n):
        time = i / fps
        while k + 1 < len(keyframes) - 1 and keyframes[k + 1][0] <= time:
            k += 1
        t0, p0, phase, rep_index, rep = keyframes[k]
        t1, p1 = keyframes[k + 1][0], keyframes[k + 1][1]
        p = ease((time - t0) / (t1 - t0)) if t1 > t0 else 1.0
        posture = p0.blend(p1, p)
        rot, translation, props = scene.dress(posture, rep)
        plan.frames.append(FramePlan(time, phase, rep_index, posture, rot, translation, props))
    return plan
