"""The quantize step on the real model: exact graph rewrites, the selected variant within the angle
gate on held-out real frames, selection and tamper checks, idempotence, and clear errors."""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from device.errors import ModelError
from models.calibration import CalibrationRanges, FrameExtremes
from models.manifest import QUANTIZED_RECORD, SHIPPED_VARIANT, load_manifest, resolve_models
from models.quantize import Plan, QuantizeError, quantize_models, require_quantizer

HELD_OUT_FRAME_STEP = 4


def _shipped_bytes(models_dir) -> bytes:
    return (models_dir / load_manifest().by_role("landmark").file).read_bytes()


def _outputs_by_shape(path, x) -> dict:
    from device.runtime import TFLiteModel

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
    assert plan.gate_p95_deg == 3.0
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
    assert record["gate_p95_deg"] == plan.gate_p95_deg
    for v in record["variants"]:
        assert len(v["sha256"]) == 64 and v["size"] == (quantized_models_dir / v["file"]).stat().st_size
        assert v["ms_per_frame"] > 0 and v["speedup"] > 0
        worst = max(v["hip_err_p95"], v["knee_err_p95"])
        judged = (record["evaluation"]["accuracy_source"] == "measured" or v["built_matches_committed"]
                  or v.get("outputs_identical_to_float16", False))
        assert v["qualifies"] == (worst <= record["gate_p95_deg"] and judged), v["name"]
    qualifying = [v for v in record["variants"] if v["qualifies"] and v["ms_per_frame"] < record["float16_ms_per_frame"]]
    if qualifying:
        assert record["selected"] == min(qualifying, key=lambda v: v["ms_per_frame"])["name"]
    else:
        assert record["selected"] is None


def test_variants_rebuild_to_the_committed_bytes(quantized_models_dir):
    """What a Pi without clips gets: the same files the committed evaluation judged."""
    record = json.loads((quantized_models_dir / QUANTIZED_RECORD).read_text())
    mismatched = [v["name"] for v in record["variants"] if v["built_matches_committed"] is False]
    assert not mismatched, f"rebuilt variants differ from models/quantization/plan.json: {mismatched}"


def test_exactness_check_tells_a_rewrite_from_a_quantized_model(quantized_models_dir):
    from models.evaluation import identical_outputs

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
    from device.sources import VideoFileSource
    from models.crops import CropSet

    pixels, rois, clips = [], [], []
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
    n = len(pixels)
    return CropSet(np.stack(pixels), np.arange(n), np.zeros(n, bool), np.array(rois), np.array(clips)).with_mirrored()


def test_selected_variant_keeps_hip_and_knee_angles_on_held_out_frames(quantized_models_dir, clips_dir, clip_poses, engine_factory):
    from models.evaluation import compare, run_landmarks

    record = json.loads((quantized_models_dir / QUANTIZED_RECORD).read_text())
    crops = _held_out_crops(clips_dir, clip_poses, engine_factory(SHIPPED_VARIANT).landmarks)
    assert len(crops) > 500
    auto = resolve_models(quantized_models_dir, "auto")
    shipped = resolve_models(quantized_models_dir, SHIPPED_VARIANT)
    errors = compare(run_landmarks(shipped.landmark, crops), run_landmarks(auto.landmark, crops))
    gate = record["gate_p95_deg"]
    assert errors.hip_err_p95 <= gate and errors.knee_err_p95 <= gate, errors.row()


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

    proc = subprocess.run([sys.executable, "-m", "device.cli", "models", "quantize", "--models-dir", str(tmp_path / "none")],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "station models fetch" in proc.stderr and "Traceback" not in proc.stderr
