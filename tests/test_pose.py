"""The real BlazePose pipeline on real clips: landmarks land on the body, tracking keeps the
detector idle, and the geometry helpers agree with each other."""
from __future__ import annotations

import math

import numpy as np
import pytest

from device.pose.landmarks import LANDMARK_NAMES, PRESENCE, VISIBILITY, Roi
from device.pose.engine import crop_matrix, project, roi_from_alignment, ssd_anchors, turn_world, weighted_nms

STANDING_CLIP = "rohanx01_bw_squat_side_multi.mp4"  # stands still about 8 s before the first rep


def test_anchor_layout_matches_detector_output():
    anchors = ssd_anchors()
    assert anchors.shape == (2254, 2)
    assert anchors.min() > 0 and anchors.max() < 1
    # first feature map is 28x28 with two anchors per cell
    assert np.allclose(anchors[0], [0.5 / 28, 0.5 / 28]) and np.allclose(anchors[1], anchors[0])


def test_roi_points_up_along_body_axis():
    upright = roi_from_alignment(np.array([100.0, 200.0]), np.array([100.0, 100.0]))
    assert upright.rotation == pytest.approx(0.0)
    assert upright.size == pytest.approx(2 * 100 * 1.25)
    leaning_right = roi_from_alignment(np.array([100.0, 200.0]), np.array([200.0, 200.0]))
    assert leaning_right.rotation == pytest.approx(math.pi / 2)
    # the crop's "up" (0, -1) must map onto the direction of the body axis
    m = crop_matrix(leaning_right, 256)
    top = m @ np.array([128, 0, 1.0])
    centre = m @ np.array([128, 128, 1.0])
    assert centre == pytest.approx([100, 200])
    assert top[0] > centre[0] and top[1] == pytest.approx(centre[1])


def test_projection_inverts_crop():
    roi = Roi(320.0, 240.0, 300.0, 0.4)
    pts = np.zeros((3, 5))
    pts[:, :2] = [[0, 0], [128, 128], [256, 40]]
    img = project(pts, roi)
    m = np.vstack([crop_matrix(roi, 256), [0, 0, 1]])
    back = np.linalg.solve(m, np.c_[img[:, :2], np.ones(3)].T).T[:, :2]
    assert back == pytest.approx(pts[:, :2], abs=1e-6)
    assert img[1, :2] == pytest.approx([320, 240])


def test_world_landmarks_are_turned_back_into_the_images_axes():
    """The crop stands the body upright, so a body leaning right in the image has its world points
    upright in the crop: turned by the ROI's rotation, the crop's up is the body axis in the image
    again, the depth (z) is untouched, and lengths are kept."""
    leaning_right = roi_from_alignment(np.array([100.0, 200.0]), np.array([200.0, 200.0]))
    crop_up = np.array([[0.0, -0.5, 0.2]])  # half a metre up the crop's axis, 20 cm deeper
    turned = turn_world(crop_up, leaning_right)
    assert turned[0] == pytest.approx([0.5, 0.0, 0.2], abs=1e-9)  # along the image's +x, as the ROI's top is
    # The same turn the crop's pixels take (crop_matrix), for any rotation.
    roi = Roi(320.0, 240.0, 300.0, 0.4)
    m = crop_matrix(roi, 256)[:, :2] / (roi.size / 256)
    points = np.array([[0.1, -0.3, 0.05], [-0.2, 0.4, -0.1]])
    assert turn_world(points, roi)[:, :2] == pytest.approx(points[:, :2] @ m.T)
    assert np.linalg.norm(turn_world(points, roi), axis=1) == pytest.approx(np.linalg.norm(points, axis=1))


def test_weighted_nms_blends_overlaps_and_keeps_separate_people():
    scores = np.array([0.9, 0.6, 0.8])
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    kps = np.zeros((3, 4, 2))
    kps[1] += 10
    out = weighted_nms(scores, boxes, kps)
    assert len(out) == 2
    assert out[0].score == pytest.approx(0.9)
    assert out[0].box[0] == pytest.approx(0.6 / 1.5)  # score-weighted blend of xmin 0 and 1
    assert out[0].keypoints[0, 0] == pytest.approx(10 * 0.6 / 1.5)


def _side(pose) -> str:
    left = sum(pose.visibility(f"left_{j}") for j in ("shoulder", "hip", "knee", "ankle"))
    right = sum(pose.visibility(f"right_{j}") for j in ("shoulder", "hip", "knee", "ankle"))
    return "left" if left >= right else "right"


def test_landmarks_land_on_a_standing_body(clip_poses, clips_dir):
    poses = [p for p in clip_poses(STANDING_CLIP) if p.timestamp < 6.0]
    assert len(poses) > 150
    found = [p for p in poses if p.found]
    assert len(found) / len(poses) > 0.95
    for pose in found:
        side = _side(pose)
        ys = [pose.xy(f"{side}_{j}")[1] for j in ("shoulder", "hip", "knee", "ankle")]
        assert ys == sorted(ys), f"t={pose.timestamp:.2f}: shoulder/hip/knee/ankle not top-to-bottom: {ys}"
        assert pose.xy("nose")[1] < ys[0]
        w, h = pose.image_size
        core = [pose.xy(f"{side}_{j}") for j in ("shoulder", "hip", "knee", "ankle")]
        assert all(0 <= x <= w and 0 <= y <= h for x, y in core)
        assert pose.landmarks[:, VISIBILITY].max() <= 1 and pose.landmarks[:, PRESENCE].min() >= 0
    # the standing athlete is tall in a portrait frame: shoulder-to-ankle spans much of the height
    spans = [found[i].xy(f"{_side(found[i])}_ankle")[1] - found[i].xy(f"{_side(found[i])}_shoulder")[1] for i in range(0, len(found), 10)]
    assert min(spans) > 0.3 * found[0].image_size[1]


@pytest.mark.parametrize(
    "clip",
    [
        "bichraix_deadlift_side_good016.mp4",
        "formfit_deadlift_side_good.mp4",
        "rohanx01_bw_squat_side_multi.mp4",
        "crossfit_bb_deadlift_side_female_annot.mp4",
        "kmoir_squat_side_oblique_1rep.mp4",
    ],
)
def test_presence_high_and_detector_rarely_runs(clip_poses, clip):
    poses = clip_poses(clip)
    presence = np.array([p.presence for p in poses])
    detector_fraction = sum(p.detector_ran for p in poses) / len(poses)
    assert np.mean(presence > 0.5) > 0.9, f"person lost on {np.mean(presence <= 0.5):.0%} of frames"
    assert detector_fraction < 0.2, f"detector ran on {detector_fraction:.0%} of frames"


def test_pose_record_round_trips_as_plain_data(clip_poses):
    from device.pose.landmarks import Pose

    pose = next(p for p in clip_poses(STANDING_CLIP) if p.found)
    data = pose.to_dict()
    assert set(data["landmarks"]) == set(LANDMARK_NAMES)
    back = Pose.from_dict(data)
    assert back.landmarks[:, :2] == pytest.approx(pose.landmarks[:, :2], abs=0.01)
    assert back.presence == pytest.approx(pose.presence, abs=1e-4)
    assert pose.world is not None and back.world is not None
    assert back.world == pytest.approx(pose.world, abs=1e-4)  # kept to a tenth of a millimetre


def test_the_model_gives_world_landmarks_of_a_body_a_person_could_have(clip_poses):
    """The landmark model's world output (metres, from the hips' centre): on a standing athlete the
    hips' centre is the origin, the legs are a leg's length, the head is above the hips (y down) and
    the legs straight in 3D."""
    from device.analysis.kinematics import world_bends

    pose = next(p for p in clip_poses(STANDING_CLIP) if p.found)
    world = pose.world
    assert world is not None and world.shape == (33, 3) and np.all(np.isfinite(world))
    index = {name: i for i, name in enumerate(LANDMARK_NAMES)}
    hips = (world[index["left_hip"]] + world[index["right_hip"]]) / 2
    assert np.linalg.norm(hips) < 0.05
    for side in ("left", "right"):
        leg = (np.linalg.norm(world[index[f"{side}_knee"]] - world[index[f"{side}_hip"]])
               + np.linalg.norm(world[index[f"{side}_ankle"]] - world[index[f"{side}_knee"]]))
        assert 0.6 < leg < 1.1
    assert world[index["nose"], 1] < -0.4  # the head well above the hips
    bends = world_bends(world)
    assert bends["knee_flexion_3d_deg"] < 25 and bends["trunk_3d_deg"] < 25


# --- the person mask: the back's outline; frames too dark to read --------------------------------


def _frame(clips_dir, name: str, at_s: float) -> tuple[np.ndarray, float]:
    from device.capture.file import VideoFileSource

    with VideoFileSource(clips_dir / name) as source:
        for frame in source:
            if frame.timestamp >= at_s:
                return frame.image, frame.timestamp
    raise AssertionError(f"{name} ends before {at_s} s")


def test_the_full_model_gives_the_torso_outline_and_the_back_lies_away_from_the_face(clips_dir, engine_factory,
                                                                                    quantized_models_dir):
    """tby_kb_deadlift_side_correct faces image left; bent over at 13.2 s its back is on the side of
    the hips -> shoulders line away from the face (side 1 for an athlete facing left), as deep as a
    back is; a variant built without the mask gives no outline."""
    from device.analysis.kinematics import AngleTracker
    from device.analysis.profiles import load_profile

    engine = engine_factory("float16")
    assert engine.landmarks.segments
    tracker = AngleTracker(load_profile("hinge").kinematics)
    from device.capture.file import VideoFileSource
    from device.pose.engine import iter_poses

    with VideoFileSource(clips_dir / "tby_kb_deadlift_side_correct_10reps.mp4") as source:
        for _, pose in iter_poses(engine, source):
            angles = tracker.update(pose)
            if pose.timestamp >= 13.2:
                break
    assert angles.facing == -1 and angles.trunk_deg > 45
    outline = pose.torso_outline
    assert outline is not None and outline.shape == (21, 2, 2)
    hips = pose.landmarks[[23, 24], :2].mean(axis=0)
    shoulders = pose.landmarks[[11, 12], :2].mean(axis=0)
    chord = shoulders - hips
    left = np.array([chord[1], -chord[0]]) / np.hypot(*chord)
    mid = hips + 0.5 * chord
    back = outline[10, 1]  # facing left: side 1 is the back
    # Half the trunk's depth behind the joints' line across the middle (the chest side may run on
    # into the hanging arms and legs, past reach).
    depth = -((back - mid) @ left) / np.hypot(*chord)
    assert 0.15 < depth < 0.5
    nomask = engine_factory("float16_nomask")
    image, timestamp = _frame(clips_dir, "tby_kb_deadlift_side_correct_10reps.mp4", 13.2)
    assert not nomask.landmarks.segments and nomask.process(image, timestamp).torso_outline is None


def test_a_nearly_black_frame_gives_no_pose_but_a_dark_gym_does(clips_dir, engine_factory):
    """A fade to black leaves a frame the model still reads landmarks on, confidently, and wrongly:
    it gives no pose. The same frame as a dark gym films it (a quarter of the light, same scene) is
    still read."""
    from device.pose.engine import MIN_FRAME_CONTRAST, frame_contrast

    image, timestamp = _frame(clips_dir, "formfit_deadlift_side_good.mp4", 2.0)
    engine = engine_factory("float16")
    assert engine.process(image, timestamp).found
    dim = (image.astype(np.float32) * 0.25).astype(np.uint8)
    engine.reset()
    assert frame_contrast(dim) > MIN_FRAME_CONTRAST and engine.process(dim, timestamp).found
    fade = (image.astype(np.float32) * 0.03).astype(np.uint8)
    engine.reset()
    assert frame_contrast(fade) < MIN_FRAME_CONTRAST
    assert not engine.process(fade, timestamp).found


def test_the_live_path_feeds_the_model_the_very_crop_and_decodes_the_same_landmarks(clips_dir, engine_factory):
    """The engine warps the ROI straight into the model's input and reads only the parts of the
    outputs it uses; the tooling hands a crop it holds. Both must give the model the same input and
    the same landmarks, mask and outline, to the bit: poses cached by one are compared with the other's."""
    engine = engine_factory("float16")
    image, timestamp = _frame(clips_dir, "formfit_deadlift_side_good.mp4", 2.0)
    pose = engine.process(image, timestamp)
    assert pose.found and pose.roi is not None
    landmarks = engine.landmarks
    crop = landmarks.crop(image, pose.roi)
    landmarks.load(image, pose.roi)
    landmarks.run()
    live_points, live_presence = landmarks.read()
    live_outline = landmarks.torso_outline(live_points)
    held_points, held_presence = landmarks.infer(crop)
    held_outline = landmarks.torso_outline(held_points)
    assert np.array_equal(live_points, held_points) and live_presence == held_presence
    assert np.array_equal(live_outline, held_outline, equal_nan=True)
    assert np.isfinite(live_outline).any()  # a real outline, not two empty ones


def test_the_outline_left_to_the_worker_is_the_outline_the_engine_reads_at_once(clips_dir, engine_factory):
    """The live loop leaves each pose's torso outline to its worker (process_deferred), which reads it
    while the model runs on the next frame: from a copy of that frame's mask, so it is the same
    outline to the bit, even after the next frame's inference has overwritten the model's buffers."""
    at_once, deferred = engine_factory("float16"), engine_factory("float16")
    frames = [_frame(clips_dir, "formfit_deadlift_side_good.mp4", t) for t in (2.0, 2.2)]
    first = at_once.process(*frames[0])
    pose, finish = deferred.process_deferred(*frames[0])
    assert pose.torso_outline is None  # left to finish()
    deferred.process(*frames[1])  # the next frame overwrites the mask buffer
    finish()
    assert pose.torso_outline is not None and np.isfinite(pose.torso_outline).any()
    assert np.array_equal(pose.torso_outline, first.torso_outline, equal_nan=True)
    assert np.array_equal(pose.landmarks, first.landmarks, equal_nan=True)


def test_the_engine_says_once_per_frame_when_its_model_is_about_to_run(clips_dir, engine_factory):
    """The live loop hands the last pose to its worker when the engine is about to run a model on
    the next frame (`before_model`): once per frame, though a first frame runs two models (the
    detector, then the landmark model), and never for a frame too dark to look at."""
    engine = engine_factory("float16")
    calls: list[float] = []
    image, t = _frame(clips_dir, "formfit_deadlift_side_good.mp4", 2.0)
    pose, _ = engine.process_deferred(image, t, before_model=lambda: calls.append(t))
    assert pose.detector_ran and pose.found and calls == [t]
    pose, _ = engine.process_deferred(image, t + 0.1, before_model=lambda: calls.append(t + 0.1))
    assert not pose.detector_ran and calls == [t, t + 0.1]
    dark = np.zeros_like(image)
    pose, _ = engine.process_deferred(dark, t + 0.2, before_model=lambda: calls.append(t + 0.2))
    assert not pose.found and calls == [t, t + 0.1]


def test_heatmap_refinement_reads_each_window_as_the_whole_heatmap_would():
    """Only the windows around the points are turned into confidences: the result must be what the
    confidence of the whole heatmap gives, point for point, including a point whose window is not
    confident (it keeps its regressed place) and one off the heatmap."""
    from device.pose.engine import LANDMARK_SIZE, refine_from_heatmap, sigmoid

    rng = np.random.default_rng(3)
    heatmap = rng.normal(-4.0, 1.0, (64, 64, 39)).astype(np.float32)
    points = rng.uniform(8, LANDMARK_SIZE - 8, (39, 5))
    points[5, :2] = [-20.0, 30.0]  # off the heatmap
    points[9, :2] = [1.0, 100.0]  # windows the heatmap's edges cut: left, bottom-right corner
    points[11, :2] = [LANDMARK_SIZE - 1.0, LANDMARK_SIZE - 1.0]
    for i in range(39):
        if i in (5, 7):  # 7: nothing confident near it
            continue
        col, row = int(points[i, 0] / LANDMARK_SIZE * 64), int(points[i, 1] / LANDMARK_SIZE * 64)
        heatmap[max(0, row - 1):row + 2, max(0, col - 2):col + 1, i] = 3.0  # a blob up and left of the point
    conf = sigmoid(heatmap.astype(np.float64))
    expected = points.copy()
    for i in range(39):
        col, row = int(points[i, 0] / LANDMARK_SIZE * 64), int(points[i, 1] / LANDMARK_SIZE * 64)
        if not (0 <= col < 64 and 0 <= row < 64):
            continue
        r0, r1, c0, c1 = max(0, row - 3), min(64, row + 4), max(0, col - 3), min(64, col + 4)
        window = conf[r0:r1, c0:c1, i]
        if window.max() < 0.5:
            continue
        rows, cols = np.mgrid[r0:r1, c0:c1]
        expected[i, 0] = (cols * window).sum() / window.sum() / 64 * LANDMARK_SIZE
        expected[i, 1] = (rows * window).sum() / window.sum() / 64 * LANDMARK_SIZE
    refined = points.copy()
    refine_from_heatmap(refined, heatmap)
    assert np.array_equal(refined, expected)
    assert np.array_equal(refined[[5, 7]], points[[5, 7]])  # untouched where the heatmap says nothing
    assert not np.array_equal(refined[0, :2], points[0, :2])  # and moved where it does
    assert not np.array_equal(refined[[9, 11], :2], points[[9, 11], :2])  # at the edges too
