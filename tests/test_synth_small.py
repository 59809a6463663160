"""The small rendered set through the station itself: `station synth render --set small`, then `station
synth report` with the real pose model and analysis, each rep's verdict against its truth.

A verdict the station gets wrong today because its fault rules miss it is marked xfail(strict) with the
issue that fixes it (issue 22 rewrites the rules): when the rules land the mark turns into a failure and
is taken off, so the bench keeps what the fix bought.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.synth import body_model_or_skip

REPO = Path(__file__).resolve().parents[1]

# Rendering and judging the set takes 2-3 minutes (plus ~95 s the first time anny builds its cache): CI
# runs it as its own step after the default suite (.ci/run), which keeps the suite under 15 minutes.
pytestmark = pytest.mark.synth_small

# What the station is known to miss on the renders, each with the measured reason (ANALYSIS.md).
KNOWN_MISSES = {
    "small_rounding_gross.mp4": "a naked rendered body keeps its standing lumbar hollow in a hinge, so its neutral back "
                                "reads -65 and 60 degrees of spine flexion only straightens it (+3 to +10), short of the "
                                "hump real rounded backs show (+25 to +85) that the rule is set on",
}
CLIPS = ("small_hinge_clean.mp4", "small_hinge_clean_fps10.mp4", "small_hinge_clean_yaw20.mp4",
         "small_squatting_gross.mp4", "small_deep_hinge_clean.mp4", "small_lean_back.mp4", "small_short_lockout.mp4",
         *KNOWN_MISSES)


def station(*args, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "device", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **env})


@pytest.fixture(scope="module")
def small_report(tmp_path_factory, quantized_models_dir):
    body_model_or_skip()
    work = tmp_path_factory.mktemp("synth")
    env = {"HINGE_DATA_DIR": str(work / "data")}
    rendered = station("synth", "render", "--set", "small", "--out", work / "clips", "--json", work / "render.json", env=env)
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    out = work / "report.json"
    reported = station("synth", "report", work / "clips", "--reps", "--json", out, "--models-dir", quantized_models_dir,
                       env=env)
    assert reported.returncode == 0, reported.stderr[-3000:]
    report = json.loads(out.read_text())
    return {"report": report, "stdout": reported.stdout, "render": json.loads((work / "render.json").read_text()),
            "render_stdout": rendered.stdout, "work": work, "env": env, "models": quantized_models_dir}


def test_every_clip_of_the_small_set_is_rendered_with_its_truth(small_report):
    files = {f["clip"] for f in small_report["render"]["files"]}
    assert files == set(CLIPS)
    assert small_report["report"]["total"]["clips"] == len(CLIPS)
    for name in ("frames_rendered", "ms_per_frame"):
        assert name in small_report["render_stdout"]


def test_a_subset_reruns_from_the_pose_cache(small_report):
    work, env = small_report["work"], small_report["env"]
    cached = sorted((work / "data" / "cache" / "poses").glob("*.jsonl"))
    assert len(cached) == len(CLIPS)  # one pose file per clip file, keyed on its bytes, the model and the settings
    stamps = [p.stat().st_mtime_ns for p in cached]
    out = work / "subset.json"
    again = station("synth", "report", work / "clips", "--only", "yaw20", "--reps", "--json", out,
                    "--models-dir", small_report["models"], env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    subset = json.loads(out.read_text())
    assert subset["total"]["clips"] == 1
    assert {r["clip"] for r in subset["reps"]} == {"small_hinge_clean_yaw20.mp4"}
    assert subset["reps"] == [r for r in small_report["report"]["reps"] if r["clip"] == "small_hinge_clean_yaw20.mp4"]
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # nothing posed again


def test_every_true_rep_is_counted_once(small_report):
    counts = {c["drill"]: c for c in small_report["report"]["counts"]}
    assert sum(c["reps_true"] for c in counts.values()) == sum(c["reps_counted"] for c in counts.values())
    assert all(r["counted"] for r in small_report["report"]["reps"])


def test_the_report_prints_what_it_writes(small_report):
    report, stdout = small_report["report"], small_report["stdout"]
    for table in ("by_drill", "by_view_fps", "false_alarms", "angle_errors", "reps"):
        assert report[table], table
        assert set(report[table][0]) <= set(stdout.split()), table


def test_hip_and_knee_are_read_within_a_few_degrees_side_on(small_report):
    errors = {(r["quantity"], r["view"]): r for r in small_report["report"]["angle_errors"]}
    for quantity in ("hip_flexion_deg", "knee_flexion_deg"):
        assert abs(errors[(quantity, "0")]["median"]) < 3.0, quantity  # the previous team measured ~1 degree


@pytest.mark.parametrize("clip", [pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[c]))
                                  if c in KNOWN_MISSES else c for c in CLIPS])
def test_each_rep_raises_exactly_the_faults_its_truth_has(small_report, clip):
    reps = [r for r in small_report["report"]["reps"] if r["clip"] == clip]
    assert reps, clip
    said = [(r["present"], r["raised"]) for r in reps]
    assert all(present == raised for present, raised in said), said
