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

from device.analysis.scoring import LabelsError, compare_runs, drill_profiles, evaluate, read_labels
from support.shared_clips import KNOWN_FALSE_ALARMS
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


def test_a_binary_labels_file_is_a_clear_error(tmp_path):
    junk = tmp_path / "labels.csv"
    junk.write_bytes(bytes(range(128, 256)) * 20)
    with pytest.raises(LabelsError, match="not a text CSV file"):
        read_labels(junk)
    proc = station("evaluate", junk)
    assert proc.returncode != 0 and "not a text CSV file" in proc.stderr and "Traceback" not in proc.stderr


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


def test_pose_cache_keys_the_perturbation(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"video")
    poses = Motion().stand(0.5).hinge().render()
    cache = PoseCache(tmp_path / "cache", "float16-test")
    cache.save(clip, poses[::3], "fps_10")
    assert cache.path(clip, "fps_10") != cache.path(clip) != cache.path(clip, "mirror")
    assert cache.load(clip) is None and cache.load(clip, "mirror") is None
    assert len(cache.load(clip, "fps_10")) == len(poses[::3])


# --- per drill, per source, perturbed ------------------------------------------------------------

DRILL_HEADER = "clip,movement,view,reps,faults,source_labels,notes,drill\n"


def drill_labels(tmp_path: Path, rows: list[str], header: str = DRILL_HEADER) -> Path:
    for row in rows:
        (tmp_path / row.split(",")[0]).write_bytes(b"")
    path = tmp_path / "labels.csv"
    path.write_text(header + "".join(r + "\n" for r in rows))
    return path


SHALLOW = Motion().stand(1).hinge(depth=55, lower_s=2.0).stand(1)  # a rep for hinge (50), not for an RDL (60)


def test_each_clip_is_judged_under_its_drill(tmp_path):
    rows = ["shallow_hinge.mp4,hinge,side,1,,,,hinge",
            "shallow_rdl.mp4,hinge,side,1,,,,romanian_deadlift",
            "shallow_none.mp4,hinge,side,1,,,,"]  # no drill named: the default profile
    labels = read_labels(drill_labels(tmp_path, rows))
    assert [label.drill for label in labels] == ["hinge", "romanian_deadlift", ""]
    poses = lambda _: SHALLOW.render()  # noqa: E731

    per_drill = evaluate(labels, poses, drill_profiles(labels, "hinge"))
    by_clip = {r["clip"]: r for r in per_drill.clip_rows()}
    assert {c: (r["profile"], r["reps_counted"]) for c, r in by_clip.items()} == {
        "shallow_hinge.mp4": ("hinge", 1), "shallow_rdl.mp4": ("romanian_deadlift", 0), "shallow_none.mp4": ("hinge", 1)}
    totals = per_drill.totals()
    assert totals["profile"] == "per drill" and totals["profiles"] == {"hinge": 2, "romanian_deadlift": 1}
    assert totals["clips_reps_exact"] == 2

    forced = evaluate(labels, poses, load_profile("hinge"))  # --profile hinge: one profile for all
    assert [r["profile"] for r in forced.clip_rows()] == ["hinge"] * 3
    assert forced.totals()["clips_reps_exact"] == 3 and forced.totals()["profile"] == "hinge"
    # another default for rows without a drill
    assert evaluate(labels, poses, drill_profiles(labels, "romanian_deadlift")).clip_rows()[2]["profile"] == \
        "romanian_deadlift"


def test_a_drill_without_a_profile_names_the_clip(tmp_path):
    labels = read_labels(drill_labels(tmp_path, ["a.mp4,hinge,side,1,,,,zercher_squat"]))
    with pytest.raises(LabelsError, match="clip a.mp4: drill: unknown drill profile 'zercher_squat'"):
        drill_profiles(labels, "hinge")


def test_by_source_groups_by_the_source_column_or_the_first_token_of_the_name(tmp_path):
    header = "clip,movement,view,reps,faults,source_labels,notes,drill,source\n"
    rows = ["alpha_good.mp4,hinge,side,1,,,,hinge,",
            "alpha_head.mp4,hinge,side,1,head_not_neutral,,,hinge,",
            "alpha_squat.mp4,squat,side,1,squatting_the_hinge;rounded_back,,,hinge,",
            "beta_head.mp4,hinge,side,1,,,,hinge,",  # labelled good: the head fault is a false alarm
            "gamma.mp4,hinge,side,2,,,,hinge,",  # no underscore: the whole stem
            "x_renamed.mp4,hinge,side,1,,,,hinge,beta"]  # the source column wins over the name
    motions = {"good": Motion().stand(1).hinge(lower_s=2.0).stand(1),
               "head": Motion().stand(1).hinge(head=-65, lower_s=2.0).stand(1),
               "squat": Motion().stand(1).squat(lower_s=2.0).stand(1)}
    motions["gamma"] = motions["renamed"] = motions["good"]
    labels = read_labels(drill_labels(tmp_path, rows, header))
    result = evaluate(labels, lambda path: motions[path.stem.split("_")[-1]].render(), load_profile("hinge"))
    by_source = {row["source"]: row for row in result.by_source()}
    assert list(by_source) == ["alpha", "beta", "gamma"]
    assert {k: by_source["alpha"][k] for k in ("clips", "clips_reps_exact", "clips_movement_right", "good_clips",
                                               "false_alarm_clips", "tp", "fp", "fn")} == {
        "clips": 3, "clips_reps_exact": 3, "clips_movement_right": 3, "good_clips": 1, "false_alarm_clips": 0,
        "tp": 2, "fp": 0, "fn": 1}
    assert by_source["alpha"]["faults"] == {"squatting_the_hinge": {"tp": 1, "fp": 0, "fn": 0},
                                            "rounded_back": {"tp": 0, "fp": 0, "fn": 1},
                                            "head_not_neutral": {"tp": 1, "fp": 0, "fn": 0}}
    assert by_source["beta"]["clips"] == 2 and by_source["beta"]["false_alarm_clips"] == 1
    assert by_source["beta"]["faults"] == {"head_not_neutral": {"tp": 0, "fp": 1, "fn": 0}}
    assert by_source["gamma"]["clips_reps_exact"] == 0 and by_source["gamma"]["false_alarm_clips"] == 0
    # the groups add up to the totals
    assert sum(r["clips_reps_exact"] for r in by_source.values()) == result.totals()["clips_reps_exact"]
    assert sum(r["fp"] for r in by_source.values()) == sum(f["fp"] for f in result.fault_rows())


def test_a_clip_that_is_not_good_form_without_a_fault_name_counts_neither_way(tmp_path):
    """The shared set's "hips rise first" pulls are not good form, yet no station fault names what is
    wrong: a fault raised there is neither a false alarm nor a hit, and the clip is not a good clip.
    Marked by a `faults_scored` column ("no") or, without one, by its notes saying so."""
    header = "clip,movement,view,reps,faults,source_labels,notes,drill,faults_scored\n"
    rows = ["a_head.mp4,hinge,side,1,,,NOT a good-form clip: hips rise first,hinge,",
            "b_head.mp4,hinge,side,1,,,,hinge,no",
            "c_head.mp4,hinge,side,1,,,,hinge,",
            "d_head.mp4,hinge,side,1,head_not_neutral,,,hinge,"]
    labels = read_labels(drill_labels(tmp_path, rows, header))
    assert [label.faults_scored for label in labels] == [False, False, True, True]
    head = Motion().stand(1).hinge(head=-65, lower_s=2.0).stand(1)
    result = evaluate(labels, lambda _: head.render(), load_profile("hinge"))
    (row,) = [r for r in result.fault_rows() if r["fault"] == "head_not_neutral"]
    assert (row["tp"], row["fp"], row["fn"]) == (1, 1, 0)  # c is the one false alarm; a and b count neither way
    (source,) = [r for r in result.by_source() if r["source"] == "a"]
    assert source["good_clips"] == 0 and source["false_alarm_clips"] == 0
    assert [len(r.reps) for r in result.results] == [1, 1, 1, 1]  # reps are scored on every clip


def test_compare_runs_counts_the_clips_that_keep_their_reps_and_faults(tmp_path):
    rows = ["a_two.mp4,hinge,side,2,,,,hinge", "b_head.mp4,hinge,side,1,head_not_neutral,,,hinge",
            "c_one.mp4,hinge,side,1,,,,hinge"]
    labels = read_labels(drill_labels(tmp_path, rows))
    base_motions = {"a_two.mp4": Motion().stand(1).hinge(lower_s=2.0).hinge(lower_s=2.0).stand(1),
                    "b_head.mp4": Motion().stand(1).hinge(head=-65, lower_s=2.0).stand(1),
                    "c_one.mp4": Motion().stand(1).hinge(lower_s=2.0).stand(1)}
    other_motions = {**base_motions, "a_two.mp4": Motion().stand(1).hinge(lower_s=2.0).stand(1),  # a rep lost
                     "b_head.mp4": Motion().stand(1).hinge(lower_s=2.0).stand(1)}  # the fault lost
    profile = load_profile("hinge")
    base = evaluate(labels, lambda path: base_motions[path.name].render(), profile)
    other = evaluate(labels, lambda path: other_motions[path.name].render(fps=10), profile)
    row = compare_runs("fps_10", base, other)
    assert {k: row[k] for k in ("perturbation", "clips", "same_reps", "same_faults", "unchanged", "clips_reps_exact")} \
        == {"perturbation": "fps_10", "clips": 3, "same_reps": 2, "same_faults": 2, "unchanged": 1, "clips_reps_exact": 2}
    changed = {c["clip"]: c for c in row["changed"]}
    assert set(changed) == {"a_two.mp4", "b_head.mp4"}
    assert (changed["a_two.mp4"]["reps_before"], changed["a_two.mp4"]["reps_after"]) == (2, 1)
    assert (changed["b_head.mp4"]["faults_before"], changed["b_head.mp4"]["faults_after"]) == ("head_not_neutral", "-")
    assert changed["b_head.mp4"]["frames_after"] < changed["b_head.mp4"]["frames_before"] / 2
    assert compare_runs("same", base, base)["unchanged"] == 3


def test_station_evaluate_prints_and_writes_drills_sources_and_perturbations(tmp_path, monkeypatch, capsys):
    """The command's tables and JSON, with the pose engine swapped for synthetic motions (the real engine
    on a real clip is in tests/test_perturb.py): per-drill profile column, --by-source, --perturb."""
    import device.commands.evaluate as evaluate_command
    from device.commands.cli import build_parser
    from device.commands.perturb import PERTURBATIONS
    from device.config import load_settings

    rows = ["one_shallow.mp4,hinge,side,1,,,,hinge", "one_rdl.mp4,hinge,side,1,,,,romanian_deadlift",
            "two_head.mp4,hinge,side,1,head_not_neutral,,,deadlift"]
    motions = {"one_shallow.mp4": SHALLOW, "one_rdl.mp4": Motion().stand(1).hinge(depth=80, lower_s=2.0).stand(1),
               "two_head.mp4": Motion().stand(1).hinge(head=-65, lower_s=2.0).stand(1)}
    asked = []

    def fake_engine_poses(settings, cache, perturbation=None, engine=None):
        asked.append(perturbation.name if perturbation else None)

        def poses(path):
            rendered = motions[path.name].render(fps=perturbation.fps if perturbation and perturbation.fps else 30)
            if perturbation is not None and perturbation.name == "mirror" and path.name == "two_head.mp4":
                return Motion().stand(1).hinge(lower_s=2.0).stand(1).render()  # as if mirroring lost the fault
            return rendered
        return poses

    monkeypatch.setattr(evaluate_command, "engine_poses", fake_engine_poses)
    out = tmp_path / "eval.json"
    args = build_parser().parse_args(["evaluate", str(drill_labels(tmp_path, rows)), "--by-source", "--perturb",
                                      "--no-cache", "--json", str(out)])
    assert evaluate_command.command(args, load_settings(None, {"data_dir": tmp_path / "data"})) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert asked == [None] + [p.name for p in PERTURBATIONS]

    assert [(c["clip"], c["profile"], c["reps_counted"]) for c in report["clips"]] == [
        ("one_shallow.mp4", "hinge", 1), ("one_rdl.mp4", "romanian_deadlift", 1), ("two_head.mp4", "deadlift", 1)]
    assert report["total"]["profiles"] == {"deadlift": 1, "hinge": 1, "romanian_deadlift": 1}
    assert [(r["source"], r["clips"]) for r in report["by_source"]] == [("one", 2), ("two", 1)]
    perturbed = {r["perturbation"]: r for r in report["perturbations"]}
    assert list(perturbed) == [p.name for p in PERTURBATIONS]
    assert all(r["clips"] == 3 for r in perturbed.values())
    assert perturbed["scale_640"]["unchanged"] == 3 and perturbed["scale_640"]["changed"] == []
    assert perturbed["mirror"]["unchanged"] == 2
    assert perturbed["mirror"]["changed"][0]["clip"] == "two_head.mp4"
    mirrored = perturbed["mirror"]["changed"][0]
    assert "head_not_neutral" in mirrored["faults_before"] and "head_not_neutral" not in mirrored["faults_after"]
    assert perturbed["fps_10"]["frames"] < perturbed["scale_640"]["frames"] / 2

    words = set(printed.split())
    for name in ("profile", "source", "clips_reps_exact", "clips_movement_right", "false_alarm_clips", "good_clips",
                 "perturbation", "same_reps", "same_faults", "unchanged", "reps_before", "reps_after",
                 "faults_before", "faults_after", "romanian_deadlift", "shift_2px"):
        assert name in words, name
    assert set(report["by_source"][0]) <= words and set(report["perturbations"][0]) - {"changed"} <= words
    assert set(mirrored) <= words


# --- the real shared clips ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_evaluation(clips_dir, clip_poses):
    labels = read_labels(clips_dir / "labels.csv")
    clip_poses.prefetch(label.clip for label in labels)
    return evaluate(labels, lambda path: list(clip_poses(path.name)), load_profile("hinge"))


# Where the station and a label differ, each listed exactly (so a new difference fails, and so does a
# fixed one: then strike it from here), with why (ANALYSIS.md has the values).
KNOWN_DIFFERENCES: dict[str, dict[str, str]] = {
    # clip -> why its count differs from the label
    "count": {
        "kmoir_squat_side_oblique_1rep.mp4": "the clip stops half way up (hips at 64 of 125 degrees): by the labels' "
                                             "own definition a rep that never reaches standing is not counted",
    },
    # clip -> why its hinge/squat verdict differs from the label (only judged reps have a verdict)
    "verdict": {
        "tby_kb_deadlift_side_kneedominant_10reps.mp4": "the wrists stay above the knees at the bottom, the trunk at "
                                                         "18-26 degrees and the thighs at 73-78: the shape of a squat; the "
                                                         "label calls it a badly done hinge (squatting is raised either way)",
    },
}
def counted_right(result) -> bool:
    """Side views must be counted exactly; an oblique or front view may instead not be counted at all
    (the station asks the athlete to turn), but never partly."""
    return result.reps_exact or (result.label.view != "side" and not result.reps)


def verdict_right(result) -> bool:
    """The hinge/squat verdict of the judged reps matches the label; a rep not judged (the camera not
    side-on) has no verdict."""
    judged = [rep for rep in result.reps if rep.judged]
    return not judged or all(rep.movement == result.label.movement for rep in judged)


def test_reps_are_exact_on_every_shared_side_clip_and_never_partial_elsewhere(shared_evaluation):
    wrong = {r.label.clip for r in shared_evaluation.results if not counted_right(r)}
    assert wrong == set(KNOWN_DIFFERENCES["count"])


def test_hinge_or_squat_is_right_on_every_judged_shared_clip(shared_evaluation):
    wrong = {r.label.clip for r in shared_evaluation.results if not verdict_right(r)}
    assert wrong == set(KNOWN_DIFFERENCES["verdict"])


def test_counts_and_verdicts_hold_at_a_pi_frame_rate(clips_dir, clip_poses):
    """Every third frame of the clips (8-20 fps): about what the pose model manages on a Pi."""
    labels = read_labels(clips_dir / "labels.csv")
    result = evaluate(labels, lambda path: list(clip_poses(path.name))[::3], load_profile("hinge"))
    wrong = {r.label.clip for r in result.results if not (counted_right(r) and verdict_right(r))}
    assert wrong == set(KNOWN_DIFFERENCES["count"]) | set(KNOWN_DIFFERENCES["verdict"])


def test_every_squat_rep_is_squatting_the_hinge(shared_evaluation):
    squats = [r for r in shared_evaluation.results if r.label.movement == "squat" and r.reps]
    assert len(squats) >= 7
    unflagged = {r.label.clip for r in squats for rep in r.reps if rep.judged and "squatting_the_hinge" not in rep.fault_names}
    assert unflagged == set()


def test_good_lifts_stay_quiet(shared_evaluation):
    """Under the plain hinge, as a station left on its default drill would judge them. A clip marked
    not good form (faults_scored False) is no good lift."""
    good = [r for r in shared_evaluation.results if not r.label.faults and r.label.faults_scored]
    assert len(good) >= 5
    assert {r.label.clip: {f.value for f in r.faults} for r in good if r.faults} == KNOWN_FALSE_ALARMS


# Each labelled clip's faults under its drill: (raised, missed). Listed exactly, so a new miss, a
# fixed miss or a new false alarm each fails. Why each miss is left (ANALYSIS.md has the values):
# bad007/bad013 lockout: knees left bent with the trunk leaning back reads as a lockout in 2D (bad007:
#   hips -1.6, knees 15, trunk -8; the good016 lift reads the same); bad013's lean-back holds 15.2
#   against 15 (borderline: logged and shown, not buzzed), the vkgym RDL's 15.6.
# bad013 rounded_back: its back's outline at the bottom reads flat (median -9, p90 16): the lower-back
#   rounding its source names is not visible in the silhouette at this size.
# bad010: the hips reach knee height only for a moment (thigh 86-88 against 85 for 0.13 s, less
#   than the 0.2 s hold, and within its noise): too close to call, so silent.
# bad011: the thigh never passes 44 and the knee 59 (hips far above the knees at the floor): we
#   think its squatting label is wrong.
# load_away_from_body: judged in no shipped drill (a 2D wrist is not the bar).
# rear-oblique, front and oblique clips are judged for a squat only, in 3D (the research set's oblique
#   knee-dominant pulls: knees bent more than the hips, 3D hip/knee 0.75-0.88); the rear-oblique back
#   squat and the front bodyweight squat are not counted at all (no rep, no verdict), and a rounded back
#   is a side-on reading.
FAULTS_UNDER_DRILL = {
    "formfit_squat_side.mp4": ({"squatting_the_hinge"}, set()),
    "kmoir_squat_side_oblique_1rep.mp4": ({"squatting_the_hinge"}, set()),
    "bichraix_deadlift_side_bad007_rounded_back.mp4": ({"rounded_back"}, {"incomplete_lockout", "load_away_from_body"}),
    "bichraix_deadlift_side_bad010_squatting_hips_low.mp4": (set(), {"squatting_the_hinge"}),
    "bichraix_deadlift_side_bad011_rounding_back.mp4": ({"rounded_back"}, {"squatting_the_hinge"}),
    "bichraix_deadlift_side_bad013_hyperextend_lockout.mp4": (
        set(), {"incomplete_lockout", "rounded_back", "load_away_from_body", "overextended_lockout"}),
    "jeffchen_deadlift_side_bad_rounded_head_down_1rep.mp4": ({"head_not_neutral", "rounded_back"}, set()),
    "rohanx01_bw_squat_side_multi.mp4": ({"squatting_the_hinge"}, set()),
    "bodyweight_squat_side_2reps.mp4": ({"squatting_the_hinge"}, set()),
    "back_squat_rear_oblique_2reps_studio.mp4": (set(), {"squatting_the_hinge"}),
    "back_squat_side_plate_occluded_1rep_a.mp4": ({"squatting_the_hinge"}, set()),
    "back_squat_side_plate_occluded_1rep_b.mp4": ({"squatting_the_hinge"}, set()),
    "bw_squat_side_src_incorrect_a.mp4": ({"squatting_the_hinge"}, set()),
    "bw_squat_side_src_incorrect_b.mp4": ({"squatting_the_hinge"}, set()),
    "bw_squat_front_src_incorrect.mp4": (set(), {"squatting_the_hinge"}),
    "tby_kb_deadlift_side_kneedominant_10reps.mp4": ({"squatting_the_hinge"}, set()),
    "tby_kb_deadlift_side_roundedback_10reps.mp4": ({"rounded_back"}, set()),
    "tby_kb_deadlift_oblique_kneedominant_10reps.mp4": ({"squatting_the_hinge"}, set()),
    "tby_kb_deadlift_oblique_roundedback_10reps.mp4": (set(), {"rounded_back"}),
    "vkgym_db_rdl_side_roundedback_cropped_1rep.mp4": ({"rounded_back"}, {"overextended_lockout"}),
}
# Faults raised beyond a clip's labels, with why: on the research set's rounded reps the head drops with
# the rounded upper back (the ear 21 degrees past the model's neutral at 19.4 s); the label names the back.
EXTRA_UNDER_DRILL = {"tby_kb_deadlift_side_roundedback_10reps.mp4": {"head_not_neutral"}}


def test_each_labelled_fault_is_raised_on_its_clip_under_its_drill_or_is_a_listed_miss(clips_dir, clip_poses):
    labels = read_labels(clips_dir / "labels.csv")
    result = evaluate(labels, lambda path: list(clip_poses(path.name)), drill_profiles(labels, "hinge"))
    found, extra, false_alarms = {}, {}, {}
    for r in result.results:
        raised = {f.value for f in r.faults}
        if r.label.faults:
            labelled = {f.value for f in r.label.faults}
            found[r.label.clip] = (raised & labelled, labelled - raised)
            if raised - labelled:
                extra[r.label.clip] = raised - labelled
        elif r.label.faults_scored and raised:
            false_alarms[r.label.clip] = raised
    assert found == FAULTS_UNDER_DRILL
    assert extra == EXTRA_UNDER_DRILL
    assert false_alarms == KNOWN_FALSE_ALARMS


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


def test_every_buzzed_or_borderline_fault_is_reported_with_its_evidence(tmp_path):
    motions = {"near.mp4": Motion().stand(1).hinge(head=30, lower_s=2.0).stand(1),
               "far.mp4": Motion().stand(1).hinge(head=60, lower_s=2.0).stand(1)}
    rows = ["near.mp4,hinge,side,1,head_not_neutral,,", "far.mp4,hinge,side,1,head_not_neutral,,"]
    labels = read_labels(labels_file(tmp_path, rows, list(motions)))
    result = evaluate(labels, lambda path: motions[path.name].render(noise_px=3.0, seed=3), load_profile("hinge"))
    head = {(r["clip"], r["status"]): r for r in result.evidence_rows() if r["fault"] == "head_not_neutral"}
    near, far = head[("near.mp4", "borderline")], head[("far.mp4", "buzzed")]
    limit = load_profile("hinge").faults.head_not_neutral.max_dropped_deg  # the evidence names the rule's own limit
    assert near["threshold"] == far["threshold"] == limit and near["labelled"] and far["labelled"]
    assert 0 < near["margin"] <= near["noise"] and far["margin"] > far["noise"]
    by_clip = {r["clip"]: r for r in result.clip_rows()}
    assert "head_not_neutral" in by_clip["near.mp4"]["borderline"] and by_clip["near.mp4"]["missed"] == "head_not_neutral"
    assert by_clip["far.mp4"]["faults_found"].startswith("head_not_neutral")
