"""Synthetic side-on athletes: scripted joint angles rendered as BlazePose-shaped `Pose` records.

For testing every analysis rule without video: a stick figure with a leg of `leg_px` pixels whose
hip flexion, knee flexion, shin tilt and head offset follow key postures in time, seen side-on (or
turned toward the camera), with optional pixel noise, hidden joints that the "model" misplaces,
frames with nobody, and the feet cut off by the frame.

    poses = (Motion().stand(1.0).hinge(depth=90).stand(1.0)).render(fps=30)

Angles follow the analysis' conventions (device/kinematics.py): trunk = hip flexion - thigh,
thigh = knee flexion - shin, all tilting toward the toes when positive.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from device.pose.landmarks import LANDMARK_INDEX, NUM_LANDMARKS, TORSO_STATIONS, Pose

# Segment lengths in leg lengths (hip-knee + knee-ankle = 1), roughly an adult's proportions.
THIGH, SHIN = 0.5, 0.5
TRUNK = 0.62  # hip joint to shoulder joint
NECK = 0.2  # shoulder joint to ear
UPPER_ARM, FOREARM = 0.36, 0.3
LEG_M = 0.9  # a leg (hip to ankle) in metres, for the world landmarks
HALF_SHOULDERS, HALF_HIPS = 0.22, 0.15  # half the width across, for turning toward the camera
ANKLE_HEIGHT = 0.08
HEEL_BACK, TOE_FORWARD = 0.07, 0.2
FAR_SIDE_VISIBILITY = 0.7
NEAR_SIDE_VISIBILITY = 0.97


@dataclass(frozen=True)
class Posture:
    """One key posture, angles in degrees (see the module docstring)."""

    hip: float = 4.0
    knee: float = 5.0
    shin: float = 3.0
    head: float = -8.0  # ear off the hip-shoulder line: + toward the floor, - cranked back
    hands: str = "hang"  # "hang" (straight down), "legs" (a bar riding down the legs), "head" (behind it), "chest"
    reach: float = 0.0  # hands held this far (leg lengths) ahead of where they would hang
    turn: float = 0.0  # degrees turned toward the camera (0 side-on, 90 facing it)
    back: float = 0.0  # the back's outline turns this much over the trunk: + rounded (a hump), - arched
    zoom: float = 1.0  # >1: stepped toward the camera (feet leave the frame)
    present: bool = True  # False: nobody in view


STANDING = Posture()


@dataclass
class Motion:
    """A timeline of key postures; between keys the joints move with a smooth (cosine) ease."""

    keys: list[tuple[float, Posture]] = field(default_factory=lambda: [(0.0, STANDING)])

    @property
    def end(self) -> float:
        return self.keys[-1][0]

    @property
    def last(self) -> Posture:
        return self.keys[-1][1]

    def to(self, posture: Posture, seconds: float) -> "Motion":
        self.keys.append((self.end + seconds, posture))
        return self

    def hold(self, seconds: float) -> "Motion":
        return self.to(self.last, seconds)

    def stand(self, seconds: float = 1.0, **changes) -> "Motion":
        standing = replace(STANDING, **changes)
        if self.last != standing:
            self.to(standing, 0.5)
        return self.hold(seconds)

    def hinge(self, depth: float = 90.0, knee: float = 20.0, shin: float = 5.0, lower_s: float = 1.5,
              rise_s: float = 1.2, pause_s: float = 0.0, top: Optional[Posture] = None, **bottom) -> "Motion":
        """One rep: down to `depth` degrees of hip flexion over `lower_s`, pause, back up to `top`."""
        low = replace(STANDING, hip=depth, knee=knee, shin=shin, **bottom)
        self.to(low, lower_s)
        if pause_s:
            self.hold(pause_s)
        return self.to(top or STANDING, rise_s)

    def squat(self, depth: float = 110.0, lower_s: float = 1.5, rise_s: float = 1.2, **bottom) -> "Motion":
        """A squat: knees bend as much as the hips, shins tilt forward, trunk stays near upright."""
        return self.hinge(depth=depth, knee=depth, shin=35.0, lower_s=lower_s, rise_s=rise_s, **bottom)

    def posture_at(self, t: float) -> Posture:
        keys = self.keys
        if t <= keys[0][0]:
            return keys[0][1]
        for (t0, p0), (t1, p1) in zip(keys, keys[1:]):
            if t <= t1:
                w = 0.5 - 0.5 * math.cos(math.pi * (t - t0) / (t1 - t0)) if t1 > t0 else 1.0
                return _blend(p0, p1, w)
        return keys[-1][1]

    def render(self, fps: float = 30.0, **options) -> list[Pose]:
        return render(self, fps, **options)


def _blend(a: Posture, b: Posture, w: float) -> Posture:
    mix = lambda x, y: x + (y - x) * w  # noqa: E731
    return Posture(
        hip=mix(a.hip, b.hip), knee=mix(a.knee, b.knee), shin=mix(a.shin, b.shin), head=mix(a.head, b.head),
        back=mix(a.back, b.back),
        hands=b.hands if w >= 0.5 else a.hands, reach=mix(a.reach, b.reach), turn=mix(a.turn, b.turn),
        zoom=mix(a.zoom, b.zoom), present=(a.present and b.present) if 0 < w < 1 else (b if w >= 1 else a).present,
    )


def _leg_front(ankle: tuple[float, float], knee: tuple[float, float], hip: tuple[float, float], height: float) -> float:
    """How far forward the front of the leg is at a height (bone line plus ~0.06 of flesh and bar)."""
    lo, hi = (ankle, knee) if height <= knee[1] else (knee, hip)
    span = hi[1] - lo[1]
    w = min(max((height - lo[1]) / span, 0.0), 1.0) if span else 0.0
    return lo[0] + w * (hi[0] - lo[0]) + 0.06


def body_points(p: Posture) -> dict[str, tuple[float, float, float]]:
    """Sagittal joint positions (forward, up, lateral) in leg lengths; ankle at the origin's height."""
    thigh = p.knee - p.shin
    trunk = p.hip - thigh
    ankle = (0.0, ANKLE_HEIGHT)
    knee = (ankle[0] + SHIN * math.sin(math.radians(p.shin)), ankle[1] + SHIN * math.cos(math.radians(p.shin)))
    hip = (knee[0] - THIGH * math.sin(math.radians(thigh)), knee[1] + THIGH * math.cos(math.radians(thigh)))
    u = (math.sin(math.radians(trunk)), math.cos(math.radians(trunk)))  # hip -> shoulder
    shoulder = (hip[0] + TRUNK * u[0], hip[1] + TRUNK * u[1])
    n = (u[1], -u[0])  # ventral normal
    h = math.radians(p.head)
    neck = (math.cos(h) * u[0] + math.sin(h) * n[0], math.cos(h) * u[1] + math.sin(h) * n[1])
    ear = (shoulder[0] + NECK * neck[0], shoulder[1] + NECK * neck[1])
    face = (neck[1], -neck[0])  # the face looks out along the neck's ventral normal
    nose = (ear[0] + 0.09 * face[0] + 0.03 * neck[0], ear[1] + 0.09 * face[1] + 0.03 * neck[1])
    if p.hands == "head":
        elbow = (ear[0] + 0.25 * n[0] - 0.15 * u[0], ear[1] + 0.25 * n[1] - 0.15 * u[1])
        wrist = (ear[0] - 0.06 * n[0], ear[1] - 0.06 * n[1])
    elif p.hands == "chest":
        elbow = (shoulder[0] + 0.25 * n[0] - 0.2 * u[0], shoulder[1] + 0.25 * n[1] - 0.2 * u[1])
        wrist = (shoulder[0] + 0.12 * n[0] - 0.15 * u[0], shoulder[1] + 0.12 * n[1] - 0.15 * u[1])
    else:  # arms hang straight down from the shoulders, plus any reach forward
        wrist = (shoulder[0] + p.reach, shoulder[1] - UPPER_ARM - FOREARM)
        if p.hands == "legs":  # the bar rides on the front of the thighs and shins
            wrist = (min(wrist[0], _leg_front(ankle, knee, hip, wrist[1]) + p.reach), wrist[1])
        elbow = ((shoulder[0] + wrist[0]) / 2, (shoulder[1] + wrist[1]) / 2)
    heel = (ankle[0] - HEEL_BACK, 0.02)
    toe = (ankle[0] + TOE_FORWARD, 0.01)
    sagittal = {"ankle": ankle, "knee": knee, "hip": hip, "shoulder": shoulder, "ear": ear, "elbow": elbow,
                "wrist": wrist, "heel": heel, "foot_index": toe}
    widths = {"hip": HALF_HIPS, "knee": 0.1, "ankle": 0.1, "heel": 0.1, "foot_index": 0.1, "shoulder": HALF_SHOULDERS,
              "elbow": HALF_SHOULDERS + 0.03, "wrist": HALF_SHOULDERS, "ear": 0.07}
    out: dict[str, tuple[float, float, float]] = {"nose": (nose[0], nose[1], 0.0)}
    for joint, (f, u_) in sagittal.items():
        out[f"left_{joint}"] = (f, u_, -widths[joint])
        out[f"right_{joint}"] = (f, u_, widths[joint])
    for side, sign in (("left", -1), ("right", 1)):  # eyes just above and behind the nose, mouth below
        for eye in ("eye", "eye_inner", "eye_outer"):
            out[f"{side}_{eye}"] = (nose[0] - 0.02, nose[1] + 0.01, sign * 0.03)
        out[f"mouth_{side}"] = (nose[0] - 0.02, nose[1] - 0.03, sign * 0.03)
    for side, sign in (("left", -1), ("right", 1)):
        wf, wu, _ = out[f"{side}_wrist"]
        for digit in ("pinky", "index", "thumb"):
            out[f"{side}_{digit}"] = (wf + 0.02, wu - 0.04, sign * HALF_SHOULDERS)
    return out


# The silhouette across the trunk, in trunk lengths from the hips -> shoulders line: the back's
# outline lies BACK_DEPTH behind it (plus the rounding's arc), the front TRUNK_FRONT ahead of it.
BACK_DEPTH, TRUNK_FRONT = 0.25, 0.2


def torso_outline(lm: np.ndarray, facing: int, back_deg: float) -> Optional[np.ndarray]:
    """The silhouette's edges across the trunk at TORSO_STATIONS (the engine's Pose.torso_outline):
    a back whose outline is an arc turning `back_deg` over the trunk (depth BACK_DEPTH + A/2 t(1-t),
    A in radians), and a flat front; None when the hips and shoulders coincide in the image."""
    hips = (lm[LANDMARK_INDEX["left_hip"], :2] + lm[LANDMARK_INDEX["right_hip"], :2]) / 2
    shoulders = (lm[LANDMARK_INDEX["left_shoulder"], :2] + lm[LANDMARK_INDEX["right_shoulder"], :2]) / 2
    chord = shoulders - hips
    length = float(np.hypot(*chord))
    if not length > 0:  # hips and shoulders in one place (seen from above): no trunk to read across
        return None
    left = np.array([chord[1], -chord[0]]) / length  # side 0 of Pose.torso_outline
    back_side = 0 if facing > 0 else 1  # facing image right, the back lies along the left normal
    t = np.asarray(TORSO_STATIONS)
    stations = hips + t[:, None] * chord
    back = (BACK_DEPTH + math.radians(back_deg) / 2 * t * (1 - t)) * length
    out = np.empty((len(t), 2, 2))
    for side, sign in ((0, 1.0), (1, -1.0)):
        depth = back if side == back_side else np.full_like(t, TRUNK_FRONT * length)
        out[:, side, :] = stations + sign * depth[:, None] * left
    return out


def render(
    motion: Motion,
    fps: float = 30.0,
    *,
    facing: int = 1,
    near: str = "left",
    image_size: tuple[int, int] = (640, 480),
    leg_px: float = 170.0,
    noise_px: float = 0.0,
    hidden: tuple[tuple[float, float, str], ...] = (),
    misplace_px: float = 60.0,
    dropout_rate: float = 0.0,
    seed: int = 0,
    outline_shown: bool = True,
    world_shown: bool = True,
) -> list[Pose]:
    """Poses at `fps` over the whole motion.

    facing: +1 the athlete faces image right, -1 left; near: the side turned to the camera.
    noise_px: Gaussian pixel noise on every point. hidden: (start, end, joint) spans where a joint is
    hidden (low visibility, misplaced by `misplace_px`, as the model guesses occluded joints): the
    near side's for "ankle", that landmark for a full name such as "right_ankle". dropout_rate: share of frames where one random leg joint is hidden so.
    outline_shown: the pose carries the silhouette across the trunk (a model with the person mask);
    False for a variant without it. world_shown: the pose carries world landmarks (metres, a leg
    LEG_M long, turned with the body as the image is), as the landmark model gives; False for none.
    """
    rng = np.random.default_rng(seed)
    world_rng = np.random.default_rng([seed, 3])  # apart, so the image's noise is what it was before world landmarks
    w, h = image_size
    far = "right" if near == "left" else "left"
    ground_y = h - 0.08 * h
    anchor_x = w / 2 + facing * 0.1 * leg_px
    frames = int(math.floor(motion.end * fps + 1e-9)) + 1
    out = []
    for i in range(frames):
        t = i / fps
        p = motion.posture_at(t)
        lm = np.full((NUM_LANDMARKS, 5), np.nan)
        if not p.present:
            out.append(Pose(t, lm, 0.0, True, (w, h)))
            continue
        turn = math.radians(p.turn)
        scale = leg_px * p.zoom
        world = np.full((NUM_LANDMARKS, 3), np.nan)
        cy = ground_y - 0.5 * leg_px  # zoom about the hips' height, as stepping toward the camera does
        for name, (fwd, up, lateral) in body_points(p).items():
            lat = lateral if near == "right" else -lateral  # the near side is nearer the camera
            x = anchor_x + facing * scale * (fwd * math.cos(turn)) + scale * lat * math.sin(turn) * facing
            y = cy - (up * leg_px - 0.5 * leg_px) * p.zoom
            vis = NEAR_SIDE_VISIBILITY if name.startswith(near) or not name.startswith(far) else FAR_SIDE_VISIBILITY
            i_ = LANDMARK_INDEX[name]
            lm[i_] = (x, y, -lat * scale, vis, 0.99)
            # The same body in 3D: turned about the vertical by `turn`, y down, z away from the camera.
            world[i_] = (facing * (fwd * math.cos(turn) + lat * math.sin(turn)), -up,
                         facing * (lat * math.cos(turn) - fwd * math.sin(turn)))
        hips = (world[LANDMARK_INDEX["left_hip"]] + world[LANDMARK_INDEX["right_hip"]]) / 2
        world = (world - hips) * LEG_M
        # Side-on the far side sits a little apart in the image (the pelvis is never exactly square).
        if math.isclose(p.turn, 0.0, abs_tol=1e-6):
            for name in LANDMARK_INDEX:
                if name.startswith(far):
                    lm[LANDMARK_INDEX[name], 0] -= facing * 0.03 * scale
        outline = torso_outline(lm, facing, p.back) if outline_shown else None
        if noise_px:
            lm[:, :2] += rng.normal(0.0, noise_px, size=(NUM_LANDMARKS, 2))
            world += world_rng.normal(0.0, noise_px / scale * LEG_M, size=world.shape)
            if outline is not None:
                outline += rng.normal(0.0, noise_px, size=outline.shape)
        hide = [joint for t0, t1, joint in hidden if t0 <= t < t1]
        if dropout_rate and rng.random() < dropout_rate:
            hide.append(str(rng.choice(["knee", "ankle", "heel"])))
        for joint in hide:
            i_ = LANDMARK_INDEX[joint if joint in LANDMARK_INDEX else f"{near}_{joint}"]
            lm[i_, 3] = float(rng.uniform(0.05, 0.3))
            angle = rng.uniform(0, 2 * math.pi)
            lm[i_, 0] += misplace_px * math.cos(angle)
            lm[i_, 1] += misplace_px * math.sin(angle)
        out.append(Pose(t, lm, 0.99, i == 0, (w, h), torso_outline=outline, world=world if world_shown else None))
    return out
