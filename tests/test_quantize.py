"""The quantize step on the real model: exact graph rewrites, the selected variant within float16's
own noise floor on the held-out real frames the analysis trusts, no change in reps or verdicts, the gate not
gameable by hiding joints, selection and tamper checks, idempotence, and clear errors."""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from device.errors import ModelError
from models.calibration import CalibrationRanges, FrameExtremes
from device.pose.model_files import QUANTIZED_RECORD, SHIPPED_VARIANT, load_manifest, resolve_models
from models.quantize import Plan, QuantizeError, quantize_models, require_quantizer

HELD_OUT_FRAME_STEP = 4


def _shipped_bytes(models_dir) -> bytes:
    return (models_dir / load_manifest().by_role("landmark").file).read_bytes()


def _outputs_by_shape(path, x) -> dict:
    from device.pose.tflite import TFLiteModel

    model = TFLiteModel(path, threads=1)
    return {shape: out for shape, out in zip(model.output_shapes, model.run(x[None]))}


def test_float16_expansion_and_mask_pruning_are_exact(models_dir, tmp_path):
    from models.graph import SEGMENTATION_OUTPUT, LandmarkGraph, float_landmark_graph, pruned_float16

    shipped = _shipped_bytes(models_dir)
    graph = LandmarkGraph(shipped)
    assert SEGMENTATION_OUTPUT in graph.output_names()
    expanded = float_landmark_graph(shipped, prune_segmentation=True)
    assert SEGMENTATION_OUTPUT not in expanded.output_names()
    assert not any(expanded.op_name(op) == "DEQUANTIZE" for op in expanded.subgraph.operators)
    assert expanded.model.signatureDefs[0].signatureKey == "serving_default"
    paths = {"float32": tmp_path / "f32.tflite", "float16_pruned": tmp_path / "f16.tflite", "shipped": tmp_path / "shipped.tflite"}
    paths["float32"].write_bytes(expanded.to_bytes())
    paths["float16_pruned"].write_bytes(pruned_float16(shipped))
    paths["shipped"].write_bytes(shipped)
    x = np.random.default_rng(1).random((256, 256, 3), dtype=np.float32)
    outs = {name: _outputs_by_shape(path, x) for name, path in paths.items()}
    for shape in [(1, 195), (1, 1), (1, 64, 64, 39), (1, 117)]:
        for name in ("float32", "float16_pruned"):
            assert np.array_equal(outs[name][shape], outs["shipped"][shape]), f"{name} output {shape} differs"
    assert (1, 256, 256, 1) in outs["shipped"] and (1, 256, 256, 1) not in outs["float16_pruned"]


def test_the_half_mask_rewrite_keeps_every_landmark_and_the_same_person_at_128(models_dir, clips_dir, engine_factory, tmp_path):
    """The mask's last blocks run at 128x128: every other output is the shipped model's to the bit,
    and the mask still outlines the same person (on a real crop, the person's pixels overlap the
    shipped mask's pooled to 128x128 almost wholly; only the edge may move by a pixel)."""
    from device.capture.file import VideoFileSource
    from device.pose.engine import iter_poses
    from models.graph import half_mask_float16

    shipped = _shipped_bytes(models_dir)
    path = tmp_path / "half.tflite"
    path.write_bytes(half_mask_float16(shipped))
    (tmp_path / "shipped.tflite").write_bytes(shipped)
    engine = engine_factory("float16")
    with VideoFileSource(clips_dir / "bichraix_deadlift_side_bad007_rounded_back.mp4") as source:
        for frame, pose in iter_poses(engine, source):
            if frame.timestamp >= 2.0 and pose.found:
                crop = engine.landmarks.crop(frame.image, pose.roi)
                break
    outs = {name: _outputs_by_shape(tmp_path / f"{name}.tflite", crop) for name in ("shipped", "half")}
    for shape in [(1, 195), (1, 1), (1, 64, 64, 39), (1, 117)]:
        assert np.array_equal(outs["half"][shape], outs["shipped"][shape]), shape
    assert (1, 128, 128, 1) in outs["half"] and (1, 256, 256, 1) not in outs["half"]
    full = outs["shipped"][(1, 256, 256, 1)][0, :, :, 0].reshape(128, 2, 128, 2).mean(axis=(1, 3)) > 0
    half = outs["half"][(1, 128, 128, 1)][0, :, :, 0] > 0
    assert 0.03 < full.mean() < 0.9  # a person in the crop, not an empty or a full mask
    assert (full & half).sum() / (full | half).sum() > 0.9


def test_layer_groups_follow_the_graph(models_dir):
    from models.graph import float_landmark_graph

    layers = float_landmark_graph(_shipped_bytes(models_dir), prune_segmentation=True).layers()
    groups = {layer.group for layer in layers}
    assert {"backbone_128", "backbone_8", "heatmap_64", "regression_2", "regression_1"} <= groups
    assert not any(g.startswith("segmentation") for g in groups)
    by_scope = {layer.scope: layer.group for layer in layers}
    assert by_scope["Identity"] == "regression_1" and by_scope["Identity_3"] == "heatmap_64"


def test_committed_plan_matches_the_model(models_dir):
    from models.graph import float_landmark_graph

    plan = Plan.load()
    assert not set(plan.calibration_clips) & set(plan.evaluation_clips), "calibration and held-out clips overlap"
    groups = {layer.group for layer in float_landmark_graph(_shipped_bytes(models_dir), True).layers()}
    for spec in plan.variants:
        assert set(spec.float_groups) <= groups, spec.name


def test_range_policies_and_json_round_trip():
    extremes = FrameExtremes(mins={"t": np.array([-1.0, -2.0, -50.0] + [-1.5] * 997)},
                             maxs={"t": np.array([3.0, 4.0, 90.0] + [3.5] * 997)}, samples=1000)
    assert extremes.ranges("minmax")["t"] == (-50.0, 90.0)
    low, high = extremes.ranges("p99")["t"]
    assert -2.0 <= low < -1.4 and 3.5 <= high < 4.1  # one outlier frame in 1000 does not set the range
    ranges = CalibrationRanges({"minmax": extremes.ranges("minmax")}, {"crops": 1000})
    back = CalibrationRanges.from_json(ranges.to_json())
    assert back.policies == ranges.policies
    qsv = back.qsvs("minmax", {"t", "unused"})
    assert set(qsv) == {"t"} and qsv["t"]["max"].dtype == np.float32


def test_record_lists_every_planned_variant(quantized_models_dir):
    record = json.loads((quantized_models_dir / QUANTIZED_RECORD).read_text())
    plan = Plan.load()
    assert [v["name"] for v in record["variants"]] == [s.name for s in plan.variants]
    from models.noise_floor import within_angle_floor

    floor = record["noise_floor"]
    assert floor["knee_err_p95"] > 0 and floor["hip_err_p95"] > 0, floor
    for v in record["variants"]:
        assert len(v["sha256"]) == 64 and v["size"] == (quantized_models_dir / v["file"]).stat().st_size
        assert v["ms_per_frame"] > 0 and v["speedup"] > 0
        # Both readings are reported; only the trusted frames are gated.
        assert {"hip_err_p95", "knee_err_p95", "px_err_p95"} <= set(v["all_frames"]), v["name"]
        assert {"hip_err_p95", "knee_err_p95", "hip_lost", "knee_lost", "hip_trusted_share"} <= set(v["trusted"]), v["name"]
        assert v["within_angle_floor"] == within_angle_floor(v["trusted"], floor), v["name"]
        judged = (record["evaluation"]["accuracy_source"] == "measured" or v["built_matches_committed"]
                  or v.get("outputs_identical_to_float16", False))
        assert v["qualifies"] == (v["person_mask"] and v["within_angle_floor"] and judged and v["coaching_unchanged"] is True
                                  and v["verdicts_within_floor"] is True), v["name"]
    # The MACs `station bench` budgets the Pi with: every model; pruning the mask is less work.
    macs = record["macs"]
    assert set(macs) == {"detector", SHIPPED_VARIANT, *(v["name"] for v in record["variants"])}
    assert macs["float16_nomask"] < macs[SHIPPED_VARIANT]
    qualifying = [v for v in record["variants"] if v["qualifies"] and v["ms_per_frame"] < record["float16_ms_per_frame"]]
    if qualifying:
        assert record["selected"] == min(qualifying, key=lambda v: v["ms_per_frame"])["name"]
    else:
        assert record["selected"] is None


def test_committed_evaluation_reports_all_frames_and_trusted_frames():
    from models.quantize import EVALUATION_PATH

    from models.noise_floor import within_angle_floor

    evaluation = json.loads(EVALUATION_PATH.read_text())
    assert evaluation["gate_on"] == "trusted frames" and evaluation["gate"] == "noise floor"
    floor = evaluation["noise_floor"]["held_out_trusted"]
    assert floor["frames"] == evaluation["held_out_crops"]
    # The coaching check covers every labelled clip, as filmed and under every perturbation.
    assert evaluation["float16_outcomes"]["totals"]["clips"] == evaluation["labelled_clips"] >= 26
    coaching = evaluation["noise_floor"]["coaching"]
    assert coaching["clip_runs"] == evaluation["labelled_clips"] * len(coaching["runs"]) and len(coaching["runs"]) > 1
    for name, v in evaluation["variants"].items():
        assert v["held_out"]["frames"] == v["held_out_trusted"]["frames"] == evaluation["held_out_crops"], name
        assert v["within_angle_floor"] == within_angle_floor(v["held_out_trusted"], floor), name
        same = v["kind"] == "float16_pruned" or (v.get("outcomes", {}).get("same_as_float16", False)
                                                 and v.get("verdicts", {}).get("within", False))
        assert v["qualifies"] == (v["within_angle_floor"] and same), name
        if v["in_plan"] and v["within_angle_floor"]:
            assert v["verdicts"]["floor_changed"] == coaching["changed"], name


def test_committed_report_is_rendered_from_the_committed_evaluation():
    """QUANTIZATION.md carries no hand-edited number: it is exactly what the evaluation renders to."""
    from models.explore import render_report
    from models.quantize import EVALUATION_PATH, REPORT_PATH

    assert REPORT_PATH.read_text() == render_report(json.loads(EVALUATION_PATH.read_text()))


def test_variants_rebuild_to_the_committed_bytes(quantized_models_dir):
    """What a Pi without clips gets: the same files the committed evaluation judged."""
    record = json.loads((quantized_models_dir / QUANTIZED_RECORD).read_text())
    mismatched = [v["name"] for v in record["variants"] if v["built_matches_committed"] is False]
    assert not mismatched, f"rebuilt variants differ from models/quantization/plan.json: {mismatched}"


def test_exactness_check_tells_a_rewrite_from_a_quantized_model(quantized_models_dir):
    from models.accuracy import identical_outputs

    record = json.loads((quantized_models_dir / QUANTIZED_RECORD).read_text())
    shipped = resolve_models(quantized_models_dir, SHIPPED_VARIANT).landmark
    files = {v["kind"]: quantized_models_dir / v["file"] for v in record["variants"]}
    assert identical_outputs(shipped, files["float16_pruned"])
    assert not identical_outputs(shipped, files["static"])


def test_auto_picks_the_selected_variant_and_float16_stays_selectable(quantized_models_dir):
    record = json.loads((quantized_models_dir / QUANTIZED_RECORD).read_text())
    auto = resolve_models(quantized_models_dir, "auto")
    assert auto.landmark_variant == (record["selected"] or SHIPPED_VARIANT)
    shipped = resolve_models(quantized_models_dir, SHIPPED_VARIANT)
    assert shipped.landmark.name == load_manifest().by_role("landmark").file


def _held_out_crops(clips_dir, clip_poses, landmark_model):
    """The engine's real float16 crops of the held-out clips (every 4th frame), as filmed and mirrored."""
    from device.capture.file import VideoFileSource
    from models.crops import CropSet

    pixels, rois, clips, times, sizes = [], [], [], [], []
    for name in Plan.load().evaluation_clips:
        poses = clip_poses(name)
        with VideoFileSource(clips_dir / name) as source:
            for frame, pose in zip(source, poses):
                if frame.index % HELD_OUT_FRAME_STEP or not pose.found or pose.roi is None:
                    continue
                crop = landmark_model.crop(frame.image, pose.roi)
                pixels.append(np.rint(crop * 255).astype(np.uint8))
                rois.append((pose.roi.cx, pose.roi.cy, pose.roi.size, pose.roi.rotation))
                clips.append(name)
                times.append(pose.timestamp)
                sizes.append(pose.image_size)
    n = len(pixels)
    return CropSet(np.stack(pixels), np.arange(n), np.zeros(n, bool), np.array(rois), np.array(clips),
                   np.array(times), np.array(sizes)).with_mirrored()


@pytest.fixture(scope="module")
def held_out(quantized_models_dir, clips_dir, clip_poses, engine_factory, settings):
    """Held-out crops and float16's landmarks on them, read by the analysis' trust rules."""
    from models.accuracy import run_landmarks
    from models.quantize import analysis_profile
    from models.trust import TrustedReference

    crops = _held_out_crops(clips_dir, clip_poses, engine_factory(SHIPPED_VARIANT).landmarks)
    assert len(crops) > 500
    shipped = resolve_models(quantized_models_dir, SHIPPED_VARIANT).landmark
    return TrustedReference.of(run_landmarks(shipped, crops), crops, analysis_profile(settings))


def test_selected_variant_keeps_trusted_hip_and_knee_angles_on_held_out_frames(quantized_models_dir, held_out):
    from models.accuracy import compare, run_landmarks
    from models.noise_floor import within_angle_floor

    auto = resolve_models(quantized_models_dir, "auto")
    landmarks = run_landmarks(auto.landmark, held_out.crops)
    trusted = held_out.judge(landmarks)
    shipped = resolve_models(quantized_models_dir, SHIPPED_VARIANT).landmark
    floor = held_out.judge(run_landmarks(shipped, held_out.crops, crop_shift=1))
    # float16 trusts most held-out frames; a gate over a handful would say nothing.
    assert trusted.hip_trusted_share > 0.8 and trusted.knee_trusted_share > 0.6, trusted.row()
    # The floor measured here on other frames than the committed one is still a real jitter, not zero.
    assert floor.hip_err_p95 > 1.0 and floor.knee_err_p95 > 1.0, floor.row()
    assert within_angle_floor(trusted.row(), floor.row()), (auto.landmark_variant, trusted.row(), floor.row())
    # The all-frames reading is still computed alongside (reported, not gated).
    every = compare(held_out.landmarks, landmarks)
    assert every.frames == trusted.frames == len(held_out.crops)


def test_hiding_joints_cannot_pass_the_trusted_gate(quantized_models_dir, held_out):
    """A variant that made its worst joints "invisible" would leave only its good frames to judge;
    the frames float16 trusts and it drops count as failures instead."""
    from device.analysis.kinematics import SIDES
    from device.pose.landmarks import LANDMARK_INDEX, VISIBILITY
    from models.accuracy import run_landmarks
    from models.trust import DISAGREEMENT_DEG, analysis_angles, compare_trusted

    record = json.loads((quantized_models_dir / QUANTIZED_RECORD).read_text())
    static = next(v for v in record["variants"] if v["kind"] == "static" and not v.get("float_groups"))
    honest = run_landmarks(quantized_models_dir / static["file"], held_out.crops)
    honest_angles = analysis_angles(honest, held_out.crops, held_out.profile)
    knee_error = np.abs(held_out.angles.knee - honest_angles.knee)
    worst = np.flatnonzero(np.nan_to_num(knee_error, nan=-1.0) > np.nanpercentile(knee_error, 80))
    cheat = honest.copy()
    for side in SIDES:  # hide both knees on the worst fifth of frames
        cheat[worst, LANDMARK_INDEX[f"{side}_knee"], VISIBILITY] = 0.0
    cheat_angles = analysis_angles(cheat, held_out.crops, held_out.profile)

    # What a gate on "frames both models trust" would have said: the hidden frames vanish and it looks better.
    both = np.isfinite(held_out.angles.knee) & np.isfinite(cheat_angles.knee)
    naive_p95 = np.percentile(np.abs(held_out.angles.knee - cheat_angles.knee)[both], 95)
    assert naive_p95 < np.nanpercentile(knee_error, 95)

    judged = compare_trusted(held_out.angles, cheat_angles)
    assert judged.knee_lost >= len(worst) * 0.9, judged.row()
    from models.noise_floor import within_angle_floor

    assert judged.knee_err_p95 == DISAGREEMENT_DEG and not within_angle_floor(judged.row(), record["noise_floor"])
    assert judged.variant_knee_trusted_share < judged.knee_trusted_share - 0.1


def test_smoothing_off_changes_no_trust_decision(clip_poses, settings):
    """The trusted-frames reading opens the One Euro filter and nothing else: frame by frame the
    analysis trusts exactly the same angles with and without it."""
    from device.analysis.kinematics import AngleTracker
    from models.quantize import analysis_profile
    from models.trust import unsmoothed

    profile = analysis_profile(settings)
    raw = unsmoothed(profile)
    assert raw.kinematics.model_dump(exclude={"min_cutoff_hz"}) == profile.kinematics.model_dump(exclude={"min_cutoff_hz"})
    assert raw.framing == profile.framing and raw.reps == profile.reps
    for name in ("crossfit_bb_deadlift_side_female_annot.mp4", "rohanx01_bw_squat_side_multi.mp4"):
        smoothed_tracker, raw_tracker = AngleTracker(profile.kinematics), AngleTracker(raw.kinematics)
        compared = 0
        for pose in clip_poses(name):
            a, b = smoothed_tracker.update(pose), raw_tracker.update(pose)
            assert a.reliable == b.reliable, (name, pose.timestamp)
            assert np.isnan(a.hip_flexion_deg) == np.isnan(b.hip_flexion_deg), (name, pose.timestamp)
            assert np.isnan(a.knee_flexion_deg) == np.isnan(b.knee_flexion_deg), (name, pose.timestamp)
            compared += a.reliable
        assert compared > 100, name


def test_selected_variant_changes_no_rep_count_verdict_or_fault(quantized_models_dir, clips_dir, clip_poses, settings):
    """The stricter check behind the angle gate: the whole pipeline with the station's variant counts
    the same reps, gives every rep the same hinge/squat verdict and raises the same faults as float16 on
    every labelled clip."""
    from device.analysis.scoring import evaluate, read_labels
    from models.outcomes import changes, coach_outcomes
    from models.quantize import analysis_profile

    auto = resolve_models(quantized_models_dir, "auto")
    if auto.landmark_variant == SHIPPED_VARIANT:
        pytest.skip("the station runs the shipped float16 model: nothing to compare")
    labels = read_labels(clips_dir / "labels.csv")
    profile = analysis_profile(settings)
    reference = evaluate(labels, lambda path: list(clip_poses(path.name)), profile)
    candidate = coach_outcomes(settings, auto.detector, auto.landmark, labels, profile)
    assert sum(len(r.reps) for r in reference.results) > 0
    assert changes(reference, candidate) == []


def test_variant_within_the_angle_floor_that_changes_a_verdict_is_not_selected(tmp_path, monkeypatch):
    import models.quantize
    from models.noise_floor import verdict_judgement
    from models.quantize import Accuracy, BuiltVariant, VariantSpec, select, variant_entry

    # These variants are plans, not files: whether each keeps the person mask is said by its name
    # here, as has_person_mask reads it from a real file (tested on the built variants above).
    monkeypatch.setattr(models.quantize, "has_person_mask", lambda path: "nomask" not in path.name)

    good = {"hip_err_median": 0.5, "hip_err_p95": 1.0, "knee_err_median": 0.5, "knee_err_p95": 2.0}
    floor = {"hip_err_median": 1.0, "hip_err_p95": 6.0, "knee_err_median": 1.2, "knee_err_p95": 15.0}
    spec = VariantSpec("int8_candidate", "static", "test recipe", expected_sha256="a" * 64)
    built = BuiltVariant(spec, tmp_path / spec.file, "a" * 64, 1)
    ms = {SHIPPED_VARIANT: 10.0, spec.name: 4.0}
    runs = {"as filmed": 0, "mirror": 1}
    calm = verdict_judgement({"as filmed": 0, "mirror": 1}, runs, 4)

    def entry(outcome, verdicts=calm):
        accuracy = Accuracy({spec.name: {"all_frames": good, "trusted": good}}, {"accuracy_source": "committed"}, [],
                            outcomes={spec.name: outcome} if outcome else {}, floor=floor,
                            verdicts={spec.name: verdicts} if verdicts else {})
        return variant_entry(built, accuracy, ms)

    unchanged = {"same_as_float16": True, "changed": []}
    same = entry(unchanged)
    assert same["qualifies"] and select([same], ms[SHIPPED_VARIANT]) == spec.name
    # The kept rule: within the floor on both readings, but a verdict changes on a clip as filmed.
    changed = entry({"same_as_float16": False, "changed": [{"clip": "x.mp4", "float16": ["hinge"], "variant": ["squat"]}]})
    assert changed["within_angle_floor"] and not changed["qualifies"] and select([changed], 10.0) is None
    unchecked = entry(None)
    assert not unchecked["qualifies"] and "not checked" in unchecked["note"]
    # More changed clip outcomes over the perturbations than float16's own 1 px crop shift.
    noisier = entry(unchanged, verdict_judgement({"as filmed": 0, "mirror": 2}, runs, 4))
    assert noisier["within_angle_floor"] and noisier["verdicts_within_floor"] is False and not noisier["qualifies"]
    assert "more clip outcomes" in noisier["note"]
    assert not entry(unchanged, None)["qualifies"]
    # A qualifying int8 variant is used wherever it is the fastest, else the faster exact rewrite; an
    # exact rewrite that drops the person mask never qualifies, however fast (rounded_back needs it).
    exact_spec = VariantSpec("float16_exact", "float16_pruned", "exact rewrite keeping the mask")
    exact_built = BuiltVariant(exact_spec, tmp_path / exact_spec.file, "b" * 64, 1)
    maskless_spec = VariantSpec("float16_nomask", "float16_pruned", "exact rewrite without the mask")
    maskless_built = BuiltVariant(maskless_spec, tmp_path / maskless_spec.file, "c" * 64, 1)
    for exact_ms, chosen in ((6.0, spec.name), (3.0, exact_spec.name)):
        accuracy = Accuracy({spec.name: {"all_frames": good, "trusted": good},
                             exact_spec.name: {"all_frames": good, "trusted": dict.fromkeys(good, 0.0)},
                             maskless_spec.name: {"all_frames": good, "trusted": dict.fromkeys(good, 0.0)}},
                            {"accuracy_source": "committed"}, [], proven_exact={exact_spec.name, maskless_spec.name},
                            outcomes={spec.name: unchanged}, floor=floor, verdicts={spec.name: calm})
        timed = {**ms, exact_spec.name: exact_ms, maskless_spec.name: 1.0}
        entries = [variant_entry(b, accuracy, timed) for b in (exact_built, built)]
        maskless = variant_entry(maskless_built, accuracy, timed)
        assert all(e["qualifies"] for e in entries) and not maskless["qualifies"] and "no person mask" in maskless["note"]
        assert select([*entries, maskless], timed[SHIPPED_VARIANT]) == chosen


def test_tampered_variant_is_refused_with_the_quantize_command(quantized_models_dir, tmp_path):
    target = tmp_path / "models"
    shutil.copytree(quantized_models_dir, target)
    record = json.loads((target / QUANTIZED_RECORD).read_text())
    victim = record["variants"][-1]
    path = target / victim["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError) as info:
        resolve_models(target, victim["name"])
    assert str(path) in str(info.value) and "station models quantize" in str(info.value)


def test_quantize_again_rebuilds_nothing(quantized_models_dir, settings):
    record_path = quantized_models_dir / QUANTIZED_RECORD
    before = {p.name: p.stat().st_mtime_ns for p in quantized_models_dir.iterdir()}
    outcome = quantize_models(settings, use_clips=False)
    assert not outcome.rebuilt
    assert {p.name: p.stat().st_mtime_ns for p in quantized_models_dir.iterdir()} == before
    assert json.loads(record_path.read_text()) == outcome.record


def test_quantize_without_the_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_quantizer", None)
    with pytest.raises(QuantizeError, match=r"pip install -e '\.\[quantize\]'"):
        require_quantizer()


def test_quantize_cli_without_models_explains(tmp_path):
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "device", "models", "quantize", "--models-dir", str(tmp_path / "none")],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "station models fetch" in proc.stderr and "Traceback" not in proc.stderr
