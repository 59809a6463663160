"""Evaluation: label parsing, scoring, the pose cache, `station evaluate` end to end, and the analysis on
the real shared clips (our pose model) and on another model's keypoints of the same clips."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.analysis.scoring import LabelsError, evaluate, read_labels
from device.commands.evaluate import PoseCache
from support.coco17 import coco17_poses
from device.analysis.vocabulary import Fault
from device.analysis.profiles import load_profile
from support.synthetic import Motion

LABEL_HEADER = "clip,movement,view,reps,faults,source_labels,notes\n"


def labels_file(tmp_path: Path, rows: list[str], clips: list[str]) -> Path:
    for clip in clips:
        (tmp_path / clip).write_bytes(b"")
    path = tmp_path / "labels.csv"
    path.write_text(LABEL_HEADER + "".join(r + "\n" for r in rows))
    return path


@pytest.mark.parametrize("row,problem", [
    ("a.mp4,lunge,side,1,,,", "movement: must be hinge or squat (got 'lunge')"),
    ("a.mp4,hinge,side,one,,,", "reps: not a whole number (got 'one')"),
    ("a.mp4,hinge,side,1,rounded_back;bent_elbows,,", "faults: unknown fault 'bent_elbows'"),
    ("missing.mp4,hinge,side,1,,,", "clip: "),
    ("a.mp4,hinge,sideways,1,,,", "view: must be one of side, oblique, front (got 'sideways')"),
])
def test_bad_labels_name_the_row_and_column(tmp_path, row, problem):
    path = labels_file(tmp_path, [row], ["a.mp4"])
    with pytest.raises(LabelsError) as err:
        read_labels(path)
    assert f"{path}:2: {problem}" in str(err.value)


def test_missing_labels_file(tmp_path):
    with pytest.raises(LabelsError, match="does not exist"):
        read_labels(tmp_path / "nope.csv")


def test_scores_on_synthetic_clips(tmp_path):
    """Three made-up clips with known truth, so every number of the report can be checked by hand."""
    motions = {
        "good.mp4": Motion().stand(1).hinge(lower_s=2.0).hinge(lower_s=2.0).stand(1),
        "squat.mp4": Motion().stand(1).squat(lower_s=2.0).stand(1),
        "head.mp4": Motion().stand(1).hinge(head=-65, lower_s=2.0).stand(1),
    }
    rows = [
        "good.mp4,hinge,side,2,,,",
        "squat.mp4,squat,side,1,squatting_the_hinge,,",
        "head.mp4,hinge,side,2,head_not_neutral;rounded_back,,",  # wrong on purpose: 2 reps, rounding
    ]
    labels = read_labels(labels_file(tmp_path, rows, list(motions)))
    result = evaluate(labels, lambda path: motions[path.name].render(), load_profile("hinge"))
    by_clip = {r["clip"]: r for r in result.clip_rows()}
    assert by_clip["good.mp4"]["reps_counted"] == 2 and by_clip["good.mp4"]["reps_exact"]
    assert by_clip["squat.mp4"]["movement"] == "squat" and by_clip["squat.mp4"]["movement_right"]
    assert not by_clip["head.mp4"]["reps_exact"] and by_clip["head.mp4"]["missed"] == "rounded_back"
    faults = {r["fault"]: r for r in result.fault_rows()}
    assert faults["head_not_neutral"] == {"fault": "head_not_neutral", "labelled": 1, "raised": 1, "tp": 1, "fp": 0,
                                          "fn": 0, "precision": 1.0, "recall": 1.0}
    assert faults["rounded_back"]["recall"] == 0.0 and faults["rounded_back"]["precision"] is None
    assert faults["too_fast"]["labelled"] == 0 and faults["too_fast"]["recall"] is None
    totals = result.totals()
    assert totals["clips"] == 3 and totals["clips_reps_exact"] == 2 and totals["clips_movement_right"] == 3
    assert totals["reps_true"] == 5 and totals["reps_counted"] == 4
    assert 0 < totals["analysis_ms_per_frame"] < 50


def test_pose_cache_round_trip(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not really a video")
    poses = Motion().stand(0.5).hinge().render()
    cache = PoseCache(tmp_path / "cache", "float16-test")
    assert cache.load(clip) is None
    cache.save(clip, poses)
    back = cache.load(clip)
    assert len(back) == len(poses)
    np.testing.assert_allclose(back[10].landmarks[:, :2], poses[10].landmarks[:, :2], atol=0.01)
    clip.write_bytes(b"another video")  # different content, different key
    assert cache.load(clip) is None


# --- the real shared clips ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_evaluation(clips_dir, clip_poses):
    labels = read_labels(clips_dir / "labels.csv")
    return evaluate(labels, lambda path: list(clip_poses(path.name)), load_profile("hinge"))


# Misses on the clips added to ../shared after the analysis was written (open in issue 11). Listed
# exactly, so that a new miss fails these tests and so does a fixed one (then strike it from here).
OPEN_MISSES = {
    "count": {"back_squat_side_plate_occluded_1rep_b.mp4"},  # plate hides the body; no rep counted
    "squat_rep_not_flagged": {"bw_squat_side_src_incorrect_b.mp4"},  # 1.3 s squat: too_fast, not squatting
}


def counted_right(result) -> bool:
    """Side views must be counted exactly; an oblique or front view may instead not be counted at all
    (the station asks the athlete to turn), but never partly."""
    return result.reps_exact or (result.label.view != "side" and not result.reps)


def verdict_right(result) -> bool:
    return result.movement_right or (result.label.view != "side" and not result.reps)


def test_reps_are_exact_on_every_shared_side_clip_and_never_partial_elsewhere(shared_evaluation):
    wrong = {r.label.clip for r in shared_evaluation.results if not counted_right(r)}
    assert wrong == OPEN_MISSES["count"]


def test_hinge_or_squat_is_right_on_every_counted_shared_clip(shared_evaluation):
    wrong = {r.label.clip for r in shared_evaluation.results if not verdict_right(r)}
    assert wrong == OPEN_MISSES["count"]  # the uncounted side clip has no verdict


def test_counts_and_verdicts_hold_at_a_pi_frame_rate(clips_dir, clip_poses):
    """Every third frame of the clips (8-20 fps): about what the pose model manages on a Pi."""
    labels = read_labels(clips_dir / "labels.csv")
    result = evaluate(labels, lambda path: list(clip_poses(path.name))[::3], load_profile("hinge"))
    assert {r.label.clip for r in result.results if not (counted_right(r) and verdict_right(r))} == OPEN_MISSES["count"]


def test_every_squat_rep_is_squatting_the_hinge(shared_evaluation):
    squats = [r for r in shared_evaluation.results if r.label.movement == "squat" and r.reps]
    assert len(squats) >= 7
    unflagged = {r.label.clip for r in squats for rep in r.reps if "squatting_the_hinge" not in rep.fault_names}
    assert unflagged == OPEN_MISSES["squat_rep_not_flagged"]


def test_good_lifts_stay_quiet(shared_evaluation):
    good = [r for r in shared_evaluation.results if not r.label.faults]
    assert len(good) >= 5
    assert {r.label.clip: sorted(f.value for f in r.faults) for r in good if r.faults} == {}


def test_rep_records_from_real_clips_are_complete(shared_evaluation):
    for result in shared_evaluation.results:
        for rep in result.reps:
            assert rep.start_time <= rep.bottom_time < rep.end_time
            assert 45 <= rep.peak_hip_flexion_deg <= 170
            assert 2 <= len(rep.trace) <= 60 and rep.side in ("left", "right")
            assert math.isnan(rep.lowering_s) or 0 < rep.lowering_s < 15
            json.dumps(rep.to_dict(), allow_nan=True)


KEYPOINT_CLIPS = {
    "bad007": "bichraix_deadlift_side_bad007_rounded_back.mp4",
    "bad010": "bichraix_deadlift_side_bad010_squatting_hips_low.mp4",
    "bad011": "bichraix_deadlift_side_bad011_rounding_back.mp4",
    "bad013": "bichraix_deadlift_side_bad013_hyperextend_lockout.mp4",
    "good014": "bichraix_deadlift_side_good014.mp4",
    "good016": "bichraix_deadlift_side_good016.mp4",
    "good018": "bichraix_deadlift_side_good018_labeled_correct.mp4",
}


@pytest.mark.parametrize("key", list(KEYPOINT_CLIPS))
def test_another_models_keypoints_give_the_same_count_and_verdict(clips_dir, clip_labels, key):
    """YOLO-pose COCO-17 keypoints of the same videos: no visibility, no feet, other errors."""
    clip = KEYPOINT_CLIPS[key]
    csv_path = clips_dir / "keypoints" / f"bichraix_{key}_joints_coco17.csv"
    video = cv2.VideoCapture(str(clips_dir / clip))
    fps, size = video.get(cv2.CAP_PROP_FPS), (int(video.get(3)), int(video.get(4)))
    video.release()
    labels = [label for label in read_labels(clips_dir / "labels.csv") if label.clip == clip]
    result = evaluate(labels, lambda _: coco17_poses(csv_path, fps, size), load_profile("hinge"))
    (clip_result,) = result.results
    assert len(clip_result.reps) == int(clip_labels[clip]["reps"])
    assert clip_result.movement == clip_labels[clip]["movement"]


# --- the command --------------------------------------------------------------------------------


def station(*args, env=None):
    return subprocess.run([sys.executable, "-m", "device", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_station_evaluate_end_to_end(tmp_path, clips_dir, models_dir):
    """Two short real clips through the real pose model, then again from the pose cache."""
    work = tmp_path / "clips"
    work.mkdir()
    rows = []
    for line in (clips_dir / "labels.csv").read_text().splitlines()[1:]:
        if line.startswith("jeffchen_"):
            clip = line.split(",")[0]
            (work / clip).symlink_to(clips_dir / clip)
            rows.append(line)
    (work / "labels.csv").write_text(LABEL_HEADER + "\n".join(rows) + "\n")
    env = {"HINGE_DATA_DIR": str(tmp_path / "data")}
    out = tmp_path / "eval.json"
    args = ("evaluate", work / "labels.csv", "--json", out, "--models-dir", models_dir, "--variant", "float16")
    first = station(*args, env=env)
    assert first.returncode == 0, first.stderr
    for name in ("reps_counted", "movement_right", "precision", "recall", "analysis_ms_per_frame"):
        assert name in first.stdout
    report = json.loads(out.read_text())
    assert [c["reps_exact"] for c in report["clips"]] == [True, True]
    assert report["total"]["clips_movement_right"] == 2
    assert {f["fault"] for f in report["faults"]} == {f.value for f in Fault}
    assert set(report["clips"][0]) <= set(first.stdout.split())  # printed and JSON names agree
    assert len(list((tmp_path / "data" / "cache" / "poses").glob("*.jsonl"))) == 2
    again = station(*args, env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(out.read_text())["clips"] == report["clips"]


def test_station_evaluate_without_labels_is_a_clear_error(tmp_path):
    proc = station("evaluate", tmp_path / "none.csv")
    assert proc.returncode != 0
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_station_evaluate_with_an_unknown_profile_is_a_clear_error(tmp_path, clips_dir):
    proc = station("evaluate", clips_dir / "labels.csv", "--profile", "zercher_squat")
    assert proc.returncode != 0
    assert "zercher_squat" in proc.stderr and "Traceback" not in proc.stderr
