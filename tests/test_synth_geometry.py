"""The rendered athlete's geometry pins the truth: the planner's kinematics is anny's, the angles
written as truth are the rotations applied, the image shows the body where the truth says, the
camera's yaw foreshortens as a real camera's does, and a mirrored clip mirrors its truth."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from support.synth import body_model_or_skip


@pytest.fixture(scope="module")
def model():
    return body_model_or_skip()


def sagittal_deg(v: np.ndarray) -> float:
    """Forward tilt from vertical of a segment pointing up (forward is -y)."""
    return math.degrees(math.atan2(-v[1], v[2]))


def test_the_planners_kinematics_is_anny_own(model):
    from models.synth.body import forward_kinematics, pose_arm
    from models.synth.motion import Posture, posture_rotations
    from models.synth.render import BODIES

    shape = model.shape(BODIES["f_muscular_tall"])
    rot = posture_rotations(shape, Posture(hip=70, thigh=20, shin=5, lumbar=15, thoracic=10, neck=-10))
    heads, carried = forward_kinematics(model.parents, shape.rest_heads, rot)
    target = heads[model.index["upperarm01.L"]] + np.array([0.05, -0.25, -0.3])
    reached = pose_arm(shape, rot, "L", target, np.array([1.0, 0.0, 0.0]), heads, carried)
    anny_heads = model.bone_heads_of(shape, rot[None])[0]
    assert np.abs(forward_kinematics(model.parents, shape.rest_heads, rot)[0] - anny_heads).max() < 1e-6
    assert np.linalg.norm(anny_heads[model.index["wrist.L"]] - target) < 1e-6  # in reach: the wrist is there
    assert np.linalg.norm(reached - target) < 1e-6


def test_spine_and_neck_flexion_written_as_truth_are_the_rotations_applied(model):
    from models.synth.motion import Posture, posture_rotations
    from models.synth.render import BODIES
    from models.synth.truth import posed_truth

    shape = model.shape(BODIES["m_average"])
    idx = model.index

    def tilts(posture: Posture) -> dict[str, float]:
        heads = model.bone_heads_of(shape, posture_rotations(shape, posture)[None])[0]
        return {"pelvis": sagittal_deg(heads[idx["spine04"]] - heads[idx["spine05"]]),
                "lumbar": sagittal_deg(heads[idx["spine02"]] - heads[idx["spine03"]]),
                "thoracic": sagittal_deg(heads[idx["neck01"]] - heads[idx["spine01"]]),
                "head": sagittal_deg(heads[idx["eye.L"]] + heads[idx["eye.R"]] - 2 * heads[idx["neck03"]])}

    rest = tilts(Posture())
    bent = Posture(hip=60, thigh=20, lumbar=20, thoracic=15, neck=12)
    now = tilts(bent)
    pelvis = bent.hip - bent.thigh
    # each segment turns by everything below it: the pelvis, then the lumbar, the thoracic, the neck
    assert now["pelvis"] - rest["pelvis"] == pytest.approx(pelvis + 20 * 0.40, abs=1e-6)
    assert now["lumbar"] - rest["lumbar"] == pytest.approx(pelvis + 20, abs=1e-6)
    assert now["thoracic"] - rest["thoracic"] == pytest.approx(pelvis + 20 + 15, abs=1e-6)
    assert now["head"] - rest["head"] == pytest.approx(pelvis + 20 + 15 + 12, abs=1e-6)
    truth = posed_truth(bent)
    assert truth["spine_flexion_deg"] == 35 and truth["lumbar_flexion_deg"] == 20 and truth["neck_flexion_deg"] == 12


def test_the_image_shows_the_body_where_the_truths_2d_keypoints_are(model):
    from models.synth.camera import Placement
    from models.synth.motion import RepPlan
    from models.synth.render import ClipSpec, render_still

    spec = ClipSpec("still", "hinge", (RepPlan(),), body="f_average", placement=Placement(0.0, 1.0, 3.0))
    still = render_still(spec, model, "bottom")
    idx = model.index
    heads = model.bone_heads_of(still.shape, still.plan.rotations[None])[0] + still.plan.translation
    for side in ("left", "right"):
        s = side[0].upper()
        for name, bone in (("hip", "upperleg01"), ("knee", "lowerleg01"), ("ankle", "foot")):
            joint = heads[idx[f"{bone}.{s}"]]
            kp_pix, _ = still.camera.project(still.keypoints[f"{side}_{name}"])
            joint_pix, _ = still.camera.project(joint)
            # the regressed keypoint sits at the joint, within a few pixels at 3 m (a joint is ~30 px wide)
            assert np.linalg.norm(kp_pix - joint_pix) < 6.0, (side, name)
    near = ("left_shoulder", "left_hip", "left_knee", "left_ankle", "left_elbow")  # the camera sees the left side
    for name in near:
        x, y = still.camera.project(still.keypoints[name])[0]
        window = still.frame.body_mask[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3]
        assert window.any(), name  # the body is drawn there
    rgb = still.frame.to_rgb8()
    assert rgb[still.frame.body_mask].std() > 10  # shaded, not a flat silhouette


def test_yaw_narrows_and_widens_the_hips_as_sin_yaw(model):
    from models.synth.camera import Camera, Placement
    from models.synth.motion import DRILLS, Posture, Scene
    from models.synth.render import BODIES

    shape = model.shape(BODIES["m_average"])
    scene = Scene(shape, DRILLS["hinge"])
    _, heads, _, _ = scene.body_at(Posture())
    left, right = heads[model.index["upperleg01.L"]], heads[model.index["upperleg01.R"]]
    width = float(np.linalg.norm(left - right))
    for yaw in (0.0, 20.0, 40.0, 60.0):
        # aimed at the hips' midpoint, so their image separation is the foreshortening alone (no parallax)
        camera = Camera.placed(Placement(yaw, float((left + right)[2] / 2), 3.0), (left + right) / 2)
        (pl, zl), (pr, zr) = (camera.project(p) for p in (left, right))
        depth = (float(zl) + float(zr)) / 2
        seen = abs(pl[0] - pr[0]) * depth / camera.focal  # back to metres at the hips' depth
        assert seen == pytest.approx(width * math.sin(math.radians(yaw)), abs=0.01 * width + 0.002), yaw


def test_a_mirrored_clip_mirrors_its_image_and_its_truth(model, tmp_path):
    import cv2

    from device.commands.perturb import decimate
    from models.synth.camera import Placement, WIDTH
    from models.synth.motion import RepPlan
    from models.synth.render import ClipSpec, render_clip
    from models.synth.sets import labels_row

    reps = (RepPlan(lowering_s=0.6),)
    out = {}
    for mirrored in (False, True):
        spec = ClipSpec(f"m{int(mirrored)}", "hinge", reps, body="f_short_light", placement=Placement(10.0, 1.0, 3.0),
                        mirrored=mirrored, fps=(30, 10))
        stats = render_clip(spec, model, tmp_path, labels_row, decimate)
        out[mirrored] = {f.fps: f for f in stats.files}
    plain = [json.loads(line) for line in out[False][30].truth_path.read_text().splitlines()]
    mirror = [json.loads(line) for line in out[True][30].truth_path.read_text().splitlines()]
    assert plain[0]["reps"] == mirror[0]["reps"] and mirror[0]["mirrored"] is True
    for a, b in zip(plain[1:], mirror[1:]):
        assert a["truth"] == b["truth"]
        for name, (x, y, depth) in a["keypoints"].items():
            other = name.replace("left_", "@").replace("right_", "left_").replace("@", "right_")
            assert b["keypoints"][other] == pytest.approx([WIDTH - x, y, depth], abs=0.02)
    frames = {}
    for mirrored in (False, True):
        cap = cv2.VideoCapture(str(out[mirrored][30].path))
        cap.set(cv2.CAP_PROP_POS_FRAMES, 40)
        ok, frames[mirrored] = cap.read()
        cap.release()
        assert ok
    assert np.abs(frames[True].astype(int) - frames[False][:, ::-1].astype(int)).mean() < 3.0  # codec noise only
    # the 10 fps file holds the frames a 10 fps camera would have delivered
    times = [json.loads(line)["time"] for line in out[False][10].truth_path.read_text().splitlines()[1:]]
    assert times[:4] == pytest.approx([0.0, 0.1, 0.2, 0.3], abs=1e-3)
    assert out[False][10].frames == len(times) and out[False][10].row["fps"] == 10
