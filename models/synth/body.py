"""The athlete: anny's parametric body posed with exact joint angles.

anny (PyPI, Apache-2.0, MakeHuman-based) gives a 104-bone rig with five spine bones, three neck
bones and a head, a mesh of 13,718 vertices whose shape follows six phenotype values (gender, age,
muscle, weight, height, proportions, each 0..1) and a regressor of COCO keypoints. Its default pose
parameterization ("local-ref") expresses each bone's rotation in world-aligned axes carried by its
parents, so a rotation about the lateral (x) axis of one spine bone after another adds up exactly:
10 degrees on each of two bones is 20 degrees of spine flexion, whatever the others do. That is what
makes the truth exact.

Only this module imports torch and anny; everything downstream works on numpy arrays. The pose
plan (joint angles, arm targets) is computed in numpy with `forward_kinematics`, a copy of the
rig's chain rule on bone heads (checked against anny's own output in the tests), so planning a
frame (reaching a bar, touching a wall) costs no mesh evaluation.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Optional

import numpy as np

log = logging.getLogger(__name__)

# COCO keypoint names of anny's regressor -> the BlazePose landmark names they stand for.
COCO_TO_BLAZEPOSE = {
    "nose": "nose", "left_eye": "left_eye", "right_eye": "right_eye", "left_ear": "left_ear", "right_ear": "right_ear",
    "left_shoulder": "left_shoulder", "right_shoulder": "right_shoulder", "left_elbow": "left_elbow",
    "right_elbow": "right_elbow", "left_wrist": "left_wrist", "right_wrist": "right_wrist", "left_hip": "left_hip",
    "right_hip": "right_hip", "left_knee": "left_knee", "right_knee": "right_knee", "left_ankle": "left_ankle",
    "right_ankle": "right_ankle", "left_big_toe": "left_foot_index", "right_big_toe": "right_foot_index",
    "left_heel": "left_heel", "right_heel": "right_heel",
}

# Clothing regions by the bone that moves a vertex most (its skinning weight): what a shirt, shorts,
# skin and shoes would cover on a person training.
REGION_OF_BONE_PREFIX = (
    ("spine", "shirt"), ("clavicle", "shirt"), ("shoulder", "shirt"), ("upperarm01", "shirt"),
    ("upperarm02", "skin"), ("lowerarm", "skin"), ("wrist", "skin"), ("finger", "skin"), ("metacarpal", "skin"),
    ("neck", "skin"), ("head", "skin"), ("eye", "skin"), ("root", "shorts"), ("pelvis", "shorts"),
    ("upperleg", "shorts"), ("lowerleg", "legs"), ("foot", "shoes"), ("toe", "shoes"),
)
REGIONS = ("shirt", "shorts", "legs", "skin", "shoes", "hair")


def anny_cache_dir() -> str:
    """Where anny keeps the ~790 MB of model data it builds on first use (~95 s): $ANNY_CACHE_DIR,
    else ~/.cache/anny."""
    return os.environ.get("ANNY_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "anny"))


def rotation_x(deg: float) -> np.ndarray:
    """Rotation about the lateral axis: positive tips an upward segment forward (toward -y), i.e.
    flexion of the trunk, and a downward segment backward."""
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction a to direction b (Rodrigues)."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(a @ b)
    if c < -0.999999:  # opposite: turn about any axis perpendicular to a
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


@dataclass(frozen=True)
class Phenotype:
    """anny's six shape values (0..1; 0.5 is the average). gender 0 is female, 1 male."""

    gender: float = 0.5
    age: float = 0.5
    muscle: float = 0.5
    weight: float = 0.5
    height: float = 0.5
    proportions: float = 0.5

    def as_kwargs(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in ("gender", "age", "muscle", "weight", "height", "proportions")}


class BodyModel:
    """anny, loaded once per process (it takes seconds from its cache, ~95 s to build the cache)."""

    def __init__(self) -> None:
        try:
            import torch  # noqa: F401 - anny's tensors
            import anny
        except ImportError as err:  # the [synth] extra is not installed
            raise ImportError(f"the rendered-athlete bench needs the [synth] extra (anny, torch): pip install -e '.[synth]' ({err})") from err
        import torch

        self._torch = torch
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
        log.info("loading the anny body model (first use builds a ~790 MB cache in %s, ~95 s)", anny_cache_dir())
        self.model = anny.Anny()
        self.labels: list[str] = list(self.model.bone_labels)
        self.index = {name: i for i, name in enumerate(self.labels)}
        self.parents = np.array(self.model.bone_parents, dtype=np.int64)
        self.faces = self.model.get_triangular_faces().cpu().numpy().astype(np.int64)
        regressor = anny.KeypointsRegressor.coco(self.model)
        self.keypoint_names: list[str] = list(regressor.labels)
        self.keypoint_weights = regressor.regression_weights.cpu().numpy()  # (K, V)
        weights = self.model.vertex_bone_weights.cpu().numpy()
        bones = self.model.vertex_bone_indices.cpu().numpy()
        self.dominant_bone = bones[np.arange(len(bones)), weights.argmax(1)]

    def shape(self, phenotype: Phenotype) -> "BodyShape":
        """The rest (unposed) body of one phenotype: bone heads and vertices."""
        with self._torch.no_grad():
            out = self.model(phenotype_kwargs=phenotype.as_kwargs())
        # The bone heads of the unposed output, not `rest_bone_heads`: those sit in another frame
        # (up to 0.3 m off the mesh for a tall body); these are where the mesh's joints are.
        return BodyShape(self, phenotype, out["bone_poses"][0, :, :3, 3].cpu().numpy().astype(float),
                         out["vertices"][0].cpu().numpy().astype(float))

    def pose_vertices(self, shape: "BodyShape", rotations: np.ndarray, batch: int = 24) -> np.ndarray:
        """Mesh vertices (B, V, 3) for per-frame bone rotations (B, bones, 3, 3) in anny's local-ref
        parameterization, before the translation that plants the feet."""
        torch = self._torch
        out = []
        kwargs = shape.phenotype.as_kwargs()
        with torch.no_grad():
            for start in range(0, len(rotations), batch):
                chunk = rotations[start:start + batch]
                homogeneous = np.zeros((len(chunk), len(self.labels), 4, 4))
                homogeneous[:, :, :3, :3] = chunk
                homogeneous[:, :, 3, 3] = 1.0
                tensor = torch.as_tensor(homogeneous, dtype=self.model.dtype)
                result = self.model(pose_parameters=tensor, phenotype_kwargs=kwargs)
                out.append(result["vertices"].cpu().numpy().astype(float))
        return np.concatenate(out) if out else np.zeros((0, len(shape.rest_vertices), 3))

    def bone_heads_of(self, shape: "BodyShape", rotations: np.ndarray) -> np.ndarray:
        """anny's own posed bone heads (B, bones, 3), for checking `forward_kinematics`."""
        torch = self._torch
        homogeneous = np.zeros((len(rotations), len(self.labels), 4, 4))
        homogeneous[:, :, :3, :3] = rotations
        homogeneous[:, :, 3, 3] = 1.0
        with torch.no_grad():
            result = self.model(pose_parameters=torch.as_tensor(homogeneous, dtype=self.model.dtype),
                                phenotype_kwargs=shape.phenotype.as_kwargs())
        return result["bone_poses"][:, :, :3, 3].cpu().numpy().astype(float)

    def keypoints(self, vertices: np.ndarray) -> dict[str, np.ndarray]:
        """COCO keypoints of posed vertices (..., V, 3), under BlazePose names."""
        points = np.einsum("kv,...vd->...kd", self.keypoint_weights, vertices)
        return {COCO_TO_BLAZEPOSE[name]: points[..., k, :] for k, name in enumerate(self.keypoint_names)
                if name in COCO_TO_BLAZEPOSE}

    @cached_property
    def vertex_regions(self) -> np.ndarray:
        """Clothing region index (into REGIONS) per vertex, from the bone that moves it most."""
        regions = np.zeros(len(self.dominant_bone), dtype=np.int64)
        for i, bone in enumerate(self.dominant_bone):
            name = self.labels[bone]
            for prefix, region in REGION_OF_BONE_PREFIX:
                if name.startswith(prefix):
                    regions[i] = REGIONS.index(region)
                    break
        return regions


@dataclass
class BodyShape:
    """One phenotype's rest body, and the rig facts the planner needs (segment lengths, offsets)."""

    model: BodyModel
    phenotype: Phenotype
    rest_heads: np.ndarray  # (bones, 3)
    rest_vertices: np.ndarray  # (V, 3)

    def head(self, name: str) -> np.ndarray:
        return self.rest_heads[self.model.index[name]]

    @cached_property
    def sole_below_ankle(self) -> float:
        """Height of the ankle joint (foot bone head) above the sole, at rest."""
        return float(self.head("foot.L")[2] - self.rest_vertices[:, 2].min())

    @cached_property
    def stature(self) -> float:
        return float(self.rest_vertices[:, 2].max() - self.rest_vertices[:, 2].min())

    @cached_property
    def arm_lengths(self) -> tuple[float, float]:
        """Upper arm (shoulder to elbow) and forearm (elbow to wrist) joint-to-joint lengths."""
        s, e, w = self.head("upperarm01.L"), self.head("lowerarm01.L"), self.head("wrist.L")
        return float(np.linalg.norm(e - s)), float(np.linalg.norm(w - e))

    @cached_property
    def hair_mask(self) -> np.ndarray:
        """Head vertices above the eyes and behind the face: where hair would be."""
        regions = self.model.vertex_regions
        v = self.rest_vertices
        head = regions == REGIONS.index("skin")
        head &= v[:, 2] > self.head("head")[2] + 0.03
        eye_y = self.head("eye.L")[1] if "eye.L" in self.model.index else self.head("head")[1] - 0.08
        face = (v[:, 1] < eye_y + 0.035) & (v[:, 2] < self.head("head")[2] + 0.13)
        return head & ~face


def forward_kinematics(parents: np.ndarray, rest_heads: np.ndarray, rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posed bone heads and carried rotations for one frame: each bone turns its subtree about its
    own head, in axes carried by its parents (anny's local-ref rule). Returns (heads, carried)."""
    n = len(parents)
    heads = np.zeros((n, 3))
    carried = np.zeros((n, 3, 3))
    for b in range(n):
        p = parents[b]
        if p < 0:
            heads[b] = rest_heads[b]
            carried[b] = rotations[b]
        else:
            heads[b] = heads[p] + carried[p] @ (rest_heads[b] - rest_heads[p])
            carried[b] = carried[p] @ rotations[b]
    return heads, carried


def identity_rotations(count: int) -> np.ndarray:
    return np.repeat(np.eye(3)[None], count, axis=0)


def two_bone_elbow(shoulder: np.ndarray, target: np.ndarray, upper: float, lower: float,
                   pole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and reached wrist for a wrist target: the elbow bends toward `pole` (a direction);
    a target out of reach is approached along the straight arm."""
    to_target = target - shoulder
    d = float(np.linalg.norm(to_target))
    t = to_target / d if d > 1e-9 else np.array([0.0, 0.0, -1.0])
    reach = upper + lower
    d = min(max(d, abs(upper - lower) + 1e-4), reach * 0.999)
    wrist = shoulder + t * d
    p = pole - (pole @ t) * t
    if np.linalg.norm(p) < 1e-9:
        p = np.cross(t, [1.0, 0.0, 0.0])
    p /= np.linalg.norm(p)
    cos_a = (upper * upper + d * d - lower * lower) / (2 * upper * d)
    a = math.acos(max(-1.0, min(1.0, cos_a)))
    elbow = shoulder + upper * (math.cos(a) * t + math.sin(a) * p)
    return elbow, wrist


def pose_arm(shape: BodyShape, rotations: np.ndarray, side: str, target: np.ndarray, pole: np.ndarray,
             heads: Optional[np.ndarray] = None, carried: Optional[np.ndarray] = None) -> np.ndarray:
    """Set the upper arm and forearm rotations of one side (in place) so the wrist reaches `target`
    (world, before the feet are planted) with the elbow toward `pole`. Returns the wrist reached."""
    model = shape.model
    if heads is None or carried is None:
        heads, carried = forward_kinematics(model.parents, shape.rest_heads, rotations)
    ua, la, wr = (model.index[f"{b}.{side}"] for b in ("upperarm01", "lowerarm01", "wrist"))
    upper, lower = shape.arm_lengths
    shoulder = heads[ua]
    elbow, wrist = two_bone_elbow(shoulder, target, upper, lower, pole)
    parent_carried = carried[model.parents[ua]]
    rest_upper = shape.rest_heads[la] - shape.rest_heads[ua]
    rotations[ua] = rotation_between(rest_upper, parent_carried.T @ (elbow - shoulder))
    upper_carried = parent_carried @ rotations[ua]
    # the twist bone between upper arm and forearm stays at rest: the forearm is carried by the upper arm
    twist = model.index[f"upperarm02.{side}"]
    forearm_parent = upper_carried @ rotations[twist]
    rest_lower = shape.rest_heads[wr] - shape.rest_heads[la]
    rotations[la] = rotation_between(rest_lower, forearm_parent.T @ (wrist - elbow))
    return wrist
