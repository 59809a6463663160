"""Render one clip: the posed body, its props, a floor and walls, seen by the station's camera.

Per clip `<name>` in the output directory:
- `<name>.mp4` at 30 fps (OpenCV's writer, as any camera recording would be read back), and for each
  lower frame rate asked for, `<name>_fps15.mp4` / `<name>_fps10.mp4`: the frames a 15 or 10 fps
  camera would have delivered, dropped by timestamp with device/commands/perturb.py's `decimate`.
- `<name>.truth.jsonl` (and one per lower rate): a header line `{"clip": ...}` with the camera, the
  body and every rep's window, severities and faults present, then one line per frame: time,
  phase, rep, the projected 2D keypoints under BlazePose's names `[x, y, depth_m]`, the as-posed
  truth and the station-defined truth (truth.py).
- a labels row per file (labels.py), in the shared labels format plus the bench's columns.

Mirrored clips are flipped left-right after rendering; their truth flips with them (x -> width - x,
and left and right swap names, as they would for the person the mirrored image shows).
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np

from device.analysis.profiles import load_profile
from models.synth.body import REGIONS, BodyModel, BodyShape, Phenotype
from models.synth.camera import HEIGHT, WIDTH, Camera, Placement
from models.synth.motion import DRILLS, ClipPlan, FramePlan, RepPlan, Scene, drill_lowering_s, plan_clip
from models.synth.props import merge, prop_meshes
from models.synth.raster import Frame, Light, Mesh, Plane, draw_background, draw_mesh
from models.synth.truth import faults_present, knee_share, posed_truth, rep_severities, sagittal_angles

log = logging.getLogger(__name__)

RENDER_FPS = 30

# Bodies across anny's phenotype space: sex, age, height, weight, muscle, proportions.
BODIES: dict[str, Phenotype] = {
    "f_average": Phenotype(gender=0.0, age=0.45),
    "m_average": Phenotype(gender=1.0, age=0.45),
    "m_tall_heavy": Phenotype(gender=1.0, age=0.55, height=0.85, weight=0.8, muscle=0.6),
    "f_short_light": Phenotype(gender=0.0, age=0.4, height=0.2, weight=0.25, muscle=0.45),
    "m_older_lean": Phenotype(gender=0.9, age=0.85, height=0.45, weight=0.35, muscle=0.35, proportions=0.3),
    "f_muscular_tall": Phenotype(gender=0.1, age=0.5, height=0.75, weight=0.55, muscle=0.85, proportions=0.7),
}

# Clothing and skin, picked per clip by its `clothes` number.
SHIRTS = [(0.15, 0.30, 0.62), (0.70, 0.14, 0.16), (0.12, 0.12, 0.13), (0.85, 0.85, 0.84), (0.20, 0.50, 0.30), (0.55, 0.35, 0.65)]
SHORTS = [(0.10, 0.10, 0.12), (0.22, 0.24, 0.32), (0.35, 0.33, 0.30), (0.05, 0.15, 0.35), (0.45, 0.45, 0.48)]
SKINS = [(0.87, 0.70, 0.58), (0.70, 0.52, 0.40), (0.45, 0.31, 0.22), (0.93, 0.78, 0.67), (0.60, 0.44, 0.33)]
SHOES = [(0.90, 0.90, 0.90), (0.10, 0.10, 0.10), (0.50, 0.20, 0.15)]
HAIR = [(0.12, 0.09, 0.07), (0.35, 0.24, 0.14), (0.60, 0.50, 0.35), (0.18, 0.18, 0.18)]
WALLS = [(0.80, 0.79, 0.75), (0.70, 0.74, 0.78), (0.86, 0.84, 0.80)]
FLOORS = [(0.42, 0.40, 0.38), (0.30, 0.31, 0.33), (0.55, 0.45, 0.35)]


@dataclass(frozen=True)
class ClipSpec:
    """One clip to render: who does which drill, which reps, seen from where."""

    name: str
    drill: str  # a key of motion.DRILLS
    reps: tuple[RepPlan, ...]
    swept: str = ""  # the severity quantity this clip sweeps (truth.FAULT_DEFINITIONS), "" when clean
    body: str = "m_average"
    clothes: int = 0
    placement: Placement = Placement()
    mirrored: bool = False
    fps: tuple[int, ...] = (30,)  # the files written: 30 and/or rates derived from it
    wall_m: float = 0.10  # wall-tap: the wall's distance behind the seat of the athlete standing tall
    band_side: str = "behind"  # band-resisted: where the band is anchored
    notes: str = ""

    def file_name(self, fps: int) -> str:
        return f"{self.name}.mp4" if fps == RENDER_FPS else f"{self.name}_fps{fps}.mp4"


@dataclass
class RenderedFile:
    """One written clip file and its labels row."""

    path: Path
    truth_path: Path
    fps: int
    frames: int
    row: dict


@dataclass
class RenderStats:
    frames: int = 0
    body_s: float = 0.0  # anny: posing the mesh
    raster_s: float = 0.0  # drawing
    write_s: float = 0.0  # encoding and truth
    files: list[RenderedFile] = field(default_factory=list)


def region_colors(shape: BodyShape, clothes: int) -> np.ndarray:
    """RGB per vertex from the clothing region of each vertex (skinning weights)."""
    rng = np.random.default_rng(clothes)
    palette = {"shirt": SHIRTS[clothes % len(SHIRTS)], "shorts": SHORTS[(clothes // 2) % len(SHORTS)],
               "legs": SKINS[(clothes * 3 + 1) % len(SKINS)] if clothes % 3 else SHORTS[(clothes // 2) % len(SHORTS)],
               "skin": SKINS[(clothes * 3 + 1) % len(SKINS)], "shoes": SHOES[clothes % len(SHOES)],
               "hair": HAIR[clothes % len(HAIR)]}
    colors = np.array([palette[r] for r in REGIONS])[shape.model.vertex_regions]
    colors[shape.hair_mask] = palette["hair"]
    colors *= rng.uniform(0.96, 1.04, size=(1, 3))  # a little tint per clip
    return np.clip(colors, 0, 1)


def scene_planes(clothes: int) -> list[Plane]:
    """The floor, a wall the camera looks at, the wall behind the athlete's back, one ahead, a ceiling."""
    wall = WALLS[clothes % len(WALLS)]
    floor = FLOORS[(clothes // 3) % len(FLOORS)]
    return [
        Plane((0.0, 0.0, 1.0), 0.0, floor, tile_m=0.5, tile_contrast=0.08),
        Plane((1.0, 0.0, 0.0), -2.6, wall),
        Plane((0.0, 1.0, 0.0), 3.6, _dim(wall, 0.92)),
        Plane((0.0, 1.0, 0.0), -4.5, _dim(wall, 0.96)),
        Plane((0.0, 0.0, 1.0), 3.2, (0.90, 0.90, 0.90)),
    ]


def _dim(color: tuple[float, float, float], factor: float) -> tuple[float, float, float]:
    return (color[0] * factor, color[1] * factor, color[2] * factor)


def aim_point(shape: BodyShape) -> np.ndarray:
    """Where the camera points: above the ankles, a little behind them (the hips travel back), at
    half the athlete's height."""
    return np.array([0.0, 0.08, 0.5 * shape.stature])


def tempo_of(drill_name: str) -> Optional[float]:
    """The drill's prescribed minimum lowering time, when its profile judges tempo."""
    profile = load_profile(DRILLS[drill_name].profile)
    rule = profile.faults.too_fast
    return rule.min_lowering_s if rule.enabled else None


def clip_plan(spec: ClipSpec, shape: BodyShape) -> tuple[Scene, ClipPlan]:
    drill = DRILLS[spec.drill]
    scene = Scene(shape, drill, wall_m=spec.wall_m, band_side=spec.band_side)
    lowering = drill_lowering_s(drill, tempo_of(spec.drill))
    return scene, plan_clip(scene, list(spec.reps), RENDER_FPS, lowering)


def _mirror_keypoints(points: dict[str, list[float]], width: int) -> dict[str, list[float]]:
    out = {}
    for name, (x, y, depth) in points.items():
        if name.startswith("left_"):
            name = "right_" + name[5:]
        elif name.startswith("right_"):
            name = "left_" + name[6:]
        out[name] = [width - x, y, depth]
    return out


def _round(value: float, nd: int = 3) -> Optional[float]:
    return None if value is None or not math.isfinite(value) else round(float(value), nd)


def draw_frame(camera: Camera, background: Frame, light: Light, body: Mesh, plan: FramePlan) -> Frame:
    """One frame: the background, the body, the frame's props."""
    frame = Frame(background.color.copy(), background.depth.copy(), background.body_mask.copy())
    draw_mesh(frame, camera, body, light, is_body=True)
    props = merge(prop_meshes(plan.props))
    if props is not None:
        draw_mesh(frame, camera, props, light)
    return frame


@dataclass
class Still:
    """One rendered frame with everything the tests check it against."""

    frame: Frame
    camera: Camera
    plan: FramePlan
    vertices: np.ndarray
    keypoints: dict[str, np.ndarray]  # world
    shape: BodyShape


def render_still(spec: ClipSpec, model: BodyModel, phase: str = "bottom", rep: int = 1) -> Still:
    """The first frame of `phase` in rep `rep` of the clip, unmirrored, without writing anything."""
    shape = model.shape(BODIES[spec.body])
    _, plan = clip_plan(spec, shape)
    fp = next(f for f in plan.frames if f.phase == phase and f.rep == rep)
    vertices = model.pose_vertices(shape, fp.rotations[None])[0] + fp.translation
    camera = Camera.placed(spec.placement, aim_point(shape))
    light = scene_light(camera, shape)
    frame = draw_frame(camera, draw_background(camera, scene_planes(spec.clothes), light), light,
                       Mesh(vertices, model.faces, region_colors(shape, spec.clothes)), fp)
    return Still(frame, camera, fp, vertices, {k: v[0] for k, v in model.keypoints(vertices[None]).items()}, shape)


def scene_light(camera: Camera, shape: BodyShape) -> Light:
    """Light from the camera's side and above, as a gym's ceiling lights and a window behind the camera."""
    toward = camera.position - aim_point(shape)
    direction = toward / np.linalg.norm(toward) + np.array([0.0, 0.0, 0.9])
    return Light(direction=direction / np.linalg.norm(direction))


# (timestamp, item) pairs of a 30 fps stream and a frame rate -> the pairs a camera at that rate
# would deliver. The command layer passes device/commands/perturb.py's `decimate`, so the derived
# rates drop frames exactly as `station evaluate --perturb` does (models/ may not import commands).
Thinner = Callable[[Iterable[tuple[float, int]], float], Iterable[tuple[float, int]]]


def render_clip(spec: ClipSpec, model: BodyModel, out_dir: Path, labels_row: Callable[[ClipSpec, int, dict], dict],
                thin: Thinner) -> RenderStats:
    """Render `spec` into `out_dir` (see the module docstring). `labels_row(spec, fps, header)` makes
    each file's labels row; `thin` drops frames for the lower rates."""
    import cv2

    stats = RenderStats()
    out_dir.mkdir(parents=True, exist_ok=True)
    shape = model.shape(BODIES[spec.body])
    scene, plan = clip_plan(spec, shape)
    started = time.perf_counter()
    rotations = np.stack([f.rotations for f in plan.frames])
    vertices = model.pose_vertices(shape, rotations) + np.stack([f.translation for f in plan.frames])[:, None, :]
    keypoints = model.keypoints(vertices)
    stats.body_s = time.perf_counter() - started

    camera = Camera.placed(spec.placement, aim_point(shape))
    light = scene_light(camera, shape)
    background = draw_background(camera, scene_planes(spec.clothes), light)
    colors = region_colors(shape, spec.clothes)
    tempo = tempo_of(spec.drill)

    reps_meta: list[dict[str, Any]] = []
    for w in plan.reps:
        severities = rep_severities(w.plan.lumbar, w.plan.thoracic, w.plan.neck, knee_share(w.bottom_posture), w.plan.lockout,
                                    math.nan, w.lowering_s)
        reps_meta.append({"rep": w.rep, "start": round(w.start, 3), "bottom": round(w.bottom, 3), "end": round(w.end, 3),
                          "severity": severities, "plan": asdict(w.plan),
                          "bottom_posture": asdict(w.bottom_posture), "top_posture": asdict(w.top_posture)})

    # per-frame truth (world), then the load's distance ahead of mid-foot per rep (its worst)
    frames_truth = []
    for i, fp in enumerate(plan.frames):
        k = {name: pts[i] for name, pts in keypoints.items()}
        station = sagittal_angles(k)
        midfoot = (k["left_heel"] + k["right_heel"] + k["left_foot_index"] + k["right_foot_index"]) / 4
        load = fp.props.load
        load_forward = (float(midfoot[1] - load[1]) / station["leg_m"]) if load is not None else math.nan
        truth = {**posed_truth(fp.posture), "load_vs_midfoot": load_forward,
                 **{f"station_{key}": value for key, value in station.items()}}
        if fp.props.wall_y is not None:
            truth["hips_to_wall_m"] = float(fp.props.wall_y - vertices[i][:, 1].max())
        frames_truth.append(truth)
    loaded = DRILLS[spec.drill].load
    for meta in reps_meta:
        inside = [t["load_vs_midfoot"] for fp, t in zip(plan.frames, frames_truth) if fp.rep == meta["rep"] and fp.phase in ("lowering", "bottom", "rising")]
        meta["severity"]["load_forward"] = max(inside) if (inside and loaded) else math.nan
        meta["faults"] = faults_present(meta["severity"], tempo, DRILLS[spec.drill].start == "floor")

    header = {"clip": spec.name, "drill": spec.drill, "profile": DRILLS[spec.drill].profile,
              "movement": DRILLS[spec.drill].movement, "swept": spec.swept, "body": spec.body,
              "phenotype": BODIES[spec.body].as_kwargs(), "clothes": spec.clothes, "mirrored": spec.mirrored,
              "camera": {"yaw_deg": spec.placement.yaw_deg, "height_m": spec.placement.height_m,
                         "distance_m": spec.placement.distance_m, "tilt_deg": round(camera.tilt_deg, 2),
                         "hfov_deg": 66.0, "width": WIDTH, "height": HEIGHT},
              "tempo_min_lowering_s": tempo, "reps": reps_meta, "stature_m": round(shape.stature, 3)}

    writers = {}
    for fps in spec.fps:
        path = out_dir / spec.file_name(fps)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), float(fps), (WIDTH, HEIGHT))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {path} (mp4v)")
        truth_path = out_dir / (path.stem + ".truth.jsonl")
        fh = truth_path.open("w")
        fh.write(json.dumps(finite({**header, "fps": fps}), allow_nan=False) + "\n")
        writers[fps] = (writer, fh, path, truth_path, [0])
    kept = {fps: {i for _, i in thin(((f.time, i) for i, f in enumerate(plan.frames)), float(fps))} for fps in spec.fps}

    for i, fp in enumerate(plan.frames):
        t0 = time.perf_counter()
        rgb = draw_frame(camera, background, light, Mesh(vertices[i], model.faces, colors), fp).to_rgb8()
        if spec.mirrored:
            rgb = np.ascontiguousarray(rgb[:, ::-1])
        stats.raster_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        points = {}
        for name, pts in keypoints.items():
            pix, depth = camera.project(pts[i])
            points[name] = [round(float(pix[0]), 2), round(float(pix[1]), 2), round(float(depth), 4)]
        if spec.mirrored:
            points = _mirror_keypoints(points, WIDTH)
        record = {"frame": i, "time": round(fp.time, 4), "phase": fp.phase, "rep": fp.rep, "keypoints": points,
                  "truth": {k: _round(v) for k, v in frames_truth[i].items()}}
        line = json.dumps(record, allow_nan=False) + "\n"
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        for fps, (writer, fh, _, _, count) in writers.items():
            if i in kept[fps]:
                writer.write(bgr)
                fh.write(line)
                count[0] += 1
        stats.write_s += time.perf_counter() - t0
    for fps, (writer, fh, path, truth_path, count) in writers.items():
        writer.release()
        fh.close()
        stats.files.append(RenderedFile(path, truth_path, fps, count[0], labels_row(spec, fps, header)))
    stats.frames = len(plan.frames)
    return stats


def finite(value: Any) -> Any:
    """The same structure with NaN and infinities as None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
